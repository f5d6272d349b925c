"""Approximate k-NN in little memory: an IVF index over compact codes in RAM, its candidates re-ranked with the
exact floats read from disk.

Why: an HNSW graph keeps every float vector in RAM (2.3 GB at 1M products of 608 dimensions), and so does exact
search. Here RAM holds the codes (FAISS `IndexIVFScalarQuantizer`): half a byte a dimension from `SQ4_MIN_ROWS`
products (304 bytes a product at 608-d), a byte below it (a few MB there), and the floats stay in a file beside it.
The codes only shortlist: the re-rank makes the answer; a query reads only its `RERANK` candidates' rows from the
floats file (`search.floats`: read, not mapped), and ranks them exactly as every backend does
(`search.exact.rank_rows`). Measured at 1M (`benchmarks/compact_ann.py`, docs/PERFORMANCE.md section 10).

The files are derived data, named by their codes and the snapshot's search key (`catalog.derived.ivf_paths`): the
floats (`.npy`), the codes (`.faiss`), and a record (`.json`, published last) of both files' SHA-256, checked when
they are opened, so a damaged or half-written index is refused, never searched. Which index is current is decided in
`search.select`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fashionrec.catalog.derived import publish
from fashionrec.errors import FashionrecError
from fashionrec.search.backend import Neighbours, Restriction
from fashionrec.search.exact import rank_rows
from fashionrec.search.floats import FloatFile, Hashed, file_digest
from fashionrec.search.hnsw import faiss_module, idle_threads_sleep

RERANK = 100  # candidates taken from the codes and ranked exactly (recall@10 0.990-0.991 at 1M, docs/PERFORMANCE.md)
NPROBE = 12  # lists searched a query: p50 1.25-1.7 ms at 1M, recall@10 0.990 (docs/PERFORMANCE.md section 10)
TRAIN_PER_LIST = 30  # training rows per list (FAISS asks for at least 30 per centroid)
SQ4_MIN_ROWS = 100_000  # 4-bit codes from here (304 MB at 1M x 608-d, not 608); below, 8-bit codes are a few MB
EXCLUDE_LIMIT = 256  # a patched index leaves out at most this many base rows as a list, more through a mask


def codes_for(rows: int) -> str:
    """The codes an index of `rows` x `dim` vectors holds: "sq8" (a byte a dimension) below `SQ4_MIN_ROWS`, else
    "sq4" (half a byte). Part of the index files' names (`catalog.derived.ivf_paths`).

    Product codes ("pq<bytes>", each byte for a slice of the dimensions) were measured and not taken: on 1M vectors in
    clusters of 138 near copies their shortlist tells the copies apart less well (recall@10 0.912 with 76 bytes at
    608-d, 0.972 with 152, 0.991 with 4-bit codes; docs/PERFORMANCE.md section 10); `benchmarks/compact_ann.py --codes`
    still builds them."""
    return "sq8" if rows < SQ4_MIN_ROWS else "sq4"


def _coded_dim(codes: str, dim: int) -> int:
    """The vectors' length as the codes take them: for product codes, padded with zeros to a whole number of
    dimensions a byte (608 for 76 or 152 bytes at 608-d; 48 for 6 bytes at 45-d)."""
    if not codes.startswith("pq"):
        return dim
    code_bytes = int(codes[2:])
    return code_bytes * math.ceil(dim / code_bytes)


def _padded(vectors: np.ndarray, dim: int) -> np.ndarray:
    """Rows padded with zeros to `dim` (inner products unchanged), float32 and contiguous, as FAISS takes them."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape[-1] == dim:
        return vectors
    out = np.zeros((*vectors.shape[:-1], dim), dtype=np.float32)
    out[..., :vectors.shape[-1]] = vectors
    return out


