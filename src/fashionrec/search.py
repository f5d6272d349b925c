"""k-nearest-neighbour search over unit vectors: exact (numpy) by default, FAISS HNSW for large catalogs.

Every index answers through one interface, `SearchBackend.search(query, k, restriction)`: `ExactIndex`,
`AnnIndex` (FAISS) here, and `fashionrec.scale.milvus.MilvusIndex` for a Milvus server. A `Restriction`
carries which rows a query may return both as a row mask (for indexes over the catalog's rows) and as
the filters it came from (for an external index that knows products by id).

On unit vectors Euclidean distance and cosine similarity rank alike (d^2 = 2 - 2 cos), so the
candidates are found by one matrix product, and the few winners are then ranked by their exact distances (ties
by row). BLAS gives two equal vectors scores a few ulps apart depending on where they sit in the matrix (and
a matrix-matrix product other ulps than a matrix-vector one), so ranking by those scores would order exact
copies differently in different searches; the distances are computed row by row, the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from fashionrec.errors import FashionrecError


BLOCK_ROWS = 512  # queries per matrix product in whole-catalog searches (memory: BLOCK_ROWS x catalog size)
TIE_SLACK = 1e-5  # candidates this close to the k-th best score are ranked by exact distance too
EXTRA_CANDIDATES = 8  # whole-catalog searches rank this many more than asked by exact distance


@dataclass(frozen=True)
class Neighbours:
    """Rows of the nearest vectors, nearest first, and their Euclidean distances to the query."""

    positions: np.ndarray  # int64 (k,)
    distances: np.ndarray  # float32 (k,)
    vectors: np.ndarray | None = None  # (k, d) the neighbours' vectors, from a backend that keeps them elsewhere


@dataclass(frozen=True)
class Restriction:
    """Which catalog rows a query may return."""

    mask: np.ndarray | None = None  # (n,) bool; None: every row
    where: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # column -> allowed values, lower-cased
    exclude: tuple[int, ...] = ()  # rows left out whatever the filters say (the query product)

    def count(self, rows: int) -> int:
        """How many of `rows` rows are allowed."""
        return rows if self.mask is None else int(self.mask.sum())


class SearchBackend(Protocol):
    """A k-NN index over the catalog's search vectors (row-aligned with `Catalog.ids`)."""

    name: str

    def search(self, query: np.ndarray, k: int, restriction: Restriction | None = None) -> Neighbours:
        """The `k` allowed rows nearest to `query` (fewer when fewer are allowed), nearest first, with their
        Euclidean distances."""
        ...

    def vector(self, position: int) -> np.ndarray:
        """The search vector of catalog row `position` (the query of "more like this")."""
        ...


class ExactIndex:
    """Exact search by one matrix-vector product: the default, and the reference the others are measured by."""

    name = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        self._vectors = vectors

    def search(self, query: np.ndarray, k: int, restriction: Restriction | None = None) -> Neighbours:
        """See `SearchBackend.search`."""
        return exact_search(self._vectors, query, k, restriction.mask if restriction else None)

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


