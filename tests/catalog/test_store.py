"""catalog/store.py: round trip, one transaction per batch, a clear error for a non-catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog.store import DB_NAME, CatalogStore, FileStamp, ProductRow, SkippedFile
from fashionrec.errors import CatalogError


def _row(product_id: str, value: float) -> ProductRow:
    vector = np.full(4, value, dtype=np.float32)
    return ProductRow(product_id, FileStamp(f"{product_id}.jpg", 10, 20, "ab"), vector, {"colour": "red"})


def test_round_trip(tmp_path: Path) -> None:
    with CatalogStore(tmp_path / "c", create=True) as store:
        store.write_batch([_row("b", 2.0), _row("a", 1.0)], skipped=[SkippedFile("x.jpg", "broken", 1, 2)])
    with CatalogStore(tmp_path / "c") as store:
        loaded = store.load(dim=4)
        assert loaded.ids == ["a", "b"] and loaded.vectors[1].tolist() == [2.0] * 4
        assert loaded.metadata[0] == {"colour": "red"}
        assert store.stamps()["a"] == FileStamp("a.jpg", 10, 20, "ab")
        assert store.skipped()["x.jpg"].reason == "broken"


def test_a_failed_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    with CatalogStore(tmp_path, create=True) as store:
        store.write_batch([_row("a", 1.0)])
        with pytest.raises(ValueError):
            with store.transaction() as db:
                db.execute("DELETE FROM products")
                raise ValueError("crash in the middle of a batch")
        assert store.count() == 1


def test_opening_a_folder_that_is_not_a_catalog(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not a fashionrec catalog"):
        CatalogStore(tmp_path)
    (tmp_path / DB_NAME).write_bytes(b"garbage" * 100)
    with pytest.raises(CatalogError, match="cannot be opened"):
        CatalogStore(tmp_path)
