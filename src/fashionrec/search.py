"""k-nearest-neighbour search over unit vectors: exact by default (numpy).

On unit vectors Euclidean distance and cosine similarity rank alike (d^2 = 2 - 2 cos), so the
candidates are ranked by one matrix-vector product and the reported distances are then computed
exactly for the k winners only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Neighbours:
    """Rows of the nearest vectors, nearest first, and their Euclidean distances to the query."""

    positions: np.ndarray  # int64 (k,)
    distances: np.ndarray  # float32 (k,)


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
        keep = np.argpartition(-scores, k - 1)[:k]
        candidates, scores = candidates[keep], scores[keep]
    order = np.lexsort((candidates, -scores))[:k]
    positions = candidates[order].astype(np.int64)
    distances = np.linalg.norm(vectors[positions] - query[None, :], axis=1).astype(np.float32)
    return Neighbours(positions, distances)
