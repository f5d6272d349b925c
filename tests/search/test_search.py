"""search/: exact search equals brute force on seeded data, with masks, ties and small catalogs."""

from __future__ import annotations

import numpy as np
import pytest

from fashionrec.vectors import l2_normalize
from fashionrec.search.exact import exact_search


def _brute_force(vectors: np.ndarray, query: np.ndarray, k: int, allowed: np.ndarray) -> list[int]:
    distances = np.linalg.norm(vectors.astype(np.float64) - query, axis=1)
    rows = [i for i in np.argsort(distances, kind="stable") if allowed[i]]
    return rows[:k]


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = l2_normalize(rng.normal(size=(500, 32)))
    query = l2_normalize(rng.normal(size=32))
    allowed = rng.random(500) < 0.5
    found = exact_search(vectors, query, 10, allowed)
    assert found.positions.tolist() == _brute_force(vectors, query, 10, allowed)
    np.testing.assert_allclose(found.distances, np.linalg.norm(vectors[found.positions] - query, axis=1), rtol=1e-6)
    assert np.all(np.diff(found.distances) >= -1e-6)


def test_ties_are_broken_by_row_and_duplicates_have_distance_zero() -> None:
    vectors = l2_normalize(np.array([[0, 1], [1, 0], [1, 0], [0.9, 0.1]], dtype=np.float32))
    found = exact_search(vectors, vectors[1], k=3)
    assert found.positions.tolist() == [1, 2, 3] and found.distances[:2].tolist() == [0.0, 0.0]


def test_k_larger_than_the_allowed_rows_returns_them_all() -> None:
    vectors = l2_normalize(np.eye(4, dtype=np.float32))
    assert len(exact_search(vectors, vectors[0], k=10).positions) == 4
    assert len(exact_search(vectors, vectors[0], k=3, allowed=np.zeros(4, bool)).positions) == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        exact_search(np.zeros((3, 4), np.float32), np.zeros(5, np.float32), 1)
    with pytest.raises(ValueError, match="at least 1"):
        exact_search(np.zeros((3, 4), np.float32), np.zeros(4, np.float32), 0)


def test_distinct_rows_skips_exact_and_near_copies() -> None:
    from fashionrec.search.dedupe import distinct_rows

    vectors = np.eye(6, dtype=np.float32)
    vectors[5] = 0.9999 * vectors[1] + 0.01 * vectors[2]
    vectors[5] /= np.linalg.norm(vectors[5])
    hashes = ["a", "b", "c", "a", "e", "f"]
    order = np.array([0, 3, 1, 5, 2, 4])
    assert distinct_rows(order, hashes, vectors, k=4, duplicate_cosine=0.999).tolist() == [0, 2, 4, 5]
    assert distinct_rows(order, hashes, vectors, k=4, duplicate_cosine=1.01).tolist() == [0, 2, 3, 4]
    assert distinct_rows(order, hashes, vectors, k=9, duplicate_cosine=0.999).tolist() == [0, 2, 4, 5]
    seen = distinct_rows(order, hashes, vectors, k=2, duplicate_cosine=0.999, seen_hashes=["a"],
                         seen_vectors=vectors[[2]])
    assert seen.tolist() == [2, 5]  # rows 0 and 3 copy the seen hash; row 2 is the seen vector itself
    # Vectors a backend returned with its neighbours (a mapping of just those rows) give the same answer,
    only_found = {position: vectors[position] for position in order.tolist()}
    assert distinct_rows(order, hashes, only_found, k=4, duplicate_cosine=0.999).tolist() == [0, 2, 4, 5]
    # and with exact copies only, no vector is read at all.
    assert distinct_rows(order, hashes, {}, k=4, duplicate_cosine=np.inf).tolist() == [0, 2, 3, 4]


def test_hnsw_index_matches_exact_search_with_and_without_a_mask(tmp_path) -> None:
    pytest.importorskip("faiss", reason="approximate search needs faiss (pip install -e '.[ann]')")
    from fashionrec.search.hnsw import AnnIndex
    from fashionrec.search.backend import Restriction

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(2000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = AnnIndex.build(vectors, ef_search=256)
    index.write(str(tmp_path / "hnsw.faiss"))
    assert (tmp_path / "hnsw.faiss").is_file()
    allowed = rng.random(2000) < 0.1
    hits = total = 0
    for query in vectors[:50] + 0.05 * rng.normal(size=(50, 32)).astype(np.float32):
        query /= np.linalg.norm(query)
        for mask in (None, allowed):
            want = exact_search(vectors, query, 10, mask)
            got = index.search(query, 10, None if mask is None else Restriction(mask))
            assert mask is None or allowed[got.positions].all()
            hits += len(set(got.positions.tolist()) & set(want.positions.tolist()))
            total += 10
            assert np.all(np.diff(got.distances) >= 0)
    assert hits / total >= 0.95
    again = AnnIndex.load(tmp_path / "hnsw.faiss", vectors)  # loaded from the file, not rebuilt
    assert again.search(vectors[0], 1).positions.tolist() == [0]
    assert index.search(vectors[0], 5, Restriction(np.zeros(2000, dtype=bool))).positions.size == 0


def test_every_search_ranks_by_inner_product_even_when_products_differ_in_length() -> None:
    """Issue 15: a product whose colour is not known yet has a zero colour part, so it is shorter than the others and
    a weighted query is longer than any: ranking by distance would then differ from the similarity shown."""
    from fashionrec.search.block import block_neighbours

    rng = np.random.default_rng(3)
    shape, colour = l2_normalize(rng.normal(size=(200, 12))), l2_normalize(rng.normal(size=(200, 4)))
    colour[::3] = 0.0  # every third product: colour unknown
    vectors = np.concatenate([shape, colour], axis=1).astype(np.float32)
    query = vectors[7] * np.r_[np.ones(12), np.full(4, 2.5)].astype(np.float32)
    scores = vectors @ query
    scores[7] = -np.inf
    wanted = np.argsort(-scores, kind="stable")[:10]
    allowed = np.ones(200, dtype=bool)
    allowed[7] = False
    assert exact_search(vectors, query, 10, allowed).positions.tolist() == wanted.tolist()
    found = block_neighbours(vectors, np.array([7]), 10,
                             as_query=lambda rows: rows * np.r_[np.ones(12), np.full(4, 2.5)].astype(np.float32))
    assert found.positions[0].tolist() == wanted.tolist()
    np.testing.assert_allclose(found.similarities[0], scores[wanted], rtol=1e-5)


def test_block_neighbours_reports_every_allowed_row_when_some_are_excluded() -> None:
    from fashionrec.search.block import block_neighbours

    vectors = l2_normalize(np.random.default_rng(4).normal(size=(12, 6))).astype(np.float32)
    found = block_neighbours(vectors, np.array([0]), 5, exclude=lambda q: [0, 1])
    scores = vectors[2:] @ vectors[0]
    assert np.isfinite(found.similarities).all()
    np.testing.assert_allclose(found.similarities[0], np.sort(scores)[::-1][:5], rtol=1e-5)
