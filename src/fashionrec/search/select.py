"""Which search backend serves a catalog snapshot, and whether the index file it would use is current.

The one owner of both decisions. A search spec (`FASHIONREC_SEARCH`, `--search`) is `auto` (exact below
`ann_threshold` products, else the compact IVF index when faiss is installed), `exact`, `ivf` (or `compact`: codes
in RAM, floats on disk, `search.compact`), `hnsw` (or `faiss`), or a Milvus address (served by `scale.milvus`, which
this layer only recognises). An index is derived data: its files are named by the snapshot's search key
(`catalog.derived.hnsw_path`, `ivf_paths`), so a file of other vectors is another file, and the file of this
snapshot is current by its name alone; it is built and published atomically when missing.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.catalog.derived import HNSW_PREFIX, IVF_PREFIX, hnsw_path, ivf_paths, publish_with, remove_superseded
from fashionrec.config import Settings
from fashionrec.errors import FashionrecError
from fashionrec.search.backend import SearchBackend
from fashionrec.search.compact import CompactIndex, PatchedIndex, codes_for
from fashionrec.search.exact import ExactIndex
from fashionrec.search.hnsw import AnnIndex

log = logging.getLogger(__name__)

MILVUS_SCHEMES = ("milvus://", "milvuss://", "milvus-lite://")
MTIME_SLACK = 2.0  # seconds: file times come from a coarser clock than time.time(), and may lag it a little


def is_milvus_address(spec: str) -> bool:
    """Whether a search spec names a Milvus collection."""
    return spec.strip().lower().startswith(MILVUS_SCHEMES)


def search_kind(catalog: Catalog, spec: str, settings: Settings) -> str:
    """"exact", "ivf", "hnsw" or "milvus": what a search spec means for this catalog.

    Raises:
        FashionrecError: an unknown spec.
    """
    if is_milvus_address(spec):
        return "milvus"
    mode = {"faiss": "hnsw", "compact": "ivf"}.get(spec.strip().lower(), spec.strip().lower())
    if mode not in ("auto", "exact", "ivf", "hnsw"):
        raise FashionrecError(
            f"the search must be auto, exact, ivf (or compact), hnsw (or faiss), or a milvus://, milvuss:// or "
            f"milvus-lite:// address, got {spec!r}")
    if mode == "exact" or len(catalog) == 0 or (mode == "auto" and len(catalog) < settings.ann_threshold):
        return "exact"
    if mode == "auto" and importlib.util.find_spec("faiss") is None:
        log.warning("%d products: approximate search would be faster; pip install 'fashionrec[ann]'", len(catalog))
        return "exact"
    return "ivf" if mode == "auto" else mode


def hnsw_is_current(catalog: Catalog) -> bool:
    """Whether the HNSW graph of this snapshot's search vectors is on disk (then `open_hnsw` only reads it)."""
    return hnsw_path(catalog.catalog_dir, catalog.keys).is_file()


def open_hnsw(catalog: Catalog) -> AnnIndex:
    """The HNSW graph of this snapshot: read when current (and holding exactly these vectors), else built and
    published; older graphs are removed.

    Raises:
        FashionrecError: faiss is not installed, or the file is damaged.
    """
    path = hnsw_path(catalog.catalog_dir, catalog.keys)
    index = None
    if hnsw_is_current(catalog):
        try:
            index = AnnIndex.load(path, catalog.vectors)
        except FashionrecError as exc:  # a damaged or swapped file is never used: built again in its place
            log.warning("%s", exc)
    if index is None:
        log.info("building the HNSW graph of %d products, once for this snapshot: %s", len(catalog), path)
        index = AnnIndex.build(catalog.vectors)
        publish_with(path, index.write)
    _remove_superseded(catalog, [path.name], HNSW_PREFIX)
    return index


def ivf_is_current(catalog: Catalog) -> bool:
    """Whether the compact index of this snapshot's search vectors is on disk (its record is written last)."""
    return _ivf_paths(catalog)["record"].is_file()


def open_ivf(catalog: Catalog, stand_in: SearchBackend | None = None) -> CompactIndex:
    """The compact index of this snapshot: opened when current (and its files check out), else built block by block
    and published; older ones are removed. The vectors come from `stand_in` when it is the index serving this
    snapshot meanwhile (the earlier index patched, or exact search: the same vectors, read without the catalog, which
    may have moved on meanwhile, as a live one does), else from the catalog (which must still be at this snapshot).

    Raises:
        FashionrecError: faiss is not installed; CatalogError: the catalog moved on and no stand-in holds the vectors.
    """
    paths = _ivf_paths(catalog)
    key, rows, dim = catalog.keys.search, len(catalog), catalog.search_dim
    index = None
    if ivf_is_current(catalog):
        try:
            index = CompactIndex.open(paths, key, rows, dim)
        except (FashionrecError, OSError) as exc:  # damaged, swapped, or removed meanwhile: built again in its place
            log.warning("%s", exc)
    if index is None:
        log.info("building the compact search index of %d products, once for this snapshot (2.5 min at 1M): %s",
                 rows, paths["record"].with_suffix(".*"))
        blocks = (_blocks_of(stand_in, rows) if isinstance(stand_in, (PatchedIndex, ExactIndex))
                  else catalog.vector_blocks())
        index = CompactIndex.build(blocks, rows, dim, paths, key)
    _remove_superseded(catalog, [path.name for path in paths.values()], IVF_PREFIX)
    return index


