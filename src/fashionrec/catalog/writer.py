"""The catalog's write interface: what indexing runs and live writes change, each change one transaction.

Only `catalog/` opens the SQLite store (`catalog.store`); a writer elsewhere (an `index` run, a product written over
the API) holds a `CatalogWriter` for the length of its work and says what to change in the catalog's own terms.

Images the catalog holds itself (products written over the API or with `fashionrec add`) are content-addressed:
`images/<2 hex>/<sha256>.<ext>`, relative to the catalog (so it can move). A write puts its files in place (written,
fsynced, renamed) before the transaction that points rows at them commits, and checks them again inside it; the
files a write made unused are removed only after its commit, and only if no row points at them, checked inside a
writing transaction (so a concurrent writer of the same picture cannot lose it). A crash at any instant leaves each
product wholly old or wholly new; files no row points at are collected (`collect_orphans`).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashionrec.catalog.derived import publish
from fashionrec.catalog.rows import FileStamp, ProductRow, SkippedFile, StoredProduct
from fashionrec.catalog.schema import OWN_FOLDER
from fashionrec.catalog.space import SpaceUpdate, refresh_space
from fashionrec.catalog.store import DB_NAME, CatalogStore
from fashionrec.errors import FashionrecError, StorageError
from fashionrec.imaging.colour import ColourDescriptor

log = logging.getLogger(__name__)

IMAGES_FOLDER = "images"  # the catalog's own images, under the catalog folder
OWN_IMAGE = re.compile(rf"{IMAGES_FOLDER}/([0-9a-f]{{2}})/\1[0-9a-f]{{62}}\.[a-z0-9]+")  # what put_own names
OWN_TEMPORARY = re.compile(r"\.[0-9a-f]{64}\.[a-z0-9]+\..*\.tmp")  # `derived.publish`'s unfinished file of one
TEMPORARY_AGE_S = 600.0  # an unfinished image file older than this was left by a writer that died: collected


@dataclass(frozen=True)
class OwnImage:
    """A product photo the catalog keeps itself, named by its content."""

    data: bytes
    suffix: str  # ".jpg", ".png", ... (from the content: `imaging.formats.stored_suffix`)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def path(self) -> str:
        """Where it lives, relative to the catalog."""
        return f"{IMAGES_FOLDER}/{self.sha256[:2]}/{self.sha256}{self.suffix}"


@dataclass(frozen=True)
class OwnProduct:
    """One product to create or replace with an image the catalog keeps (`CatalogWriter.put_own`)."""

    product_id: str
    image: OwnImage
    vector: np.ndarray
    colour: ColourDescriptor | None
    metadata: dict[str, str | None] | None  # None: a replaced product keeps its metadata


@dataclass(frozen=True)
class PutOutcome:
    """What `put_own` did to one product."""

    created: bool
    metadata: dict[str, str | None] | None
    image: Path


def catalog_exists(catalog_dir: str | os.PathLike) -> bool:
    """Whether the folder holds a catalog already (a run that creates one removes it again if it fails)."""
    return (Path(catalog_dir) / DB_NAME).is_file()


def discard_new_catalog(catalog_dir: str | os.PathLike) -> None:
    """Undo the creation of a catalog by a run that failed before indexing anything."""
    catalog_dir = Path(catalog_dir)
    for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
        (catalog_dir / name).unlink(missing_ok=True)
    try:
        catalog_dir.rmdir()
    except OSError:
        pass  # not empty: the folder was there before, or holds other files


class CatalogWriter:
    """One writer's open catalog. Each method that changes something commits it in one transaction.

    Example:
        >>> with CatalogWriter("my-catalog") as writer:
        ...     writer.remove(["15970"])
    """

    def __init__(self, catalog_dir: str | os.PathLike, create: bool = False) -> None:
        """Open the catalog (`create`: make it if missing).

        Raises:
            CatalogError: not a catalog (and not `create`), or it cannot be opened.
        """
        self._store = CatalogStore(Path(catalog_dir), create=create)

    def __enter__(self) -> CatalogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._store.close()

    @property
    def catalog_dir(self) -> Path:
        """The catalog folder."""
        return self._store.catalog_dir

    def info(self) -> dict[str, str]:
        """The catalog's recorded facts (model, dim, folders, columns, generation, search space)."""
        return self._store.info()

    def count(self) -> int:
        """How many products the catalog holds."""
        return self._store.count()

    def products(self) -> dict[str, StoredProduct]:
        """Every product's file stamp and folder, by id (no vectors)."""
        return self._store.products()

    def skipped(self, folder: str | None = None) -> dict[str, SkippedFile]:
        """Files that could not be indexed (of one folder), by path."""
        return self._store.skipped(folder)

    def metadata_of(self, product_id: str) -> dict[str, str | None] | None:
        """One product's stored metadata (None: none stored, or no such product)."""
        return self._store.metadata_of(product_id)

    def without_colour(self) -> dict[str, StoredProduct]:
        """The products whose colour is missing or of an older version."""
        return self._store.without_colour()

    def set_info(self, values: dict[str, str]) -> None:
        """Record facts about the catalog (model, folders, typical image size...)."""
        self._store.set_info(values)

    def write_batch(self, folder: str, rows: list[ProductRow], restamped: Iterable[tuple[str, FileStamp]] = (),
                    failed: Iterable[SkippedFile] = ()) -> None:
        """Add or replace products, re-stamp unchanged files and record failed ones, in one transaction."""
        self._store.write_batch(folder, rows, restamped, failed)

    def set_colours(self, colours: dict[str, ColourDescriptor], hashes: dict[str, str] | None = None) -> None:
        """Store the colour of products indexed without it (each only if its image is still the one of `hashes`)."""
        self._store.set_colours(colours, hashes)

    def remove(self, product_ids: Iterable[str], skipped: Iterable[tuple[str, str]] = ()) -> int:
        """Remove products (and forget skipped-file records); returns how many products were removed."""
        return self._store.remove(product_ids, skipped)

    def drop_all_products(self, info: dict[str, str]) -> None:
        """Forget every product (an older build of the model made them) and record the model now used."""
        self._store.drop_all_products(info)

    def update_metadata(self, metadata: dict[str, dict[str, str | None] | None]) -> None:
        """Set products' metadata (only rows that change are written)."""
        self._store.update_metadata(metadata)

    def put_own(self, products: list[OwnProduct]) -> list[PutOutcome]:
        """Create or replace products, all or none, their images kept by the catalog (see the module's docstring).

        Raises:
            StorageError: the disk is full or read-only; nothing was committed.
            CatalogError: another writer held the catalog too long.
        """
        for product in products:
            self._place(product.image)  # before the transaction: the slow part, outside the lock
        rows = [ProductRow(p.product_id, OWN_FOLDER, FileStamp(p.image.path, len(p.image.data), 0, p.image.sha256),
                           p.vector, p.metadata, p.colour) for p in products]
        keep = {p.product_id for p in products if p.metadata is None}
        done = self._store.put_products(rows, keep, lambda: [self._place(p.image) for p in products])
        self.release([old for _, _, old in done if old is not None])
        return [PutOutcome(created, metadata, self.catalog_dir / p.image.path)
                for p, (created, metadata, _) in zip(products, done)]

    def withdraw(self, product_ids: list[str]) -> bool:
        """Remove products on request, all or none (they stay out of later index runs); False when one of them is
        not in the catalog (nothing is removed). Their own images go once no product points at them."""
        paths = self._store.withdraw(product_ids)
        if paths is None:
            return False
        self.release(paths)
        return True

    def withdrawn(self) -> set[str]:
        """Ids of the products removed on request."""
        return self._store.withdrawn()

    def restore(self, product_ids: Iterable[str]) -> None:
        """Let removed products come back with their folder's next index run."""
        self._store.restore(product_ids)

    def release(self, paths: Iterable[str]) -> None:
        """Remove those of the catalog's own image files that no product points at (checked inside a transaction).
        A write is committed already when it releases: a file that cannot be removed now (a read-only folder, a
        catalog busy with another writer) stays, to be collected later, and the write still succeeds."""
        try:
            self._store.release_files(paths, self._unlink)
        except FashionrecError as exc:
            log.warning("files no longer used stay until the next collection: %s", exc)

    def collect_orphans(self, temporary_age: float = TEMPORARY_AGE_S) -> int:
        """Remove the catalog's own image files (content-addressed names only: never a file a user put there) that
        no product points at, left by a crash or a failed write, and unfinished ones older than `temporary_age`
        seconds; returns how many were removed."""
        now, candidates = time.time(), []
        for path in (self.catalog_dir / IMAGES_FOLDER).glob("[0-9a-f][0-9a-f]/*"):
            relative = path.relative_to(self.catalog_dir).as_posix()
            unfinished = OWN_TEMPORARY.fullmatch(path.name)
            try:
                old_enough = now - path.stat().st_mtime > temporary_age
            except FileNotFoundError:  # renamed or removed by another writer meanwhile
                continue
            if OWN_IMAGE.fullmatch(relative) or (unfinished and old_enough):
                candidates.append(relative)
        before = sum(1 for path in candidates if (self.catalog_dir / path).exists())
        self.release(candidates)
        return before - sum(1 for path in candidates if (self.catalog_dir / path).exists())

    def _place(self, image: OwnImage) -> None:
        """Put an image file in place (atomically, fsynced) unless it is there already."""
        target = self.catalog_dir / image.path
        if target.is_file() and target.stat().st_size == len(image.data):
            return
        try:
            publish(target, lambda handle: handle.write(image.data))
        except OSError as exc:
            raise storage_error(self.catalog_dir / IMAGES_FOLDER, exc) from None

    def _unlink(self, relative: str) -> None:
        try:
            (self.catalog_dir / relative).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove %s, no longer used (collected later): %s", relative, exc)

    def refresh_space(self, wanted_dim: int, force: bool = False, drift_limit: float = float("inf")) -> SpaceUpdate:
        """Keep or refit the catalog's search space (`catalog.space.refresh_space` decides)."""
        return refresh_space(self._store, wanted_dim, force, drift_limit)


def storage_error(where: Path, exc: OSError) -> StorageError:
    """What a shop owner must hear when the disk refuses a write."""
    if exc.errno == errno.ENOSPC:
        return StorageError(f"the disk holding {where} is full: free some space and write again (nothing was "
                            "half-written)")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(f"{where} cannot be written ({exc.strerror}): make it writable for the user running "
                            "fashionrec, or write elsewhere (nothing was changed)")
    return StorageError(f"{where} cannot be written: {exc.strerror or exc}")