def _new_index(faiss, codes: str, dim: int, lists: int) -> object:
    """An untrained IVF index over `codes` (`codes_for`), inner product."""
    quantizer = faiss.IndexFlatIP(_coded_dim(codes, dim))
    if codes.startswith("sq"):  # sq8 (what codes_for gives), sq6, sq4: bits a dimension
        bits = {"sq8": faiss.ScalarQuantizer.QT_8bit, "sq6": faiss.ScalarQuantizer.QT_6bit,
                "sq4": faiss.ScalarQuantizer.QT_4bit}[codes]
        return faiss.IndexIVFScalarQuantizer(quantizer, dim, lists, bits, faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexIVFPQ(quantizer, _coded_dim(codes, dim), lists, int(codes[2:]), 8, faiss.METRIC_INNER_PRODUCT)


def _tune(faiss, index: object) -> None:
    """Search `NPROBE` lists a query, split between FAISS's threads by list where it has more than one and they
    sleep when idle (`search.hnsw.faiss_module`).

    Why: a query is one row, and FAISS's default splits work by query rows, so one thread scanned all the lists
    while the other waited. Split by list, a query's scan at 1M took 0.96 ms against 1.47 ms on 2 cores, at the
    same throughput with two queries at once; but with spinning threads and the other core busy, its p95 was 4.76
    ms (docs/PERFORMANCE.md section 10).
    """
    index.nprobe = min(NPROBE, index.nlist)
    index.parallel_mode = 1 if faiss.omp_get_max_threads() > 1 and idle_threads_sleep() else 0


def list_count(rows: int) -> int:
    """The number of inverted lists for `rows` vectors: 2 sqrt(n) (2,000 at 1M), at least 1, at most one a vector."""
    return max(1, min(rows, int(2 * math.sqrt(rows))))


class CompactIndex:
    """k-NN over the catalog's search vectors with the codes in RAM and the floats on disk (`SearchBackend`)."""

    name = "ivf"

    def __init__(self, index: object, floats: FloatFile) -> None:
        self._index = index
        self._floats = floats
        self._rows, self._dim = floats.shape
        self._coded_dim = index.d  # the queries padded to it (`_padded`)

    @classmethod
    def build(cls, blocks: Iterable[np.ndarray], rows: int, dim: int, paths: dict[str, Path],
              key: str, codes: str | None = None) -> CompactIndex:
        """Write the index of the vectors `blocks` yields (`rows` x `dim` in all, row order kept) to `paths`
        (`catalog.derived.ivf_paths`): the floats as they come, then the codes (`codes_for` unless given) trained on
        a seeded sample of them, then the record; and return it, open. Never more in memory than one block, the
        training sample (30 rows a list) and the codes. Each file is hashed as it is written.

        Raises:
            FashionrecError: faiss is not installed, or the blocks are not `rows` x `dim`.
        """
        faiss = faiss_module()

        floats_digest, codes_digest = hashlib.sha256(), hashlib.sha256()

        def write_floats(handle) -> None:
            hashed = Hashed(handle, floats_digest)  # hashed as written: 2 GB at 1M are not read back for it
            np.lib.format.write_array_header_1_0(hashed, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (rows, dim)})
            written = 0
            for block in blocks:
                data = np.ascontiguousarray(block, dtype="<f4")
                if data.ndim != 2 or data.shape[1] != dim:
                    raise FashionrecError(f"a block of {data.shape} does not fit {dim}-d vectors")
                hashed.write(data.tobytes())
                written += len(data)
            if written != rows:
                raise FashionrecError(f"{written} vectors were read, {rows} expected")

        publish(paths["floats"], write_floats)
        lists = list_count(rows)
        codes = codes or codes_for(rows)
        coded_dim = _coded_dim(codes, dim)
        reader = FloatFile(paths["floats"])
        try:
            index = _new_index(faiss, codes, dim, lists)
            index.cp.min_points_per_centroid = 1  # a small catalog trains on what it has (no warning)
            sample = np.random.default_rng(0).choice(rows, min(rows, TRAIN_PER_LIST * lists), replace=False)
            index.train(_padded(reader.rows(np.sort(sample)), coded_dim))
            for start in range(0, rows, 65_536):
                index.add(_padded(reader.rows(np.arange(start, min(rows, start + 65_536))), coded_dim))
            publish(paths["codes"], lambda handle: faiss.write_index(
                index, faiss.PyCallbackIOWriter(Hashed(handle, codes_digest).write)))
            record = {"kind": f"ivf-{codes}", "search_key": key, "rows": rows, "dim": dim, "lists": lists,
                      "floats_sha256": floats_digest.hexdigest(), "codes_sha256": codes_digest.hexdigest()}
            publish(paths["record"], lambda handle: handle.write(json.dumps(record, sort_keys=True)), mode="w")
        except BaseException:
            reader.close()
            raise
        _tune(faiss, index)
        return cls(index, reader)  # what was just written and hashed: not read and hashed again

    @classmethod
    def open(cls, paths: dict[str, Path], key: str, rows: int, dim: int, codes: str | None = None) -> CompactIndex:
        """Open the index of these `paths`, checked: its record names this search key, size and codes (`codes_for`
        unless given), and both files hash to what the record says (damaged, half-written or swapped files are
        refused).

        Raises:
            FashionrecError: faiss is not installed, or the files are missing, damaged or of other vectors.
        """
        faiss = faiss_module()
        codes = codes or codes_for(rows)
        floats = None
        try:
            record = json.loads(paths["record"].read_text())
            if not isinstance(record, dict):
                raise ValueError("its record is not a JSON object")
            # Each file is hashed through the very handle it is then read from: a file swapped between the check
            # and the use cannot slip in.
            floats = FloatFile(paths["floats"])
            floats_digest = floats.digest()
            with open(paths["codes"], "rb") as handle:
                codes_digest = file_digest(handle)
                expected = {"kind": f"ivf-{codes}", "search_key": key, "rows": rows, "dim": dim,
                            "floats_sha256": floats_digest, "codes_sha256": codes_digest}
                wrong = [name for name, value in expected.items() if record.get(name) != value]
                if wrong:
                    culprit = {"floats_sha256": paths["floats"], "codes_sha256": paths["codes"]}.get(
                        wrong[0], paths["record"])
                    raise FashionrecError(f"the compact index file {culprit} does not hold these vectors (damaged or "
                                          f"swapped: {', '.join(wrong)} differ from its record); it is built again")
                handle.seek(0)
                index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
        except BaseException as exc:
            if floats is not None:
                floats.close()
            if isinstance(exc, FashionrecError) or not isinstance(exc, (OSError, ValueError, RuntimeError)):
                raise
            raise FashionrecError(f"the compact index {paths['record']} cannot be read ({exc}); it is built again") \
                from None
        if floats.shape != (rows, dim) or index.ntotal != rows or index.d != _coded_dim(codes, dim):
            floats.close()
            raise FashionrecError(f"the compact index {paths['record']} does not hold these vectors")
        _tune(faiss, index)
        return cls(index, floats)

    def close(self) -> None:
        """Close the floats file (the codes go with the object)."""
        self._floats.close()

    def __del__(self) -> None:
        self.close()

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The exact float vectors of catalog rows, read from the file (one read per run of adjacent rows)."""
        return self._floats.rows(np.asarray(positions, dtype=np.int64))

    def vector(self, position: int) -> np.ndarray:
        """See `SearchBackend.vector`."""
        return self.rows(np.array([position]))[0]

    def search(self, query: np.ndarray, k: int, restriction: Restriction | None = None) -> Neighbours:
        """See `SearchBackend.search`: the codes' best `RERANK` (or k) allowed rows, ranked by their exact floats.

        A filter that leaves few rows in the lists searched widens the search (4x the lists, up to all of them),
        so a filtered query gets k allowed rows whenever k are allowed.
        """
        faiss = faiss_module()
        allowed = restriction.mask if restriction else None
        left_out = np.zeros(0, dtype=np.int64)
        if restriction is not None and not restriction.where and restriction.exclude:
            # No filter, only some rows left out (every "more like this"; a patched index's replaced rows): no
            # selector over the whole catalog (a bitmap of 1M rows a query), the rows asked for more, the left-out
            # ones dropped. Without filters a mask holds only the exclusions (`MetadataFilters.allowed`).
            left_out, allowed = np.unique(np.asarray(restriction.exclude, dtype=np.int64)), None
        available = (self._rows - len(left_out)) if allowed is None else int(allowed.sum())
        k = min(k, available)
        if k < 1:
            return Neighbours(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32),
                              np.zeros((0, self._dim), dtype=np.float32))
        fetch = min(max(RERANK, k), available)
        params = faiss.SearchParametersIVF(nprobe=self._index.nprobe)
        bitmap = selector = None  # both kept alive in this frame while FAISS reads them through `params`
        if allowed is not None:
            bitmap = np.packbits(allowed.astype(np.uint8), bitorder="little")
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
            params.sel = selector
        while True:
            _, found = self._index.search(_padded(np.asarray(query)[None, :], self._coded_dim), fetch + len(left_out),
                                          params=params)
            candidates = found[0][found[0] >= 0]
            candidates = candidates[~np.isin(candidates, left_out)][:fetch]
            if len(candidates) >= fetch or params.nprobe >= self._index.nlist:
                break
            params.nprobe = min(self._index.nlist, params.nprobe * 4)
        candidates = np.sort(candidates)
        vectors = self.rows(candidates)
        order, distances = rank_rows(vectors, candidates, query, k)
        return Neighbours(candidates[order], distances, vectors[order])


class PatchedIndex:
    """A newer snapshot served by an earlier snapshot's compact index while its own is built (`search.select`).

    Products whose search vector is unchanged since `base_catalog` are searched in `base` (their rows mapped);
    the rest (added, or with a new photo or colour) exactly, from `vectors` in memory; the two lists are ranked
    together exactly. So a write is searchable at once, at a cost that grows with the writes since the base.
    """

    name = "ivf"

    def __init__(self, base: CompactIndex, base_catalog: object, base_rows: np.ndarray, fresh_rows: np.ndarray,
                 vectors: np.ndarray) -> None:
        self.base, self.base_catalog = base, base_catalog
        self._base_rows = base_rows  # (n,) each row's row in the base index, -1 for a fresh one
        self._fresh_rows = fresh_rows  # rows searched exactly (ascending), row-aligned with `vectors`
        self._fresh_vectors = vectors
        self._new_row = np.full(base._rows, -1, dtype=np.int64)  # base row -> row of this snapshot (-1: gone)
        kept = np.flatnonzero(base_rows >= 0)
        self._new_row[base_rows[kept]] = kept
        self._gone = np.flatnonzero(self._new_row < 0)  # base rows removed or replaced since the base

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The search vectors of catalog rows (this snapshot's rows): the base's in one read, the fresh from memory."""
        positions = np.asarray(positions, dtype=np.int64)
        base_rows = self._base_rows[positions]
        out = np.empty((len(positions), self._fresh_vectors.shape[1]), dtype=np.float32)
        in_base = base_rows >= 0
        out[in_base] = self.base.rows(base_rows[in_base])
        fresh = np.flatnonzero(~in_base)
        out[fresh] = self._fresh_vectors[np.searchsorted(self._fresh_rows, positions[fresh])]
        return out

    def vector(self, position: int) -> np.ndarray:
        """See `SearchBackend.vector`."""
        return self.rows(np.array([position]))[0]

    def search(self, query: np.ndarray, k: int, restriction: Restriction | None = None) -> Neighbours:
        """See `SearchBackend.search`."""
        found = self.base.search(query, k, self._in_base(restriction))
        slots = np.flatnonzero(self._fresh_allowed(restriction))
        positions = np.concatenate([self._new_row[found.positions], self._fresh_rows[slots]])
        vectors = np.concatenate([found.vectors, self._fresh_vectors[slots]]) if len(slots) else found.vectors
        order, distances = rank_rows(vectors, positions, query)
        order = order[:k]
        return Neighbours(positions[order], distances[:k], vectors[order])

    def _in_base(self, restriction: Restriction | None) -> Restriction:
        """The restriction of a query on the base's rows: its gone rows left out. Without filters, and while few rows
        are gone, as a list of rows left out (the base then needs no selector over the whole catalog); else a mask."""
        excluded = np.asarray(restriction.exclude if restriction else (), dtype=np.int64)
        excluded = self._base_rows[excluded] if len(excluded) else excluded
        excluded = excluded[excluded >= 0]
        if restriction is None or not restriction.where:
            left_out = np.concatenate([self._gone, excluded])
            if len(left_out) <= EXCLUDE_LIMIT:
                return Restriction(exclude=tuple(left_out.tolist()))
        allowed = self._new_row >= 0
        if restriction is not None and restriction.mask is not None:
            allowed &= restriction.mask[np.maximum(self._new_row, 0)]
        allowed[excluded] = False
        return Restriction(mask=allowed)

    def _fresh_allowed(self, restriction: Restriction | None) -> np.ndarray:
        """Which fresh rows a query may return."""
        if restriction is not None and restriction.mask is not None:
            return restriction.mask[self._fresh_rows]
        allowed = np.ones(len(self._fresh_rows), bool)
        if restriction is not None and restriction.exclude:
            allowed &= ~np.isin(self._fresh_rows, np.asarray(restriction.exclude, dtype=np.int64))
        return allowed
