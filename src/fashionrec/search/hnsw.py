"""Approximate k-NN: a FAISS HNSW graph over the search vectors, for catalogs past exact search."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from fashionrec.errors import FashionrecError
from fashionrec.search.backend import Neighbours, Restriction
from fashionrec.search.exact import rank_by_similarity


class AnnIndex:
    """Approximate k-NN over unit vectors: a FAISS HNSW graph (inner product), for catalogs past exact search.

    Measured on this machine (docs/PERFORMANCE.md, 512-d): at 1M vectors efSearch 512 keeps recall@10 at 0.969
    against exact search (256: 0.955, 128: 0.930) for 1.2 ms a query instead of exact search's 97 ms. Filters
    and exclusions are applied inside the graph search (a bitmap of allowed rows), so a filtered query gets the k
    best allowed rows, not a filtered top k. Distances are computed exactly.
    """

    name = "hnsw"

    def __init__(self, index: object, vectors: np.ndarray) -> None:
        self._index = index
        self._vectors = vectors

    @classmethod
    def build(cls, vectors: np.ndarray, neighbours: int = 32, ef_construction: int = 80,
              ef_search: int = 512) -> AnnIndex:
        """Build the graph over `vectors` (row i of the graph is row i of `vectors`).

        Raises:
            FashionrecError: faiss is not installed.
        """
        faiss = faiss_module()
        index = faiss.IndexHNSWFlat(vectors.shape[1], neighbours, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        index.hnsw.efSearch = ef_search
        return cls(index, vectors)

    @classmethod
    def load(cls, path: Path, vectors: np.ndarray, ef_search: int = 512) -> AnnIndex:
        """Read a graph written by `write` over these `vectors`, checked: the vectors it holds must be these, to the
        bit (an HNSW graph keeps its vectors), not only as many of this length. Which file is the current one for a
        catalog is decided by its name (`search.select`).

        Raises:
            FashionrecError: faiss is not installed, or the file is damaged or holds other vectors.
        """
        faiss = faiss_module()
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise FashionrecError(f"the HNSW file {path} cannot be read ({exc}); delete it to rebuild it") from None
        if index.ntotal != len(vectors) or index.d != vectors.shape[1] or not _holds(index, vectors):
            raise FashionrecError(f"the HNSW file {path} does not hold these vectors (damaged or swapped); delete it "
                                  "to rebuild it")
        index.hnsw.efSearch = ef_search
        return cls(index, vectors)

    def write(self, path: str) -> None:
        """Write the graph to `path` (publish it atomically: `catalog.derived.publish_with`)."""
        faiss_module().write_index(self._index, path)

    def vector(self, position: int) -> np.ndarray:
        """See `SearchBackend.vector`."""
        return self._vectors[position]

    def search(self, query: np.ndarray, k: int, restriction: Restriction | None = None) -> Neighbours:
        """Like `exact_search`, approximately (see `SearchBackend.search`)."""
        faiss = faiss_module()
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


def _holds(index: object, vectors: np.ndarray, rows: int = 65_536) -> bool:
    """Whether the graph's stored vectors are `vectors`, bit for bit, compared block by block (no second copy of a
    large catalog's vectors in memory)."""
    for start in range(0, len(vectors), rows):
        count = min(rows, len(vectors) - start)
        if not np.array_equal(index.reconstruct_n(start, count), np.asarray(vectors[start:start + count], np.float32)):
            return False
    return True


def faiss_module():
    """The faiss module, or a clear error; loaded with its OpenMP threads asleep when idle (`OMP_WAIT_POLICY`
    PASSIVE, unless the environment says otherwise).

    Why: by default OpenMP's threads spin after each search, waiting for the next. A compact index splits one query's
    lists between them (`search.compact`), and on 2 cores with the other core busy (a model run, another worker) a
    spinning thread waited for one that had lost its core: p95 4.76 ms against 1.42 ms asleep, at the same p50 when
    idle (0.74 and 0.76 ms; the 1M index, docs/PERFORMANCE.md section 10). OpenMP reads the policy once, as faiss
    loads it, so it is set only before the first import.
    """
    if "faiss" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import faiss
    except ImportError:
        raise FashionrecError("approximate search needs faiss: pip install 'fashionrec[ann]'") from None
    return faiss


def idle_threads_sleep() -> bool:
    """Whether faiss's OpenMP threads sleep when idle (see `faiss_module`): what splitting one query between them
    needs."""
    return os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"