def rank_rows(rows: np.ndarray, positions: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`rank_by_similarity` for rows already at hand (a backend that returns its hits' vectors): the order of
    `rows` best first (ties by their catalog `positions`), and their Euclidean distances to `query` in that order."""
    query = np.asarray(query, dtype=np.float32)
    scores = (rows * query[None, :]).sum(axis=1)
    order = np.lexsort((positions, -scores))
    return order, np.linalg.norm(rows[order] - query[None, :], axis=1).astype(np.float32)


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


@dataclass(frozen=True)
class BlockNeighbours:
    """For many queries at once: rows of their nearest vectors and the cosine to each, nearest first."""

    positions: np.ndarray  # int64 (queries, depth)
    similarities: np.ndarray  # float32 (queries, depth)


def block_neighbours(vectors: np.ndarray, positions: np.ndarray, depth: int,
                     exclude: Callable[[int], Sequence[int]] = lambda q: [q],
                     as_query: Callable[[np.ndarray], np.ndarray] | None = None) -> BlockNeighbours:
    """The `depth` nearest rows to each query row `positions[i]`, by blocked matrix products.

    `exclude(q)` names the rows query q may not return (at least q itself). `as_query` turns rows into the
    queries searched with (e.g. `Catalog.query_vector`, which weighs the colour part); default: the rows
    themselves. Memory stays at one block of queries times the catalog, so a whole catalog can be searched
    against itself. `similarities` are the inner products of query and row.
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
        top = np.argpartition(-scores, wide - 1, axis=1)[:, :wide]
        for row, query in enumerate(block.tolist()):
            finite = np.isfinite(scores[row, top[row]])
            ranked, _ = rank_by_similarity(vectors, top[row][finite], queries[row])
            # Too few rows allowed (a tiny catalog): the excluded ones fill the end, as worst, in row order.
            ranked = np.concatenate([ranked, np.sort(top[row][~finite])])[:depth]
            inner = vectors[ranked[:min(int(finite.sum()), depth)]] @ queries[row]  # the excluded rows: -inf
            cosines = np.concatenate([inner.astype(np.float32), np.full(depth, -np.inf, np.float32)])
            found[start + row], similar[start + row] = ranked, cosines[:depth]
    return BlockNeighbours(found, similar)


def top_neighbours(vectors: np.ndarray, positions: np.ndarray, depth: int,
                   exclude: Callable[[int], Sequence[int]] = lambda q: [q],
                   as_query: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Just the rows of `block_neighbours` (queries, depth), nearest first."""
    return block_neighbours(vectors, positions, depth, exclude, as_query).positions


class AnnIndex:
    """Approximate k-NN over unit vectors: a FAISS HNSW graph (inner product), for catalogs past exact search.

    Measured on this machine (docs/PERFORMANCE.md, 512-d): at 1M vectors efSearch 512 keeps recall@10 at 0.969
    against exact search (256: 0.955, 128: 0.930) for 1.2 ms a query instead of exact search's 97 ms. Filters and exclusions are applied inside the graph search (a bitmap of allowed rows), so a
    filtered query gets the k best allowed rows, not a filtered top k. Distances are computed exactly.
    """

    name = "hnsw"

    def __init__(self, index: object, vectors: np.ndarray) -> None:
        self._index = index
        self._vectors = vectors

    @classmethod
    def build(cls, vectors: np.ndarray, path: Path | None = None, neighbours: int = 32,
              ef_construction: int = 80, ef_search: int = 512) -> AnnIndex:
        """Load the graph from `path` if it is there, else build it (and publish it there, atomically).

        `path` must be named by the vectors it indexes (`catalog.derived.hnsw_path`): a file of other vectors is
        another file, never this one.

        Raises:
            FashionrecError: faiss is not installed.
        """
        faiss = _faiss()
        if path is not None and path.is_file():
            index = faiss.read_index(str(path))
            if index.ntotal != len(vectors) or index.d != vectors.shape[1]:
                raise FashionrecError(f"the HNSW file {path} does not hold these vectors (damaged); delete it to "
                                      "rebuild it")
        else:
            index = faiss.IndexHNSWFlat(vectors.shape[1], neighbours, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
            if path is not None:
                from fashionrec.catalog.derived import publish_with

                publish_with(path, lambda temporary: faiss.write_index(index, temporary))
        index.hnsw.efSearch = ef_search
        return cls(index, vectors)

    def vector(self, position: int) -> np.ndarray:
        """See `SearchBackend.vector`."""
        return self._vectors[position]

    def search(self, query: np.ndarray, k: int, restriction: Restriction | None = None) -> Neighbours:
        """Like `exact_search`, approximately (see `SearchBackend.search`)."""
        faiss = _faiss()
        allowed = restriction.mask if restriction else None
        available = len(self._vectors) if allowed is None else int(allowed.sum())
        k = min(k, available)
        if k < 1:
            return Neighbours(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        params = faiss.SearchParametersHNSW(efSearch=max(self._index.hnsw.efSearch, k))
        if allowed is not None:
            bitmap = np.packbits(allowed.astype(np.uint8), bitorder="little")
            params.sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        _, found = self._index.search(query[None, :].astype(np.float32), k, params=params)
        positions, distances = rank_by_similarity(self._vectors, found[0][found[0] >= 0], query)
        return Neighbours(positions, distances)


def _faiss():
    """The faiss module, or a clear error."""
    try:
        import faiss
    except ImportError:
        raise FashionrecError("approximate search needs faiss: pip install 'fashionrec[ann]'") from None
    return faiss
