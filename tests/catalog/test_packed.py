"""catalog/packed.py: a snapshot's columns held as arrays give back exactly what was stored, row by row."""

from __future__ import annotations

import hashlib
from array import array

import numpy as np
import pytest

from fashionrec.catalog.packed import HexDigests, IdRows, PackedTexts, int_column


def packed(texts: list[str | None]) -> PackedTexts:
    column = PackedTexts()
    for text in texts:
        column.append(text)
    return column.seal()


def test_texts_come_back_as_written_by_index_slice_and_iteration() -> None:
    texts = ["1530.jpg", None, "", "Übergröße 👗", "a" * 300, None, "images/ab/abc.png"]
    column = packed(texts)
    assert len(column) == len(texts) and list(column) == texts
    assert [column[row] for row in range(len(texts))] == texts
    assert column[-1] == texts[-1] and column[1:4] == texts[1:4] and column[::-2] == texts[::-2]
    with pytest.raises(IndexError):
        column[len(texts)]
    with pytest.raises(TypeError):
        column.append("more")  # sealed: read-only like the snapshot it belongs to
    assert list(packed([])) == [] and len(packed([])) == 0


def test_hashes_are_held_as_raw_bytes_when_they_are_lower_case_hex_and_kept_as_text_otherwise() -> None:
    hashes = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(50)]
    raw = HexDigests.pack(packed(hashes))
    assert isinstance(raw, HexDigests) and raw.nbytes() == 50 * 32
    assert list(raw) == hashes and raw[7] == hashes[7] and raw[3:6] == hashes[3:6] and raw[-1] == hashes[-1]
    many = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(70_000)]  # iterated a block at a time
    assert list(HexDigests.pack(packed(many))) == many
    for odd in (hashes[:3] + [hashes[3].upper()], hashes[:3] + [""], hashes[:3] + ["abc"], hashes[:2] + [None],
                ["not hex " * 8]):
        kept = HexDigests.pack(packed(odd))
        assert isinstance(kept, PackedTexts) and list(kept) == odd  # nothing lost, nothing rewritten


def test_int_columns_are_read_only_arrays_of_the_values() -> None:
    column = int_column(array("q", [0, 3, 2**40, -1]))
    assert column.tolist() == [0, 3, 2**40, -1] and column.dtype == np.int64
    with pytest.raises(ValueError):
        column[0] = 5


def test_ids_are_found_by_bisection_when_sorted_and_through_a_dict_otherwise() -> None:
    ids = sorted(["10", "9", "abc", "Abc", "é", "z", "😀", "1", ""])
    rows = IdRows(ids)
    assert rows._rows is None  # sorted, as a snapshot's are: no dict held
    assert all(rows[product_id] == row for row, product_id in enumerate(ids))
    for absent in ("2", "zz", "ab", 10, None, b"10"):
        assert absent not in rows
        with pytest.raises(KeyError):
            rows[absent]
    shuffled = IdRows(["b", "a", "c"])
    assert shuffled._rows is not None and shuffled["a"] == 1 and "d" not in shuffled and len(shuffled) == 3


def test_the_smallest_distinct_digests_are_the_ones_the_text_sample_takes() -> None:
    """`recommend.answers.sample_positions` on raw digests picks the rows it picks on their text."""
    from fashionrec.recommend.answers import sample_positions

    rng = np.random.default_rng(0)
    distinct = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(300)]
    hashes = [distinct[i] for i in rng.integers(0, 300, 1000)]  # copies: each digest's first row counts
    hashes[10] = "00" + hashes[10][2:]  # digests sharing their first 8 bytes, told apart by the rest
    hashes[11] = "00" + hashes[10][2:-1] + "0"
    raw = HexDigests.pack(packed(hashes))
    assert isinstance(raw, HexDigests)
    for size in (1, 5, 100, 5000):
        assert sample_positions(raw, size).tolist() == sample_positions(list(hashes), size).tolist()


def test_columns_compare_as_the_lists_they_replace_and_refuse_what_a_list_refuses() -> None:
    hashes = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(5)]
    raw, again, texts = HexDigests.pack(packed(hashes)), HexDigests.pack(packed(hashes)), packed(["a", None, "b"])
    assert raw == again == hashes and raw != hashes[:4] and raw != list(reversed(hashes))
    assert texts == ["a", None, "b"] and texts == packed(["a", None, "b"]) and texts != ["a", None, "c"]
    assert texts != "aNoneb" and raw[np.int64(2)] == hashes[2] and texts[np.int32(2)] == "b"
    for column in (raw, texts):
        with pytest.raises(TypeError):
            column[np.array([0, 1])]  # a list refuses an array index; never one joined text
        with pytest.raises(TypeError):
            column[1.0]
        with pytest.raises(TypeError):
            hash(column)
    unsealed = PackedTexts()
    unsealed.append("x")
    with pytest.raises(TypeError, match="sealed"):
        unsealed[0]  # read only once sealed: never sealed lazily by two threads at once
