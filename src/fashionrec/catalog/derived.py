"""Derived data, and the one place that decides whether it is current.

Everything computed from a catalog's products is derived data: the search space (the whitening fitted on the
model vectors and the tuning fitted in the whitened space), FAISS indexes, the copy of the catalog in Milvus.
The rules, for all of it (like git's objects: content-addressed, immutable, one atomic switch):

- **Named by what it was derived from.** A search space file is named by the digest of its own arrays and
  parameters (`space-<digest>.npz`); an index file by the digest of its inputs, the search space and the
  products (`hnsw-<search key>.faiss`); a Milvus collection records the catalog fingerprint it holds.
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
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashionrec.catalog.tuning import Tuning, TuningPart
from fashionrec.catalog.whitening import Whitening
from fashionrec.errors import CatalogError

log = logging.getLogger(__name__)

DERIVED_DIR = "derived"
SPACE_PREFIX, SPACE_SUFFIX = "space-", ".npz"
HNSW_PREFIX, HNSW_SUFFIX = "hnsw-", ".faiss"
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
                 colour_versions: Sequence[int] = ()) -> DerivedKeys:
    """The keys of a snapshot: products, metadata, space, and the keys derived from them.

    A product's colour histogram is a function of its image content and the colour version, so the search vectors
    are named by the products, the space and each product's colour version (none, while one is missing).
    """
    products = products_digest(ids, hashes)
    meta = _digest(json.dumps([dict(row) for row in metadata], sort_keys=True, ensure_ascii=False).encode())
    search = _digest(f"{model_id}\0{space}\0{products}".encode())
    if any(colour_versions):  # catalogs without colour keep the names their derived files already have
        search = _digest(f"{search}\0colour\0{','.join(map(str, colour_versions))}".encode())
    return DerivedKeys(products, meta, space, search, _digest(f"{search}\0{meta}".encode()))


def products_digest(ids: Sequence[str], hashes: Sequence[str]) -> str:
    """Identifies a set of products and their image contents."""
    digest = hashlib.sha256()
    for product_id, content in zip(ids, hashes):
        digest.update(f"{product_id}\0{content}\n".encode())
    return digest.hexdigest()[:32]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True)
class SearchSpace:
    """The transform from model vectors to search vectors: a whitening, then a tuning (either may be absent).

    Immutable: a refit or a new tuning makes a new space (a new file); the catalog switches to it atomically.
    """

    model_id: str  # the model whose vectors it transforms
    whitening: Whitening | None
    tuning: Tuning | None

    @property
    def digest(self) -> str:
        """Content address: the digest of every parameter and array (what the file is named by)."""
        digest = hashlib.sha256(json.dumps(self._meta(), sort_keys=True).encode())
        for name, array in sorted(self._arrays().items()):
            digest.update(f"{name}{array.dtype.str}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:32]

    @property
    def base_dim(self) -> int | None:
        """Length of the untuned part of a search vector (None: the whole vector is untuned)."""
        if self.tuning is None:
            return None
        return self.whitening.dim if self.whitening is not None else self.tuning.parts[0].matrix.shape[0]

    def apply(self, model_vectors: np.ndarray) -> np.ndarray:
        """Model vectors (n, d) or (d,) to search vectors."""
        vectors = self.whitening.apply(model_vectors) if self.whitening else np.asarray(model_vectors, np.float32)
        return self.tuning.apply(vectors) if self.tuning else vectors

    def without_tuning(self) -> SearchSpace:
        return SearchSpace(self.model_id, self.whitening, None)

    def with_tuning(self, tuning: Tuning) -> SearchSpace:
        return SearchSpace(self.model_id, self.whitening, tuning)

    def _meta(self) -> dict:
        meta: dict = {"model_id": self.model_id, "whitening": None, "tuning": None}
        if self.whitening is not None:
            meta["whitening"] = {"fitted_on": self.whitening.fitted_on, "dim": self.whitening.dim}
            if self.whitening.products:  # absent from spaces written before drift was measured (same digest)
                meta["whitening"].update(generation=self.whitening.generation, products=self.whitening.products)
        if self.tuning is not None:
            meta["tuning"] = {"label": self.tuning.label, "look_label": self.tuning.look_label,
                              "fitted_on": self.tuning.fitted_on, "weights": self.tuning.weights}
        return meta

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        if self.whitening is not None:
            arrays.update(whitening_mean=self.whitening.mean, whitening_matrix=self.whitening.matrix)
        for part in self.tuning.parts if self.tuning else ():
            arrays[f"tuning_{part.name}"] = part.matrix
        return {name: np.asarray(array, dtype="<f4") for name, array in arrays.items()}

    def to_bytes(self) -> bytes:
        """The .npz file: the arrays, plus the parameters as UTF-8 JSON in a uint8 array (no pickle)."""
        buffer = io.BytesIO()
        meta = np.frombuffer(json.dumps(self._meta(), sort_keys=True).encode(), dtype=np.uint8)
        np.savez(buffer, meta=meta, **self._arrays())
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SearchSpace:
        """Read a space written by `to_bytes` (never unpickling anything)."""
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
        whitening = tuning = None
        if meta["whitening"] is not None:
            fit = meta["whitening"]
            whitening = Whitening(arrays["whitening_mean"], arrays["whitening_matrix"], fit["fitted_on"],
                                  fit.get("generation", 0), fit.get("products", 0))
        if meta["tuning"] is not None:
            info = meta["tuning"]
            parts = tuple(TuningPart(name, arrays[f"tuning_{name}"], float(weight))
                          for name, weight in info["weights"].items())
            tuning = Tuning(info["label"], info["look_label"], parts, info["fitted_on"])
        return cls(meta["model_id"], whitening, tuning)


def drift(fitted_products: int, kept: int, written_since: int) -> float:
    """How far a catalog has moved from the products its whitening was fitted on: the products written since the
    fit (new or replaced) plus those gone since, as a share of the products it was fitted on.

    The search space stays put while products come and go (so tunings, indexes and Milvus copies of unchanged
    products stay valid); past `config.REFIT_DRIFT` an index run fits it again (docs/QUALITY.md measured the cost
    of drift). Example: fitted on 1,000 products, 100 added and 50 removed since: 0.15.
    """
    if fitted_products <= 0:
        return 0.0
    return (written_since + max(0, fitted_products - kept)) / fitted_products


def space_path(catalog_dir: Path, digest: str) -> Path:
    """Where the search space of this digest lives."""
    return Path(catalog_dir) / DERIVED_DIR / f"{SPACE_PREFIX}{digest}{SPACE_SUFFIX}"


def hnsw_path(catalog_dir: Path, keys: DerivedKeys) -> Path:
    """Where the HNSW graph over these search vectors lives."""
    return Path(catalog_dir) / DERIVED_DIR / f"{HNSW_PREFIX}{keys.search}{HNSW_SUFFIX}"


def save_space(catalog_dir: Path, space: SearchSpace) -> str:
    """Publish a search space file (if it is not there already); returns its digest."""
    digest = space.digest
    target = space_path(catalog_dir, digest)
    if not target.is_file():
        publish(target, lambda handle: handle.write(space.to_bytes()))
    return digest


def load_space(catalog_dir: Path, digest: str, model_id: str) -> SearchSpace:
    """The search space named `digest`, checked: present, its content hashing to its name, of this model.

    Raises:
        CatalogError: missing, corrupt, or of another model; the message says how to rebuild it.
    """
    path = space_path(catalog_dir, digest)
    fix = f"run fashionrec refit --catalog {catalog_dir} to fit it again"
    try:
        space = SearchSpace.from_bytes(path.read_bytes())
    except FileNotFoundError:
        raise CatalogError(f"the catalog's search space {path.name} is missing from {path.parent}; {fix}") from None
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise CatalogError(f"the catalog's search space {path} cannot be read ({exc}); {fix}") from None
    if space.digest != digest:
        raise CatalogError(f"the catalog's search space {path} does not hold what its name says (damaged); {fix}")
    if space.model_id != model_id:
        raise CatalogError(f"the search space {path} transforms {space.model_id} vectors, not the catalog's "
                           f"{model_id}; {fix}")
    return space


def publish(target: Path, write: Callable, mode: str = "wb") -> None:
    """Write `target` through `write(handle)` under a temporary name unique to this writer, then rename it in place.

    A reader sees the old file, or none, or the whole new one; never a part.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def publish_with(target: Path, write_path: Callable[[str], None]) -> None:
    """Like `publish`, for writers that take a file name (FAISS): `write_path(temporary name)`, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write_path(temporary)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def remove_superseded(catalog_dir: Path, keep: Iterable[str], prefix: str) -> list[str]:
    """Delete the derived files of one kind (`prefix`) but those named in `keep`, and long-dead temporary files.

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
        if (path.name.startswith(prefix) and path.name not in keep) or orphan:
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
