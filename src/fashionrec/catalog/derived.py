"""Derived data: the keys it is named by, where it lives, and how it is published.

Whether a derived artifact is current is decided by its owner, by comparing the key it was derived from with the
snapshot's key computed here: the search space in `catalog.space`, HNSW and IVF files in `search.select`, the
Milvus copy in `scale.milvus.push`.

Everything computed from a catalog's products is derived data: the search space (the whitening fitted on the
model vectors and the tuning fitted in the whitened space), FAISS indexes, the copy of the catalog in Milvus.
The rules, for all of it (like git's objects: content-addressed, immutable, one atomic switch):

- **Named by what it was derived from.** A search space file is named by the digest of its own arrays and
  parameters (`space-<digest>.npz`); an index file by the digest of its inputs, the search space and the
  products (`hnsw-<search key>.faiss`, `ivf-<codes>-<search key>.*`); a Milvus collection records the catalog
  fingerprint it holds.
- **Immutable, published atomically.** A file is written under a temporary name unique to its writer, flushed,
  then renamed into place; a reader never sees half a file, and two writers never share a temporary name.
- **A stale artifact cannot be opened, only rebuilt.** Readers ask for the artifact the catalog snapshot names
  (its keys are computed here, from the snapshot): a file of another key is simply another file, and a file
  whose content does not hash to its name is refused.
- **Superseded files are removed** once a newer one is the catalog's own.

`DerivedKeys` holds a snapshot's keys; `Catalog.keys` computes them, backends compare what they hold with them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashionrec.memory import release_freed_memory

log = logging.getLogger(__name__)
_UMASK = os.umask(0o022)  # read once, at import (os.umask only sets it: it is set straight back)
os.umask(_UMASK)


DERIVED_DIR = "derived"


SPACE_PREFIX, SPACE_SUFFIX = "space-", ".npz"


HNSW_PREFIX, HNSW_SUFFIX = "hnsw-", ".faiss"


IVF_PREFIX = "ivf-"  # the compact index: ivf-<codes>-<search key>.faiss (codes), .npy (floats), .json (last)


ORPHAN_SECONDS = 3600  # a temporary file older than this was left by a writer that died: removed


@dataclass(frozen=True)
class DerivedKeys:
    """What a catalog snapshot's derived data must be derived from, as digests."""

    products: str  # the products and their image contents (ids, content hashes)
    metadata: str  # every product's metadata
    space: str  # the search space in use ("" when the model's own vectors are searched)
    search: str  # the search vectors: space + products (what an index over them is named by)
    fingerprint: str  # everything a copy of the catalog holds: model, search vectors and metadata (Milvus)


def catalog_keys(model_id: str, ids: Sequence[str], hashes: Sequence[str],
                 metadata: Sequence[Mapping[str, str | None]], space: str,
                 colour_versions: Sequence[int] | np.ndarray = ()) -> DerivedKeys:
    """The keys of a snapshot: products, metadata, space, and the keys derived from them.

    A product's colour histogram is a function of its image content and the colour version, so the search vectors
    are named by the products, the space and each product's colour version (none, while one is missing).
    """
    products = products_digest(ids, hashes)
    meta = _metadata_digest(metadata)
    search = _digest(f"{model_id}\0{space}\0{products}".encode())
    versions = np.asarray(colour_versions, dtype=np.int64)
    if versions.any():  # catalogs without colour keep the names their derived files already have
        search = _digest(f"{search}\0colour\0{','.join(map(str, versions.tolist()))}".encode())
    release_freed_memory()  # the texts made to hash, freed but kept by the C heap until asked (`fashionrec.memory`)
    return DerivedKeys(products, meta, space, search, _digest(f"{search}\0{meta}".encode()))


