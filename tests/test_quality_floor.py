"""A quality floor for the default model on real products: the features must be the network's real features.

1,000 seeded products of the shared sample are indexed with the default model, exactly as `fashionrec index` does
(the catalog is too small to be whitened), and scored leave-one-out: articleType precision@5, the query's exact
copies left out. Measured with this seed: the repaired default scores 0.451; the graph shipped before (ReLU6
swapped for Swish, average pooling of the head map) scored 0.189. The floor sits between, far from both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from fashionrec.config import load_settings
from fashionrec.quality.evaluate import evaluate

PRODUCTS = 1000
SEED = 0
FLOOR = 0.40


def test_the_default_model_clears_the_quality_floor(sample_dir: Path, tmp_path: Path) -> None:
    images = sorted((sample_dir / "images").glob("*.jpg"))
    chosen = np.random.default_rng(SEED).choice(len(images), size=PRODUCTS, replace=False)
    subset = tmp_path / "images"
    subset.mkdir()
    for index in chosen.tolist():
        (subset / images[index].name).symlink_to(images[index])
    report = index_images(subset, tmp_path / "catalog", metadata=sample_dir / "styles.csv", progress=False)
    assert report.products == PRODUCTS and report.model == load_settings().default_model
    result = evaluate(Catalog.open(tmp_path / "catalog"), ["articleType"], k=5)
    precision = result.deduplicated[0].precision
    assert precision >= FLOOR, f"articleType P@5 {precision:.4f} is under the floor {FLOOR}"
