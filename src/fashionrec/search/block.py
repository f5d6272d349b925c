"""Whole-catalog search against itself, by blocked matrix products (similar-all, evaluation, tuning)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fashionrec.search.exact import rank_by_similarity

BLOCK_ROWS = 512  # queries per matrix product in whole-catalog searches (memory: BLOCK_ROWS x catalog size)


EXTRA_CANDIDATES = 8  # whole-catalog searches rank this many more than asked by exact distance


@dataclass(frozen=True)
class BlockNeighbours:
    """For many queries at once: rows of their nearest vectors and the cosine to each, nearest first."""

    positions: np.ndarray  # int64 (queries, depth)
    similarities: np.ndarray  # float32 (queries, depth)


@dataclass(frozen=True)
class Shortlist:
    """Rank only the `size` rows nearest to each query's `as_query` form (its shape alone), then by the full query."""

    as_query: Callable[[np.ndarray], np.ndarray]
    size: int


def block_neighbours(vectors: np.ndarray, positions: np.ndarray, depth: int,
                     exclude: Callable[[int], Sequence[int]] = lambda q: [q],
                     as_query: Callable[[np.ndarray], np.ndarray] | None = None,
                     shortlist: Shortlist | None = None,
                     progress: Callable[[int], None] | None = None) -> BlockNeighbours:
    """The `depth` nearest rows to each query row `positions[i]`, by blocked matrix products.

    `exclude(q)` names the rows query q may not return (at least q itself). `as_query` turns rows into the
    queries searched with (e.g. `Catalog.query_vector`, which weighs the colour part); default: the rows
    themselves. With a `shortlist`, only each query's shortlist is ranked (what a colour query does on every face:
    `recommend.view.View`). Memory stays at one block of queries times the catalog, so a whole catalog can be
    searched against itself. `similarities` are the inner products of query and row. `progress` is told how many
    queries each block answered (a progress bar over a long run).
    """
    found = np.empty((len(positions), depth), dtype=np.int64)
    similar = np.empty((len(positions), depth), dtype=np.float32)
    wide = min(depth + EXTRA_CANDIDATES, len(vectors) - 1)
    for start in range(0, len(positions), BLOCK_ROWS):
        block = positions[start:start + BLOCK_ROWS]
        queries = vectors[block] if as_query is None else as_query(vectors[block])
        scores = queries @ vectors.T
        for row, query in enumerate(block):
            scores[row, list(exclude(int(query)))] = -np.inf
        shapes = None if shortlist is None else shortlist.as_query(vectors[block])
        listed, tiers = (None, scores) if shortlist is None else _tiers(scores, shapes @ vectors.T, shortlist.size)
        top = np.argpartition(-tiers, wide - 1, axis=1)[:, :wide]
        for row in range(len(block)):
            finite = np.isfinite(scores[row, top[row]])
            ranked = _ranked(vectors, top[row][finite], queries[row],
                             None if listed is None else (listed[row], shapes[row]))
            # Too few rows allowed (a tiny catalog): the excluded ones fill the end, as worst, in row order.
            ranked = np.concatenate([ranked, np.sort(top[row][~finite])])[:depth]
            inner = vectors[ranked[:min(int(finite.sum()), depth)]] @ queries[row]  # the excluded rows: -inf
            cosines = np.concatenate([inner.astype(np.float32), np.full(depth, -np.inf, np.float32)])
            found[start + row], similar[start + row] = ranked, cosines[:depth]
        if progress is not None:
            progress(len(block))
    return BlockNeighbours(found, similar)


TIER = np.float32(1e3)  # lifts a shortlist above the other rows when picking candidates (scores are within +-10)


def _tiers(scores: np.ndarray, shape_scores: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(queries, rows) bool: each row's `size` best shape scores among the rows it may return; and the keys the
    candidates are picked by: the full score within the shortlist, lifted above the shape score of the others."""
    shape_scores[~np.isfinite(scores)] = -np.inf
    size = min(size, scores.shape[1])
    kth = -np.partition(-shape_scores, size - 1, axis=1)[:, size - 1:size]
    above, tied = shape_scores > kth, shape_scores == kth
    wanted = size - above.sum(axis=1, keepdims=True)  # how many of the rows tied at the boundary: the first ones
    listed = (above | (tied & (np.cumsum(tied, axis=1) <= wanted))) & np.isfinite(scores)
    return listed, np.where(listed, scores + TIER, shape_scores)


def _ranked(vectors: np.ndarray, candidates: np.ndarray, query: np.ndarray,
            shortlist: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """`candidates` best first by exact inner product; with a shortlist (its rows, the shape-only query), its rows
    first by the query, then the others in shape order: what `recommend.view.View` gives for any k."""
    if shortlist is None:
        return rank_by_similarity(vectors, candidates, query)[0]
    listed, shape_query = shortlist
    inside = listed[candidates]
    return np.concatenate([rank_by_similarity(vectors, candidates[inside], query)[0],
                           rank_by_similarity(vectors, candidates[~inside], shape_query)[0]])


def top_neighbours(vectors: np.ndarray, positions: np.ndarray, depth: int,
                   exclude: Callable[[int], Sequence[int]] = lambda q: [q],
                   as_query: Callable[[np.ndarray], np.ndarray] | None = None,
                   shortlist: Shortlist | None = None) -> np.ndarray:
    """Just the rows of `block_neighbours` (queries, depth), nearest first."""
    return block_neighbours(vectors, positions, depth, exclude, as_query, shortlist).positions