def _ivf_paths(catalog: Catalog) -> dict[str, Path]:
    """The compact index files of this snapshot, for the codes its size takes (`search.compact.codes_for`)."""
    return ivf_paths(catalog.catalog_dir, catalog.keys, codes_for(len(catalog)))


def _remove_superseded(catalog: Catalog, keep: list[str], prefix: str) -> None:
    """Remove the other indexes of this kind, but never a newer snapshot's.

    From the catalog's latest generation every other index is superseded. A server still at an older snapshot (its
    build took a while; a write came meanwhile) leaves alone what was published since its snapshot was read, which
    may be the newer snapshot's index: removing it made the next server build it again (80 s at 1M products), which
    removed this one's, in turn. Older files it does remove, so that builds overtaken by steady writes do not pile up
    an index (2.4 GB at 1M) each. A failed check skips the cleaning only: the index stays served.
    """
    try:
        latest = Catalog.generation_of(catalog.catalog_dir) == catalog.generation
    except Exception as exc:  # noqa: BLE001 - the store busy or unreadable: only the cleaning is skipped
        log.warning("superseded %s files not removed: %s", prefix.rstrip("-"), exc)
        return
    keep_since = None if latest else catalog.opened_at - MTIME_SLACK
    remove_superseded(catalog.catalog_dir, keep, prefix, keep_since)


def exact_stand_in(catalog: Catalog, previous: SearchBackend | None = None,
                   previous_catalog: Catalog | None = None) -> ExactIndex:
    """Exact search over this snapshot until its compact index is built, where the earlier index cannot stand in (a
    new search space): the floats held by the stand-in alone, never cached on the catalog, so they go with it. Carried
    on from `previous` (the exact stand-in serving `previous_catalog`) where the space is the same: its unchanged
    rows kept, the changed ones read."""
    if not (isinstance(previous, ExactIndex) and previous_catalog is not None and can_patch(catalog, previous_catalog)):
        vectors = catalog.vectors if catalog.vectors_loaded else np.concatenate(list(catalog.vector_blocks()))
        return ExactIndex(vectors, with_rows=True)
    fresh = catalog.vectors_changed_since(previous_catalog)
    kept = np.array([row for row, product_id in enumerate(catalog.ids) if product_id not in fresh], dtype=np.int64)
    changed = np.array([row for row, product_id in enumerate(catalog.ids) if product_id in fresh], dtype=np.int64)
    vectors = np.empty((len(catalog), catalog.search_dim), dtype=np.float32)
    vectors[kept] = previous.rows(np.array([previous_catalog.position(catalog.ids[row]) for row in kept.tolist()],
                                           dtype=np.int64))
    vectors[changed] = catalog.read_search_vectors([catalog.ids[row] for row in changed.tolist()])
    return ExactIndex(vectors, with_rows=True)


def _blocks_of(backend: PatchedIndex | ExactIndex, rows: int, block: int = 65_536) -> Iterator[np.ndarray]:
    """The search vectors a stand-in serves, block by block (one empty block for no rows, as the catalog's)."""
    for start in range(0, max(rows, 1), block):
        yield backend.rows(np.arange(start, min(start + block, rows)))


def can_patch(catalog: Catalog, base_catalog: Catalog) -> bool:
    """Whether an earlier snapshot's compact index can stand in for this one's (`patch_ivf`): the same model,
    search space and colour part, so its unchanged products' vectors are this snapshot's too."""
    return (catalog.model_id == base_catalog.model_id and catalog.keys.space == base_catalog.keys.space
            and catalog.has_colour == base_catalog.has_colour and catalog.search_dim == base_catalog.search_dim)


def patch_ivf(catalog: Catalog, base: CompactIndex | PatchedIndex, base_catalog: Catalog,
              rows_of: Callable[[np.ndarray], np.ndarray] | None = None) -> PatchedIndex:
    """A snapshot served by the compact index of an earlier one (`base_catalog`'s) until its own is built: the
    products unchanged since are found there, the others (added, or with a new vector) exactly, in memory. Only
    where `can_patch` says the two snapshots share their search space.

    `rows_of`: where this snapshot's changed rows are read from when something serving it holds them (by its rows),
    else the catalog.

    Raises:
        CatalogError: the catalog changed again meanwhile (a later snapshot will be served).
    """
    if isinstance(base, PatchedIndex):
        base, base_catalog = base.base, base.base_catalog
    fresh = catalog.vectors_changed_since(base_catalog)
    base_rows = np.array([-1 if product_id in fresh else base_catalog.position(product_id)
                          for product_id in catalog.ids], dtype=np.int64)
    fresh_rows = np.flatnonzero(base_rows < 0)
    vectors = (rows_of(fresh_rows) if rows_of is not None
               else catalog.read_search_vectors([catalog.ids[row] for row in fresh_rows.tolist()]))
    return PatchedIndex(base, base_catalog, base_rows, fresh_rows, vectors)


def open_local(catalog: Catalog, kind: str) -> SearchBackend:
    """The exact, compact or HNSW backend over this snapshot (`kind` from `search_kind`)."""
    if kind == "ivf":
        return open_ivf(catalog)
    return open_hnsw(catalog) if kind == "hnsw" else ExactIndex(catalog.vectors)
