"""The main job on the real sample: 500 products with the default model, real full-resolution photos as queries.

This is the issue's acceptance check: a photo of an indexed product finds it in the top 5 for most photos.
"""

from __future__ import annotations

from pathlib import Path

from fashionrec.catalog.catalog import Catalog
from fashionrec.demo import run_demo


def test_real_photos_find_their_product_in_a_500_product_catalog(sample_dir: Path, tmp_path: Path) -> None:
    result = run_demo(data_dir=sample_dir, catalog_dir=tmp_path / "demo", limit=500, k=5, progress=False)
    catalog = Catalog.open(tmp_path / "demo")
    assert len(catalog) == 500 and catalog.model_name == "efficientnet-lite2"
    assert result.report.metadata_without_image == 0 and result.report.skipped == ()
    inside = [q for q in result.queries if q.product_id in catalog]
    assert all(q.indexed for q in inside)
    assert len(inside) == 17, "natural order puts every query's product among the first 500 ids"
    found = sum(q.rank is not None for q in inside)
    assert found >= 0.75 * len(inside), [(q.product_id, q.rank) for q in inside]
