"""One product per group of duplicate images: exact copies (same content hash) and near copies (cosine)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def distinct_rows(positions: np.ndarray, hashes: Sequence[str], vectors: np.ndarray | Mapping[int, np.ndarray], k: int,
                  duplicate_cosine: float, seen_hashes: Sequence[str] = (),
                  seen_vectors: np.ndarray | None = None) -> np.ndarray:
    """The first `k` of `positions` (nearest first) that are not duplicates of an earlier one.

    A row duplicates another when their images have the same content hash (an exact copy) or their
    vectors' cosine is at least `duplicate_cosine` (a near copy: the same photo resized or re-encoded).
    `vectors[position]` gives a row's vector: the whole matrix, or a mapping of just these positions.
    `seen_hashes` / `seen_vectors` count as already taken: the query product's, so that "more like this"
    never offers a copy of the product itself. Returns indices into `positions`.

    Example:
        >>> hashes = ["h0", "h1", "h2", "h3", "same", "h5", "h6", "same"]  # rows 4 and 7: one file twice
        >>> distinct_rows(np.array([4, 7, 2]), hashes, np.eye(8, dtype=np.float32), k=2, duplicate_cosine=0.99)
        array([0, 2])
    """
    taken_hashes = set(seen_hashes)
    taken = [] if seen_vectors is None else [np.asarray(v, dtype=np.float32) for v in np.atleast_2d(seen_vectors)]
    chosen: list[int] = []
    near_copies = bool(np.isfinite(duplicate_cosine))  # else exact copies only, and no vector is read
    for index, position in enumerate(positions.tolist()):
        if hashes[position] in taken_hashes:
            continue
        if near_copies:
            vector = vectors[position]
            if taken and float(np.max(np.stack(taken) @ vector)) >= duplicate_cosine:
                continue
            taken.append(vector)
        chosen.append(index)
        taken_hashes.add(hashes[position])
        if len(chosen) == k:
            break
    return np.array(chosen, dtype=np.int64)
