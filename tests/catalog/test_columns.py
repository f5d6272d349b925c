"""catalog/columns.py: metadata held column by column gives back every product's dict exactly, and its digest is
the one derived files were named by before."""

from __future__ import annotations

import json

import pytest

from fashionrec.catalog.columns import MetadataColumns
from fashionrec.catalog.derived import _digest, _metadata_digest

ROWS = [{}, {"gender": "Men", "baseColour": "Navy Blue"}, {"gender": "Men"}, {"usage": None, "gender": "Wömen ✓"},
        {}, {"gender": "Men", "baseColour": None, "extra": "only here"}, {}]


def test_every_row_comes_back_as_it_was_stored() -> None:
    table = MetadataColumns.from_rows(iter(ROWS))  # a generator: rows are taken as they come
    assert len(table) == len(ROWS) and list(table) == ROWS
    assert [list(row) for row in table] == [list(row) for row in ROWS]  # each product's own key order
    assert [table[i] for i in range(len(ROWS))] == ROWS and table[-1] == {} and table[-2] == ROWS[-2]
    assert table.column("gender") == [row.get("gender") for row in ROWS]
    assert table.column("extra") == [None] * 5 + ["only here", None]
    assert table.column("no such column") == [None] * len(ROWS)
    table[1]["gender"] = "changed"  # a copy each time: the table is not changed through it
    assert table[1] == ROWS[1]
    with pytest.raises(IndexError):
        table[len(ROWS)]
    empty = MetadataColumns.from_rows([{}, {}])
    assert len(empty) == 2 and list(empty) == [{}, {}] and empty.column("gender") == [None, None]


def test_the_metadata_digest_is_the_one_of_the_whole_list() -> None:
    """Derived files (Milvus copies) are named by it: hashing row by row must not rename them."""
    for rows in (ROWS, [], [{}], ROWS * 20_000):  # the last over a block of 65,536 rows
        whole = _digest(json.dumps([dict(row) for row in rows], sort_keys=True, ensure_ascii=False).encode())
        assert _metadata_digest(MetadataColumns.from_rows(rows)) == whole == _metadata_digest(rows)


def test_an_old_catalogs_values_that_are_not_text_keep_their_type_and_are_not_shared() -> None:
    """Written before values had to be text: 2012 and "2012", True and 1 are other values; a list is a copy."""
    rows = [{"year": "2012"}, {"year": 2012}, {"flag": True}, {"flag": 1}, {"sizes": ["S", "M"]}, {"sizes": ["S", "M"]}]
    table = MetadataColumns.from_rows(rows)
    assert list(table) == rows and [type(v) for v in table.column("year")[:2]] == [str, int]
    assert table[2]["flag"] is True and table[3]["flag"] == 1 and table[3]["flag"] is not True
    table[4]["sizes"].append("L")
    assert table[5] == {"sizes": ["S", "M"]} and table.column("sizes")[4] == ["S", "M"]
    orders = [{"m": {"x": 1, "y": 2}}, {"m": {"y": 2, "x": 1}}]  # one value (one code): as first stored, key order too
    assert [list(row["m"]) for row in MetadataColumns.from_rows(orders)] == [["x", "y"], ["x", "y"]]


def test_the_json_of_each_row_is_what_json_dumps_writes() -> None:
    rows = ROWS + [{"year": 2012, "b": "ü", "a": None}]
    table = MetadataColumns.from_rows(rows)
    assert list(table.json_texts()) == [json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows]



def test_the_json_of_rows_over_a_block_and_of_several_key_orders_is_what_json_dumps_writes() -> None:
    """`json_texts` joins a column at a time over blocks of 65,536 rows, each key order (shape) apart."""
    rows = ([{"gender": "Men", "season": "Fall"}, {"season": "Fall", "gender": "Men"}, {}, {"year": 2012}] * 17_000
            + [{"new": "only at the end", "gender": "Wömen"}])
    table = MetadataColumns.from_rows(rows)
    assert list(table.json_texts()) == [json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows]
