"""quality/tune.py, catalog/tuning.py and catalog/space.py (saving a tuning): the discriminant fit, the held-out
choice, storage, and staleness."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from fashionrec.catalog.tuning import Tuning, TuningPart
from fashionrec.cli import main
from fashionrec.imaging.colour import COLOUR_DIM
from fashionrec.errors import FashionrecError
from fashionrec.recommend.recommender import Recommender
from fashionrec.catalog.space import remove_tuning, save_tuning
from fashionrec.quality.tune import HeadSettings, fit_head, fit_lda, tune
from tests.conftest import copy_catalog


def _lda_tuning(matrix: np.ndarray, weight: float, fitted_on: str = "") -> Tuning:
    return Tuning("articleType", "baseColour", (TuningPart("lda", matrix, weight),), fitted_on)


def test_lda_finds_the_direction_that_separates_the_classes() -> None:
    rng = np.random.default_rng(0)
    labels = ["a"] * 200 + ["b"] * 200 + ["c"] * 200
    vectors = rng.normal(size=(600, 10))
    vectors[:, 0] *= 10  # a loud direction that says nothing about the class
    vectors[:, 3] += np.repeat([0.0, 1.0, 2.0], 200)  # a quiet one that does
    directions = fit_lda(vectors, labels, directions=5)
    assert directions.shape == (10, 2)  # at most classes - 1
    leading = directions[:, 0] / np.linalg.norm(directions[:, 0])
    assert abs(leading[3]) > 0.95 and abs(leading[0]) < 0.1
    with pytest.raises(FashionrecError, match="two classes"):
        fit_lda(vectors, ["a"] * 599 + ["b"], directions=5)


def test_the_head_learns_labels_hidden_in_quiet_directions() -> None:
    rng = np.random.default_rng(0)
    kinds, colours = np.arange(400) % 4, (np.arange(400) // 4) % 5  # both spread over the split
    vectors = rng.normal(size=(400, 32)).astype(np.float32)
    vectors[:, 0] *= 8  # loud and meaningless
    vectors[np.arange(400), 1 + kinds] += 2.0  # the kind, in quiet directions 1-4
    vectors[np.arange(400), 5 + colours] += 2.0  # the colour, in quiet directions 5-9
    embedding = vectors @ fit_head(vectors[:300], [kinds[:300].tolist(), colours[:300].tolist()],
                                   HeadSettings(dim=16, steps=200))
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)

    def nearest_agrees(space: np.ndarray, labels: np.ndarray) -> float:
        scores = space[300:] @ space.T
        scores[np.arange(100), np.arange(300, 400)] = -np.inf
        return float(np.mean(labels[scores.argmax(axis=1)] == labels[300:]))

    raw = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for labels in (kinds, colours):  # held-out rows: the head's space groups both labels far better than the raw one
        assert nearest_agrees(embedding, labels) > nearest_agrees(raw, labels) + 0.1
    with pytest.raises(FashionrecError, match="two classes"):
        fit_head(vectors, [["a"] * 400])


def test_tuning_keeps_the_vector_and_adds_weighted_projections() -> None:
    vectors = np.eye(4, dtype=np.float32)[:3]
    tuning = _lda_tuning(np.array([[1.0], [0.0], [0.0], [0.0]], dtype=np.float32), weight=1.0)
    out = tuning.apply(vectors)
    assert out.shape == (3, 5) and np.allclose(np.linalg.norm(out, axis=1), 1.0)
    assert np.allclose(out[0], [1, 0, 0, 0, 1] / np.sqrt(2)) and np.allclose(out[1], [0, 1, 0, 0, 0])
    assert np.allclose(tuning.apply(vectors[0]), out[0])
    two = Tuning("a", "b", (TuningPart("lda", np.eye(4, 1, dtype=np.float32), 1.0),
                            TuningPart("head", np.eye(4, 2, k=-1, dtype=np.float32), 2.0)), "")
    assert np.allclose(two.apply(vectors[1]), [0, 1, 0, 0, 0, 2, 0] / np.sqrt(5))
    assert two.describe() == "a (lda 1, head 2)"


@pytest.fixture
def shop_copy(shop_catalog: Path, tmp_path: Path) -> Path:
    """A private copy of the shop catalog and its images (so a test may change them)."""
    copy_catalog(shop_catalog, tmp_path / "c")
    shutil.copytree(Catalog.open(shop_catalog).images_dir, tmp_path / "images")
    report = index_images(tmp_path / "images", tmp_path / "c", progress=False)
    assert report.embedded == 0 and report.products == 40
    return tmp_path / "c"


def held_out_precisions(catalog: Catalog, seed: int, k: int) -> tuple[float, float]:
    """Untuned held-out (articleType, baseColour) P@k by brute force: the seeded split `tune` documents (a fifth of
    the products, by a permutation of the rows), each held-out product ranked against all others by shape cosine."""
    from tests.reference import catalog_arrays, leave_one_out_precision

    arrays = catalog_arrays(catalog)
    held_out = np.sort(np.random.default_rng(seed).permutation(len(catalog))[: len(catalog) // 5])
    return tuple(leave_one_out_precision(arrays.shape, [m.get(label) for m in arrays.metadata], held_out, k)[0]
                 for label in ("articleType", "baseColour"))


def test_tune_reports_the_held_out_choice(shop_copy: Path) -> None:
    """On the drawn shop nothing is kept: the shape alone already finds the articleType of every product (shapes
    are drawn by id % 3, like Shoes), so no weights can raise it, which a tuning must do."""
    from tests.reference import catalog_arrays, leave_one_out_precision

    catalog = Catalog.open(shop_copy)
    arrays = catalog_arrays(catalog)
    kinds = [m["articleType"] for m in arrays.metadata]
    assert leave_one_out_precision(arrays.shape, kinds, range(40), k=3)[0] == 1.0  # every product, so every split
    report, tuning = tune(catalog, "articleType", "baseColour", k=3, seed=1)
    assert report.held_out == 8 and len(report.tried) == 19
    assert all(0 <= a <= 1 and 0 <= b <= 1 for _, a, b in report.tried)
    before = held_out_precisions(catalog, seed=1, k=3)
    assert before[0] == 1.0 and 0 < before[1] < 1
    assert report.before == pytest.approx(before, abs=1e-9)
    assert all(label <= report.before[0] for _, label, _ in report.tried)  # none can qualify...
    assert tuning is None and not report.kept and report.weights == {}  # ...so nothing is kept
    assert report.after == report.before
    assert main(["tune", "--catalog", str(shop_copy), "-k", "3", "--seed", "1"]) == 0
    assert Catalog.open(shop_copy).tuning is None  # and nothing saved


def test_a_saved_tuning_is_applied_to_catalog_and_queries_and_lives_in_its_space(shop_copy: Path, lite0) -> None:
    catalog = Catalog.open(shop_copy)
    labels = catalog.column_values("articleType")
    shape = catalog.shape_part(catalog.vectors)
    with pytest.raises(FashionrecError, match="another length than the catalog's shape vectors"):
        save_tuning(catalog, _lda_tuning(fit_lda(catalog.vectors, labels, 4), 1.0, catalog_space(catalog)))
    with pytest.raises(FashionrecError, match="fitted in another search space"):
        save_tuning(catalog, _lda_tuning(fit_lda(shape, labels, 4), 1.0, "another-space"))
    save_tuning(catalog, _lda_tuning(fit_lda(shape, labels, 4), 1.0, catalog_space(catalog)))
    tuned = Catalog.open(shop_copy)
    assert tuned.tuning is not None and tuned.vectors.shape == (40, shape.shape[1] + 1 + COLOUR_DIM)
    recommender = Recommender(tuned, lite0)
    assert recommender.by_image(tuned.image_path("9"), k=2).results[0].id == "9"
    with pytest.raises(FashionrecError, match="tune --reset"):
        tune(tuned)
    with pytest.raises(FashionrecError, match="changed its search space meanwhile"):
        save_tuning(catalog, _lda_tuning(fit_lda(shape, labels, 4), 2.0, catalog_space(catalog)))
    (tuned.images_dir / "40.jpg").unlink()
    index_images(tuned.images_dir, shop_copy, prune=True, progress=False)
    after = Catalog.open(shop_copy)  # the space (whitened, tuned) did not change (1 product in 40): the tuning stays
    assert after.tuning is not None and after.keys.space == tuned.keys.space and len(after) == 39


def catalog_space(catalog: Catalog) -> str:
    """The digest of the space a tuning of this catalog is fitted in (its whitening, untuned)."""
    from fashionrec.catalog.space import untuned_space

    return untuned_space(catalog).digest


def test_remove_tuning(shop_copy: Path) -> None:
    catalog = Catalog.open(shop_copy)
    whitened = catalog.keys.space
    save_tuning(catalog, _lda_tuning(np.ones((catalog.shape_dim, 1), np.float32), 0.5, catalog_space(catalog)))
    assert Catalog.open(shop_copy).tuning is not None
    remove_tuning(Catalog.open(shop_copy))
    assert Catalog.open(shop_copy).tuning is None and Catalog.open(shop_copy).keys.space == whitened


def test_cli_tune_dry_run_and_errors(shop_copy: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["tune", "--catalog", str(shop_copy), "-k", "3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Held-out products as queries: 8" in out and "articleType P@3" in out
    assert Catalog.open(shop_copy).tuning is None
    assert main(["tune", "--catalog", str(shop_copy), "--label", "colour"]) == 2
    assert "no column colour" in capsys.readouterr().err
    assert main(["tune", "--catalog", str(shop_copy), "--reset"]) == 0


def test_cli_tune_json(shop_copy: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    assert main(["tune", "--catalog", str(shop_copy), "-k", "3", "--json", "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["label"] == "articleType" and out["look_label"] == "baseColour"
    assert out["k"] == 3 and out["queries"] == 8  # a fifth of the 40 products
    kind, look = held_out_precisions(Catalog.open(shop_copy), seed=0, k=3)  # brute force, the CLI's default seed
    assert out["held_out"]["untuned"] == {"articleType": pytest.approx(kind, abs=1e-9),
                                          "baseColour": pytest.approx(look, abs=1e-9)}
    assert kind == 1.0  # nothing can raise it (see test_tune_reports_the_held_out_choice): nothing kept or saved
    assert out["kept"] is False and out["saved"] is False and out["weights"] == {}
    assert out["held_out"]["tuned"] == out["held_out"]["untuned"]