def products_digest(ids: Sequence[str], hashes: Sequence[str]) -> str:
    """Identifies a set of products and their image contents."""
    digest, pairs = hashlib.sha256(), zip(ids, hashes)
    while block := list(itertools.islice(pairs, 65_536)):  # a block's text at once: the same digest, fewer calls
        digest.update("".join([f"{product_id}\0{content}\n" for product_id, content in block]).encode())
    return digest.hexdigest()[:32]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _metadata_digest(metadata: Iterable[Mapping[str, str | None]]) -> str:
    """The digest of every product's metadata as one JSON list (sorted keys), hashed row by row: the same digest as
    `_digest(json.dumps(list))` (so derived files keep their names), without the list's text (300 MB at 1M)."""
    texts = iter(metadata.json_texts() if hasattr(metadata, "json_texts")  # a `columns.MetadataColumns`: faster
                 else (json.dumps(dict(values), sort_keys=True, ensure_ascii=False) for values in metadata))
    digest, separator = hashlib.sha256(b"["), ""
    while block := list(itertools.islice(texts, 65_536)):  # a block at a time: never the whole text
        digest.update((separator + ", ".join(block)).encode())
        separator = ", "
    digest.update(b"]")
    return digest.hexdigest()[:32]


def space_path(catalog_dir: Path, digest: str) -> Path:
    """Where the search space of this digest lives."""
    return Path(catalog_dir) / DERIVED_DIR / f"{SPACE_PREFIX}{digest}{SPACE_SUFFIX}"


def hnsw_path(catalog_dir: Path, keys: DerivedKeys) -> Path:
    """Where the HNSW graph over these search vectors lives."""
    return Path(catalog_dir) / DERIVED_DIR / f"{HNSW_PREFIX}{keys.search}{HNSW_SUFFIX}"


def ivf_paths(catalog_dir: Path, keys: DerivedKeys, codes: str) -> dict[str, Path]:
    """Where the compact index of these codes (`search.compact.codes_for`) over these search vectors lives: its codes
    ("codes"), the exact floats it re-ranks with ("floats"), and the record of both ("record", published last: the
    index exists once it does). An index of other codes is another index."""
    stem = Path(catalog_dir) / DERIVED_DIR / f"{IVF_PREFIX}{codes}-{keys.search}"
    return {"codes": stem.with_suffix(".faiss"), "floats": stem.with_suffix(".npy"),
            "record": stem.with_suffix(".json")}


def _temporary_beside(target: Path) -> tuple[int, str]:
    """A new temporary file beside `target`, with the permissions an ordinary new file gets (mkstemp's are 0600: a
    server running as another user than the indexer could not read the index files beside a readable catalog)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
    except OSError:  # a file system without Unix permissions: the file is written all the same
        pass
    return fd, temporary


def publish(target: Path, write: Callable, mode: str = "wb") -> None:
    """Write `target` through `write(handle)` under a temporary name unique to this writer, then rename it in place.

    A reader sees the old file, or none, or the whole new one; never a part.
    """
    fd, temporary = _temporary_beside(target)
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        _fsync_folder(target.parent)  # the rename itself survives a crash
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish_with(target: Path, write_path: Callable[[str], None]) -> None:
    """Like `publish`, for writers that take a file name (FAISS): `write_path(temporary name)`, flushed to disk, then
    renamed (and the rename made durable), so a record published after it never names a file lost to a crash."""
    fd, temporary = _temporary_beside(target)
    os.close(fd)
    try:
        write_path(temporary)
        written = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(written)
        finally:
            os.close(written)
        os.replace(temporary, target)
        _fsync_folder(target.parent)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def remove_superseded(catalog_dir: Path, keep: Iterable[str], prefix: str,
                      keep_since: float | None = None) -> list[str]:
    """Delete the derived files of one kind (`prefix`) but those named in `keep` (and those modified at or after
    `keep_since`, a time), and long-dead temporary files.

    Returns the names removed. A server holding an older snapshot has its arrays in memory already.
    """
    folder = Path(catalog_dir) / DERIVED_DIR
    if not folder.is_dir():
        return []
    keep = set(keep)
    removed = []
    now = time.time()
    for path in folder.iterdir():
        orphan = path.name.startswith(f".{prefix}") and now - _mtime(path) > ORPHAN_SECONDS
        recent = keep_since is not None and _mtime(path) >= keep_since
        if (path.name.startswith(prefix) and path.name not in keep and not recent) or orphan:
            try:
                path.unlink()
                removed.append(path.name)
            except FileNotFoundError:
                pass
    if removed:
        log.info("removed superseded derived files: %s", ", ".join(sorted(removed)))
    return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()
