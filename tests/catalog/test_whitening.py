"""catalog/whitening.py and derived.py: the fit is a real whitening, streams, and lives in the catalog's search
space, an immutable file the catalog names; a stale or damaged one is never searched."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from fashionrec.catalog.derived import DERIVED_DIR, products_digest, space_path
from fashionrec.catalog.whitening import SHRINKAGE, fit_whitening, whitening_dim
from fashionrec.imaging.colour import COLOUR_DIM
from fashionrec.errors import CatalogError
from fashionrec.config import load_settings
from fashionrec.recommend.recommender import Recommender
from tests.conftest import write_products


def correlated(count: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) * np.linspace(3, 0.1, dim)
    vectors = rng.normal(size=(count, dim)) @ mixing + 5.0
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_whitened_vectors_have_the_shrunk_covariance() -> None:
    """Shrinkage whitening: along each principal axis the variance becomes v / (v + SHRINKAGE x the mean variance),
    uncorrelated (the eigenvalues computed here by numpy, not by the fit)."""
    vectors = correlated(4000, 24, seed=0)
    whitening = fit_whitening([vectors], dim=10, fitted_on="x")
    projected = (vectors - whitening.mean) @ whitening.matrix
    variances = np.sort(np.linalg.eigvalsh(np.cov(vectors, rowvar=False, bias=True)))[::-1]
    expected = variances[:10] / (variances[:10] + SHRINKAGE * variances.mean())
    assert np.allclose(np.cov(projected, rowvar=False, bias=True), np.diag(expected), atol=1e-4)
    assert expected[0] > 5 * expected[-1]  # strong directions keep more of their spread than weak ones
    out = whitening.apply(vectors)
    assert out.shape == (4000, 10) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.allclose(whitening.apply(vectors[7]), out[7], atol=1e-6)


def test_streaming_blocks_fit_the_same_as_one_block() -> None:
    vectors = correlated(3000, 16, seed=1)
    whole = fit_whitening([vectors], dim=8, fitted_on="x")
    blocks = fit_whitening([vectors[:1000], vectors[1000:2500], vectors[2500:]], dim=8, fitted_on="x")
    assert np.allclose(np.abs(whole.apply(vectors) @ blocks.apply(vectors).T).diagonal(), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match="no vectors"):
        fit_whitening([], dim=8, fitted_on="x")


def test_dimension_rule_and_fingerprint() -> None:
    assert whitening_dim(products=2048, wanted=512, model_dim=1280) == 512
    assert whitening_dim(products=2047, wanted=512, model_dim=1280) == 512  # no size threshold (shrinkage)
    assert whitening_dim(products=300, wanted=512, model_dim=1280) == 299  # at most the rank of the spread
    assert whitening_dim(products=100, wanted=512, model_dim=1280) == 99
    assert whitening_dim(products=99, wanted=512, model_dim=1280) == 0  # under MIN_PRODUCTS: the model's vectors
    assert whitening_dim(products=10_000, wanted=0, model_dim=1280) == 0  # turned off
    assert whitening_dim(products=10_000, wanted=4096, model_dim=1280) == 1280
    assert products_digest(["1", "2"], ["a", "b"]) != products_digest(["1", "2"], ["a", "c"])
    assert products_digest(["1", "2"], ["a", "b"]) != products_digest(["1"], ["a"])


def test_the_whitening_stays_put_as_products_change_until_a_refit(tmp_path: Path, lite0) -> None:
    from fashionrec.catalog.space import refit

    settings = replace(load_settings(), whiten_dim=8)
    write_products(tmp_path / "images", range(1, 103))
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False, settings=settings)
    catalog = Catalog.open(tmp_path / "c")
    assert catalog.vectors.shape == (102, 8 + COLOUR_DIM) and catalog.model_vectors.shape == (102, 1712)
    assert catalog.whitening is not None and space_path(tmp_path / "c", catalog.keys.space).is_file()
    recommender = Recommender(catalog, lite0)
    assert recommender.by_image(catalog.image_path("13"), k=3).results[0].id == "13"
    assert recommender.by_id("13", k=3).results[0].id != "13"
    space = catalog.keys.space

    (tmp_path / "images" / "40.jpg").unlink()
    report = index_images(tmp_path / "images", tmp_path / "c", prune=True, progress=False, settings=settings)
    kept = Catalog.open(tmp_path / "c")  # one product of 102 gone: drift 0.0098, the space stays
    assert not report.space.refitted and kept.keys.space == space and kept.vectors.shape == (101, 8 + COLOUR_DIM)
    assert kept.drift == pytest.approx(1 / 102)
    np.testing.assert_allclose(kept.vectors, catalog.vectors[[catalog.position(i) for i in kept.ids]], atol=1e-6)

    update = refit(tmp_path / "c", settings)
    refitted = Catalog.open(tmp_path / "c")
    assert update.refitted and refitted.keys.space != space and refitted.drift == 0.0
    assert not space_path(tmp_path / "c", space).exists()  # the superseded space file is gone
    assert sorted(p.name for p in (tmp_path / "c" / DERIVED_DIR).iterdir()) == [
        space_path(tmp_path / "c", refitted.keys.space).name]

    wider = replace(settings, whiten_dim=16)  # another dimension: fitted again
    assert index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=wider).space.refitted
    assert Catalog.open(tmp_path / "c").vectors.shape == (101, 16 + COLOUR_DIM)
    wide = replace(settings, whiten_dim=512)  # more than 101 products can fill: 100, kept while the catalog is the same
    assert index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=wide).space.refitted
    assert Catalog.open(tmp_path / "c").vectors.shape == (101, 100 + COLOUR_DIM)
    assert not index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=wide).space.refitted


def test_a_new_whitening_dimension_drops_the_tuning_fitted_in_the_old_space(tmp_path: Path, caplog) -> None:
    """Issue 13: tuned, then re-indexed with another FASHIONREC_WHITEN_DIM, the catalog opened nowhere (a tuning
    applied to vectors of another length). A tuning lives in its space: a refit drops it, and everything opens."""
    from fashionrec.catalog.tuning import Tuning, TuningPart
    from fashionrec.catalog.space import save_tuning

    write_products(tmp_path / "images", range(1, 101))
    eight = replace(load_settings(), whiten_dim=8)
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False, settings=eight)
    catalog = Catalog.open(tmp_path / "c")
    untuned = catalog.keys.space
    save_tuning(catalog, Tuning("articleType", "baseColour", (TuningPart("lda", np.eye(8, 2, dtype=np.float32), 1.0),),
                                catalog.space.digest))
    tuned = Catalog.open(tmp_path / "c")
    assert tuned.tuning is not None and tuned.vectors.shape == (100, 10 + COLOUR_DIM) and tuned.keys.space != untuned
    with caplog.at_level(logging.WARNING):
        index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=replace(eight, whiten_dim=4))
    reopened = Catalog.open(tmp_path / "c")
    assert reopened.tuning is None and reopened.whitening.dim == 4 and reopened.vectors.shape == (100, 4 + COLOUR_DIM)
    assert "tuning (fitted in the old one) is dropped" in caplog.text
    assert Recommender(reopened).by_id("3", k=2).results


def test_a_damaged_or_missing_space_file_is_never_searched(tmp_path: Path) -> None:
    write_products(tmp_path / "images", range(1, 101))
    settings = replace(load_settings(), whiten_dim=8)
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False, settings=settings)
    path = space_path(tmp_path / "c", Catalog.open(tmp_path / "c").keys.space)
    original = path.read_bytes()
    from fashionrec.catalog.space import SearchSpace

    space = SearchSpace.from_bytes(original)
    changed = replace(space, whitening=replace(space.whitening, mean=space.whitening.mean + 0.01))
    path.write_bytes(changed.to_bytes())  # another space under this one's name
    with pytest.raises(CatalogError, match="does not hold what its name says"):
        Catalog.open(tmp_path / "c")
    path.unlink()
    with pytest.raises(CatalogError, match="is missing .* fashionrec refit"):
        Catalog.open(tmp_path / "c")
    index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=settings)  # index fits it again
    mended = Catalog.open(tmp_path / "c")
    assert mended.whitening is not None and space_path(tmp_path / "c", mended.keys.space).is_file()


def test_refit_makes_a_new_space_version_and_mends_a_lost_one(tmp_path: Path, monkeypatch, capsys) -> None:
    from fashionrec.cli import main

    monkeypatch.setenv("FASHIONREC_WHITEN_DIM", "8")
    write_products(tmp_path / "images", range(1, 101))
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False)
    space = Catalog.open(tmp_path / "c").keys.space
    space_path(tmp_path / "c", space).unlink()  # lost (a backup restored without derived/, say)
    assert main(["refit", "--catalog", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "new search space, whitened to 8 dimensions" in out and "next fashionrec push sends them all" in out
    mended = Catalog.open(tmp_path / "c")
    assert mended.whitening.dim == 8 and mended.whitening.fitted_on == mended.keys.products
    assert main(["refit", "--catalog", str(tmp_path / "nowhere")]) == 2


def test_a_damaged_space_file_is_refused_without_suggesting_to_unpickle_it(tmp_path: Path) -> None:
    import io

    from fashionrec.catalog.derived import space_path
    from fashionrec.catalog.space import load_space
    from fashionrec.errors import CatalogError

    path = space_path(tmp_path, "ab" * 16)
    path.parent.mkdir(parents=True)
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array([{"model_id": "x"}], dtype=object))  # an object array: loading it would unpickle
    for content in (buffer.getvalue(), b"garbage", b""):
        path.write_bytes(content)
        with pytest.raises(CatalogError, match="is damaged") as caught:
            load_space(tmp_path, "ab" * 16, "x")
        assert "pickle" not in str(caught.value) and "fashionrec refit" in str(caught.value)


def test_derived_files_get_an_ordinary_new_files_permissions(tmp_path: Path) -> None:
    """A new-user try: index files were 0600 (mkstemp's) beside a 0644 catalog, so a server running as another user
    could not read them."""
    import os
    import stat

    from fashionrec.catalog.derived import publish, publish_with

    umask = os.umask(0o022)
    os.umask(umask)
    publish(tmp_path / "a.json", lambda handle: handle.write(b"{}"))
    publish_with(tmp_path / "b.bin", lambda name: Path(name).write_bytes(b"x"))
    for name in ("a.json", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
