"""Exact k-NN by one matrix product, and the exact ranking every backend shares."""

from __future__ import annotations

import numpy as np

from fashionrec.search.backend import Neighbours, Restriction

TIE_SLACK = 1e-5  # candidates this close to the k-th best score are ranked by exact distance too


class ExactIndex:
    """Exact search by one matrix-vector product: the default, and the reference the others are measured by."""

    name = "exact"

    def __init__(self, vectors: np.ndarray, with_rows: bool = False) -> None:
        """`with_rows`: hits come with their vectors, and `rows` reads any row, as the compact index's do: a stand-in
        for it holds the only copy of the floats (the catalog keeps none), so a query never loads the catalog's."""
        self._vectors = vectors
        self._with_rows = with_rows

    def search(self, query: np.ndarray, k: int, restriction: Restriction | None = None) -> Neighbours:
        """See `SearchBackend.search`."""
        found = exact_search(self._vectors, query, k, restriction.mask if restriction else None)
        return Neighbours(found.positions, found.distances, self._vectors[found.positions]) if self._with_rows \
            else found

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The vectors of catalog rows."""
        return self._vectors[positions]

    def vector(self, position: int) -> np.ndarray:
        """See `SearchBackend.vector`."""
        return self._vectors[position]


def exact_search(vectors: np.ndarray, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> Neighbours:
    """The `k` rows of `vectors` nearest to `query`, among the rows where `allowed` is True.

    Args:
        vectors: (n, d) float32 unit vectors.
        query: (d,) unit vector.
        k: how many neighbours; fewer come back when fewer rows are allowed.
        allowed: optional (n,) bool mask (filters, the query product itself excluded).

    Returns:
        `Neighbours`, nearest first; ties are broken by row, so results are deterministic.

    Example:
        >>> exact_search(np.eye(3, dtype=np.float32), np.array([1, 0, 0], np.float32), k=2).positions
        array([0, 1])
    """
    if vectors.ndim != 2 or query.shape != (vectors.shape[1],):
        raise ValueError(f"query of shape {query.shape} does not fit vectors of shape {vectors.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    similarity = vectors @ query.astype(np.float32, copy=False)
    candidates = np.flatnonzero(allowed) if allowed is not None else np.arange(len(vectors))
    k = min(k, len(candidates))
    if k == 0:
        return Neighbours(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    scores = similarity[candidates]
    if k < len(candidates):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        near = scores >= kth - TIE_SLACK
        candidates = candidates[near]
    positions, distances = rank_by_similarity(vectors, candidates, query)
    return Neighbours(positions[:k], distances[:k])


def rank_by_similarity(vectors: np.ndarray, positions: np.ndarray,
                       query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`positions` best first by their exact inner product with `query`, ties by row, and their Euclidean distances.

    The inner product is what every backend ranks by (FAISS and Milvus use it too): with a colour weight the
    query [shape; w * colour] is longer than a product's vector, and a product whose colour is not known yet has a
    zero colour part (no colour match), so distance and inner product need not agree. Each score is computed from
    its own row alone (no BLAS blocking), so equal vectors get equal scores wherever they sit: every backend orders
    exact copies the same way.
    """
    positions = np.asarray(positions, dtype=np.int64)
    order, distances = rank_rows(vectors[positions], positions, query)
    return positions[order], distances


def rank_rows(rows: np.ndarray, positions: np.ndarray, query: np.ndarray,
              k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`rank_by_similarity` for rows already at hand (a backend that returns its hits' vectors): the order of
    `rows` best first (ties by their catalog `positions`), the first `k` of it if given (the distances of only those
    are computed: a re-rank of 100 candidates wants 10), and their Euclidean distances to `query` in that order."""
    query = np.asarray(query, dtype=np.float32)
    scores = (rows * query[None, :]).sum(axis=1)
    order = np.lexsort((positions, -scores))[:k]
    return order, np.linalg.norm(rows[order] - query[None, :], axis=1).astype(np.float32)
