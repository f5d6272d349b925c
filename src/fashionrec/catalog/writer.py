"""The catalog's write interface: what indexing runs and live writes change, each change one transaction.

Only `catalog/` opens the SQLite store (`catalog.store`); a writer elsewhere (an `index` run, a product written over
the API) holds a `CatalogWriter` for the length of its work and says what to change in the catalog's own terms.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from fashionrec.catalog.rows import FileStamp, ProductRow, SkippedFile, StoredProduct
from fashionrec.catalog.space import SpaceUpdate, refresh_space
from fashionrec.catalog.store import DB_NAME, CatalogStore
from fashionrec.imaging.colour import ColourDescriptor


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

    def set_colours(self, colours: dict[str, ColourDescriptor]) -> None:
        """Store the colour of products indexed without it."""
        self._store.set_colours(colours)

    def remove(self, product_ids: Iterable[str], skipped: Iterable[tuple[str, str]] = ()) -> int:
        """Remove products (and forget skipped-file records); returns how many products were removed."""
        return self._store.remove(product_ids, skipped)

    def drop_all_products(self, info: dict[str, str]) -> None:
        """Forget every product (an older build of the model made them) and record the model now used."""
        self._store.drop_all_products(info)

    def update_metadata(self, metadata: dict[str, dict[str, str | None] | None]) -> None:
        """Set products' metadata (only rows that change are written)."""
        self._store.update_metadata(metadata)

    def refresh_space(self, wanted_dim: int, force: bool = False, drift_limit: float = float("inf")) -> SpaceUpdate:
        """Keep or refit the catalog's search space (`catalog.space.refresh_space` decides)."""
        return refresh_space(self._store, wanted_dim, force, drift_limit)
