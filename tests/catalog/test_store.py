"""catalog/store.py: round trip, one transaction per batch, a clear error for a non-catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog.rows import FileStamp, ProductRow, SkippedFile, StoredProduct
from fashionrec.catalog.schema import SCHEMA_VERSION
from fashionrec.catalog.store import DB_NAME, CatalogStore
from fashionrec.errors import CatalogError


def _row(product_id: str, value: float) -> ProductRow:
    vector = np.full(4, value, dtype=np.float32)
    return ProductRow(product_id, "/shop/images", FileStamp(f"{product_id}.jpg", 10, 20, "ab"), vector,
                      {"colour": "red"})


def test_round_trip(tmp_path: Path) -> None:
    with CatalogStore(tmp_path / "c", create=True) as store:
        assert store.generation() == 0
        store.write_batch("/shop/images", [_row("b", 2.0), _row("a", 1.0)],
                          skipped=[SkippedFile("x.jpg", "broken", 1, 2)])
        assert store.generation() == 1
    with CatalogStore(tmp_path / "c") as store:
        loaded = store.load()
        assert loaded.ids == ["a", "b"] and loaded.folders == ["/shop/images"] * 2
        assert store.vectors_at(1, 2, dim=4)[1].tolist() == [2.0] * 4
        assert loaded.metadata[0] == {"colour": "red"}
        assert store.products()["a"] == StoredProduct("/shop/images", FileStamp("a.jpg", 10, 20, "ab"))
        assert store.skipped("/shop/images")["x.jpg"].reason == "broken"
        assert store.skipped()["/shop/images/x.jpg"].reason == "broken"
        with pytest.raises(CatalogError, match="changed since it was opened"):
            store.vectors_at(0, 2, dim=4)


def test_every_change_moves_the_generation_and_only_changes_do(tmp_path: Path) -> None:
    with CatalogStore(tmp_path, create=True) as store:
        store.write_batch("/f", [_row("a", 1.0)])
        store.write_batch("/f", skipped=[SkippedFile("bad.jpg", "broken")])  # a skipped file is no product change
        assert store.generation() == 1
        store.update_metadata({"a": {"colour": "red"}})  # the same metadata again
        assert store.generation() == 1
        store.update_metadata({"a": {"colour": "blue"}})
        store.set_space("abc")
        store.set_space("abc")
        store.remove(["a"])
        assert store.generation() == 4
        with pytest.raises(CatalogError, match="changed its search space meanwhile"):
            store.set_space("def", expected="old")


def test_a_catalog_of_format_1_is_refused_and_rebuilt_by_index(tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / DB_NAME) as db:  # what fashionrec 0.1 wrote
        db.executescript("CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                         "CREATE TABLE products (id TEXT PRIMARY KEY, path TEXT, vector BLOB);"
                         "INSERT INTO info VALUES ('schema_version', '1'), ('images_dir', '/shop'), "
                         "('model_id', 'efficientnet-lite2:abc:def');"
                         "INSERT INTO products VALUES ('1', '1.jpg', x'00');")
    with pytest.raises(CatalogError, match="format 1 .* run fashionrec index /shop --catalog"):
        CatalogStore(tmp_path)
    with CatalogStore(tmp_path, create=True) as store:  # what index does
        assert store.count() == 0 and store.info() == {"schema_version": SCHEMA_VERSION, "images_dir": "/shop"}


def test_a_failed_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    with CatalogStore(tmp_path, create=True) as store:
        store.write_batch("/f", [_row("a", 1.0)])
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


def test_vectors_read_in_blocks_come_back_whole_and_in_id_order(tmp_path: Path) -> None:
    """Vectors are read and transformed `READ_BLOCK_ROWS` at a time (a block's intermediates bound the peak), and
    the load reads its rows in batches (`columns.BATCH_ROWS`): any block or batch size gives the same snapshot."""
    with CatalogStore(tmp_path / "c", create=True) as store:
        store.write_batch("/f", [_row(f"{n:04d}", float(n)) for n in range(1100)][::-1])
    with CatalogStore(tmp_path / "c") as store:
        whole = store.vectors_at(1, 1100, dim=4)
        assert whole[:, 0].tolist() == [float(n) for n in range(1100)]
        for rows in (1, 7, 1099, 1100, 4096):
            assert np.array_equal(store.vectors_at(1, 1100, dim=4, rows=rows), whole)
            assert np.array_equal(np.concatenate(list(store.blocks_at(1, 1100, 4, rows=rows))), whole)
        loaded = store.load()
        assert loaded.ids == [f"{n:04d}" for n in range(1100)] and list(loaded.metadata) == [{"colour": "red"}] * 1100
