"""catalog/whitening.py: the fit is a real whitening, streams, and lives with the catalog's products."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog import Catalog, index_images
from fashionrec.catalog.store import CatalogStore
from fashionrec.catalog.whitening import fit_whitening, products_fingerprint, whitening_dim
from fashionrec.config import load_settings
from fashionrec.recommend import Recommender
from tests.conftest import write_products


def correlated(count: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) * np.linspace(3, 0.1, dim)
    vectors = rng.normal(size=(count, dim)) @ mixing + 5.0
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_whitened_vectors_have_identity_covariance() -> None:
    vectors = correlated(4000, 24, seed=0)
    whitening = fit_whitening([vectors], dim=10, fitted_on="x")
    projected = (vectors - whitening.mean) @ whitening.matrix
    assert np.allclose(np.cov(projected, rowvar=False, bias=True), np.eye(10), atol=1e-3)
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
    assert whitening_dim(products=2047, wanted=512, model_dim=1280) == 0  # too few products to estimate
    assert whitening_dim(products=10_000, wanted=0, model_dim=1280) == 0  # turned off
    assert whitening_dim(products=10_000, wanted=4096, model_dim=1280) == 1280
    assert products_fingerprint(["1", "2"], ["a", "b"]) != products_fingerprint(["1", "2"], ["a", "c"])
    assert products_fingerprint(["1", "2"], ["a", "b"]) != products_fingerprint(["1"], ["a"])


def test_the_catalog_is_whitened_refitted_when_products_change_and_queries_follow(tmp_path: Path, lite0,
                                                                                  caplog) -> None:
    settings = replace(load_settings(), whiten_dim=8)  # 40 products >= 4 x 8
    write_products(tmp_path / "images", range(1, 41))
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False, settings=settings)
    catalog = Catalog.open(tmp_path / "c")
    assert catalog.vectors.shape == (40, 8) and catalog.model_vectors.shape == (40, 1712)
    assert catalog.whitening is not None
    recommender = Recommender(catalog, lite0)
    assert recommender.by_image(catalog.image_path("13"), k=3).results[0].id == "13"
    assert recommender.by_id("13", k=3).results[0].id != "13"
    fitted_on = catalog.info["whitening_fitted_on"]

    index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=settings)
    assert Catalog.open(tmp_path / "c").info["whitening_fitted_on"] == fitted_on  # nothing changed: no refit

    (tmp_path / "images" / "40.jpg").unlink()
    index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=settings)
    refitted = Catalog.open(tmp_path / "c")
    assert refitted.info["whitening_fitted_on"] != fitted_on and refitted.vectors.shape == (39, 8)

    with CatalogStore(tmp_path / "c") as store:  # as if a crash came between a batch and the refit
        store.remove(["39"], [])
    with caplog.at_level(logging.WARNING):
        stale = Catalog.open(tmp_path / "c")
    assert stale.whitening is None and stale.vectors.shape == (38, 1712) and "older than its products" in caplog.text

    small = replace(settings, whiten_dim=16)  # 38 products < 4 x 16: whitening is dropped
    index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=small)
    assert Catalog.open(tmp_path / "c").whitening is None
