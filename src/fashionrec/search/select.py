"""Which search backend serves a catalog snapshot, and whether the HNSW file it would use is current.

The one owner of both decisions. A search spec (`FASHIONREC_SEARCH`, `--search`) is `auto` (exact below
`ann_threshold` products, else HNSW when faiss is installed), `exact`, `hnsw` (or `faiss`), or a Milvus address
(served by `scale.milvus`, which this layer only recognises). An HNSW graph is derived data: its file is named by the
snapshot's search key (`catalog.derived.hnsw_path`), so a file of other vectors is another file, and the file of this
snapshot is current by its name alone; it is built and published atomically when missing.
"""

from __future__ import annotations

import importlib.util
import logging

from fashionrec.catalog.catalog import Catalog
from fashionrec.catalog.derived import HNSW_PREFIX, hnsw_path, publish_with, remove_superseded
from fashionrec.config import Settings
from fashionrec.errors import FashionrecError
from fashionrec.search.backend import SearchBackend
from fashionrec.search.exact import ExactIndex
from fashionrec.search.hnsw import AnnIndex

log = logging.getLogger(__name__)

MILVUS_SCHEMES = ("milvus://", "milvuss://", "milvus-lite://")


def is_milvus_address(spec: str) -> bool:
    """Whether a search spec names a Milvus collection."""
    return spec.strip().lower().startswith(MILVUS_SCHEMES)


def search_kind(catalog: Catalog, spec: str, settings: Settings) -> str:
    """"exact", "hnsw" or "milvus": what a search spec means for this catalog.

    Raises:
        FashionrecError: an unknown spec.
    """
    if is_milvus_address(spec):
        return "milvus"
    mode = {"faiss": "hnsw"}.get(spec.strip().lower(), spec.strip().lower())
    if mode not in ("auto", "exact", "hnsw"):
        raise FashionrecError(
            f"the search must be auto, exact, hnsw (or faiss), or a milvus://, milvuss:// or milvus-lite:// address, "
            f"got {spec!r}")
    if mode == "exact" or len(catalog) == 0 or (mode == "auto" and len(catalog) < settings.ann_threshold):
        return "exact"
    if mode == "auto" and importlib.util.find_spec("faiss") is None:
        log.warning("%d products: approximate search would be faster; pip install 'fashionrec[ann]'", len(catalog))
        return "exact"
    return "hnsw"


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
        index = AnnIndex.build(catalog.vectors)
        publish_with(path, index.write)
    remove_superseded(catalog.catalog_dir, [path.name], HNSW_PREFIX)
    return index


def open_local(catalog: Catalog, kind: str) -> SearchBackend:
    """The exact or HNSW backend over this snapshot (`kind` from `search_kind`)."""
    return open_hnsw(catalog) if kind == "hnsw" else ExactIndex(catalog.vectors)
