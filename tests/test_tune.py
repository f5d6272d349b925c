"""tune.py and catalog/tuning.py: the discriminant fit, the held-out choice, storage, and staleness."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog import Catalog, index_images
from fashionrec.catalog.tuning import Tuning
from fashionrec.cli import main
from fashionrec.errors import FashionrecError
from fashionrec.recommend import Recommender
from fashionrec.tune import fit_lda, remove_tuning, save_tuning, tune


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


def test_tuning_keeps_the_vector_and_adds_weighted_directions() -> None:
    vectors = np.eye(4, dtype=np.float32)[:3]
    tuning = Tuning("x", np.array([[1.0], [0.0], [0.0], [0.0]], dtype=np.float32), weight=1.0, fitted_on="")
    out = tuning.apply(vectors)
    assert out.shape == (3, 5) and np.allclose(np.linalg.norm(out, axis=1), 1.0)
    assert np.allclose(out[0], [1, 0, 0, 0, 1] / np.sqrt(2)) and np.allclose(out[1], [0, 1, 0, 0, 0])
    assert np.allclose(tuning.apply(vectors[0]), out[0])


@pytest.fixture
def shop_copy(shop_catalog: Path, tmp_path: Path) -> Path:
    """A private copy of the shop catalog and its images (so a test may change them)."""
    shutil.copytree(shop_catalog, tmp_path / "c")
    shutil.copytree(Catalog.open(shop_catalog).images_dir, tmp_path / "images")
    report = index_images(tmp_path / "images", tmp_path / "c", progress=False)
    assert report.embedded == 0 and report.products == 40
    return tmp_path / "c"


def test_tune_reports_the_held_out_choice(shop_copy: Path) -> None:
    report, tuning = tune(Catalog.open(shop_copy), "articleType", "baseColour", k=3, seed=1)
    assert report.held_out == 8 and report.directions == 1 and len(report.tried) == 6
    assert all(0 <= a <= 1 and 0 <= b <= 1 for _, a, b in report.tried)
    if tuning is None:
        assert report.weight == 0 and report.after == report.before
    else:
        assert report.after[0] > report.before[0] and report.after[1] >= report.before[1] - 0.01
        assert tuning.weight == report.weight and tuning.matrix.shape == (1280, 1)


def test_a_saved_tuning_is_applied_to_catalog_and_queries_until_the_products_change(shop_copy: Path, lite0,
                                                                                    caplog) -> None:
    catalog = Catalog.open(shop_copy)
    labels = catalog.column_values("articleType")
    from fashionrec.catalog.whitening import products_fingerprint

    save_tuning(catalog, Tuning("articleType", fit_lda(catalog.vectors, labels, 4), 1.0,
                                products_fingerprint(catalog.ids, catalog.content_hashes)))
    tuned = Catalog.open(shop_copy)
    assert tuned.tuning is not None and tuned.vectors.shape == (40, 1281)
    recommender = Recommender(tuned, lite0)
    assert recommender.by_image(tuned.image_path("9"), k=2).results[0].id == "9"
    with pytest.raises(FashionrecError, match="tune --reset"):
        tune(tuned)
    (tuned.images_dir / "40.jpg").unlink()
    with caplog.at_level(logging.WARNING):
        index_images(tuned.images_dir, shop_copy, progress=False)
    assert "tuning is dropped" in caplog.text and Catalog.open(shop_copy).tuning is None


def test_remove_tuning(shop_copy: Path) -> None:
    catalog = Catalog.open(shop_copy)
    from fashionrec.catalog.whitening import products_fingerprint

    save_tuning(catalog, Tuning("articleType", np.ones((1280, 1), np.float32), 0.5,
                                products_fingerprint(catalog.ids, catalog.content_hashes)))
    assert Catalog.open(shop_copy).tuning is not None
    remove_tuning(catalog)
    assert Catalog.open(shop_copy).tuning is None


def test_cli_tune_dry_run_and_errors(shop_copy: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["tune", "--catalog", str(shop_copy), "-k", "3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Held-out products as queries: 8" in out and "articleType P@3" in out
    assert Catalog.open(shop_copy).tuning is None
    assert main(["tune", "--catalog", str(shop_copy), "--label", "colour"]) == 2
    assert "no column colour" in capsys.readouterr().err
    assert main(["tune", "--catalog", str(shop_copy), "--reset"]) == 0
