"""catalog/columns.py: metadata held column by column gives back every product's dict exactly, and its digest is
the one derived files were named by before."""

from __future__ import annotations

import json

import pytest

from fashionrec.catalog.columns import MetadataTable
from fashionrec.catalog.derived import _digest, _metadata_digest

ROWS = [{}, {"gender": "Men", "baseColour": "Navy Blue"}, {"gender": "Men"}, {"usage": None, "gender": "Wömen ✓"},
        {}, {"gender": "Men", "baseColour": None, "extra": "only here"}, {}]


def test_every_row_comes_back_as_it_was_stored() -> None:
    table = MetadataTable.from_rows(iter(ROWS))  # a generator: rows are taken as they come
    assert len(table) == len(ROWS) and list(table) == ROWS
    assert [table[i] for i in range(len(ROWS))] == ROWS and table[-1] == {} and table[-2] == ROWS[-2]
    assert table.column("gender") == [row.get("gender") for row in ROWS]
    assert table.column("extra") == [None] * 5 + ["only here", None]
    assert table.column("no such column") == [None] * len(ROWS)
    table[1]["gender"] = "changed"  # a copy each time: the table is not changed through it
    assert table[1] == ROWS[1]
    with pytest.raises(IndexError):
        table[len(ROWS)]
    empty = MetadataTable.from_rows([{}, {}])
    assert len(empty) == 2 and list(empty) == [{}, {}] and empty.column("gender") == [None, None]


def test_the_metadata_digest_is_the_one_of_the_whole_list() -> None:
    """Derived files (Milvus copies) are named by it: hashing row by row must not rename them."""
    for rows in (ROWS, [], [{}]):
        whole = _digest(json.dumps([dict(row) for row in rows], sort_keys=True, ensure_ascii=False).encode())
        assert _metadata_digest(MetadataTable.from_rows(rows)) == whole == _metadata_digest(rows)
