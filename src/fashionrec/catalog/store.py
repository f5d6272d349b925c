"""The catalog on disk: one SQLite file (WAL) holding products, vectors, metadata and skipped files.

SQLite gives atomic transactions: each indexing batch commits in one, so a crash (even `kill -9`)
loses at most the batch in flight and never leaves a half-written catalog. Every transaction that changes the
products or the search space also bumps the catalog's `generation`, so a reader can tell in one cheap query
whether what it holds is still current, and a reader that reads inside `snapshot()` sees one committed state.
Vectors are float32 BLOBs; metadata is JSON text. Nothing here is pickled. Derived data (the search space,
indexes) lives in files beside it (`catalog.space`, `catalog.derived`); the info table names the space in use.

Only `catalog/` opens it: indexing and live writes go through `catalog.writer`, readers through `Catalog`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from fashionrec.catalog.reads import StoreReads
from fashionrec.catalog.rows import (
    FileStamp,
    ProductRow,
    SkippedFile,
    colour_columns,
    metadata_json,
)
from fashionrec.catalog.schema import KEPT_ON_RESET, OWN_FOLDER, bring_to_format
from fashionrec.errors import CatalogError, StorageError
from fashionrec.imaging.colour import ColourDescriptor

DB_NAME = "catalog.sqlite"


BUSY_TIMEOUT_S = 30.0  # a writer waits this long for another writer's transaction before giving up


GENERATION_KEY, SPACE_KEY = "generation", "space"


class CatalogStore(StoreReads):
    """Read and write one catalog's SQLite file. Not shared across threads; open one per thread."""

    def __init__(self, catalog_dir: Path, create: bool = False, reading: bool = False) -> None:
        """Open the catalog; `create` also makes a new one, and brings one of an older format up to this one.
        `reading`: the caller only reads, so a catalog on a read-only disk or folder is opened read-only.

        Raises:
            CatalogError: not a catalog (and not `create`), unreadable, or of an older format (and not `create`).
            StorageError: the catalog cannot be written (read-only), and the caller would write.
        """
        self.catalog_dir = Path(catalog_dir)
        db_path = self.catalog_dir / DB_NAME
        if not db_path.is_file():
            if not create:
                raise CatalogError(
                    f"{self.catalog_dir} is not a fashionrec catalog (no {DB_NAME}); "
                    "build one with: fashionrec index IMAGES_DIR --catalog " + str(self.catalog_dir)
                )
            if self.catalog_dir.exists() and not self.catalog_dir.is_dir():
                raise CatalogError(f"{self.catalog_dir} exists and is not a folder")
            self.catalog_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(db_path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a commit survives power loss: its old files go
            bring_to_format(self, create)
        except sqlite3.DatabaseError as exc:
            if not (isinstance(exc, sqlite3.OperationalError) and _refused_by_disk(exc)):
                raise CatalogError(f"{db_path} cannot be opened as a catalog: {exc}") from None
            if not reading:
                raise StorageError(f"the catalog {self.catalog_dir} is read-only ({exc}): make its folder writable "
                                   "for the user running fashionrec to change it (reading it works as it is)") from None
            self._db = _open_read_only(db_path)

    @property
    def connection(self) -> sqlite3.Connection:
        """The open database (for `catalog.schema`, which creates and upgrades its tables)."""
        return self._db

    def close(self) -> None:
        """Close the database (a checkpoint folds the WAL back into the main file)."""
        self._db.close()

    def __enter__(self) -> CatalogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All statements inside commit together, or none do; one writer at a time (others wait, then fail)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise CatalogError(f"the catalog {self.catalog_dir} is busy: another program has been writing to it "
                               f"for {BUSY_TIMEOUT_S:.0f} s ({exc}); try again when it is done") from None
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and _refused_by_disk(exc):
                raise StorageError(f"the disk holding the catalog {self.catalog_dir} refused the write ({exc}): "
                                   "free some space or make it writable, then write again (nothing was committed, "
                                   "nothing committed before was lost)") from None
            raise

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees one committed state of the catalog (a read transaction)."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _changed(self, db: sqlite3.Connection) -> int:
        """Inside a writing transaction: the products or the space changed, so the generation moves on; returns it."""
        db.execute("INSERT INTO info (key, value) VALUES (?, '1') ON CONFLICT(key) DO UPDATE SET "
                   "value = CAST(value AS INTEGER) + 1", (GENERATION_KEY,))
        return int(db.execute("SELECT value FROM info WHERE key = ?", (GENERATION_KEY,)).fetchone()[0])

    def info(self) -> dict[str, str]:
        """The catalog's key/value facts: model name and id, dim, images_dir, columns, generation, space..."""
        return dict(self._db.execute("SELECT key, value FROM info"))

    def generation(self) -> int:
        """The number of committed changes to the products or the search space (cheap: one row)."""
        row = self._db.execute("SELECT value FROM info WHERE key = ?", (GENERATION_KEY,)).fetchone()
        return int(row[0]) if row else 0

    def set_info(self, values: dict[str, str]) -> None:
        """Set several info keys in one transaction."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO info (key, value) VALUES (?, ?)", values.items())

    def set_space(self, digest: str, expected: str | None = None) -> None:
        """Make `digest` the catalog's search space ("" for none), atomically.

        Raises:
            CatalogError: `expected` is given and the catalog's space is no longer it (someone changed it meanwhile).
        """
        with self.transaction() as db:
            row = db.execute("SELECT value FROM info WHERE key = ?", (SPACE_KEY,)).fetchone()
            current = row[0] if row else ""
            if expected is not None and current != expected:
                raise CatalogError(f"the catalog {self.catalog_dir} changed its search space meanwhile; run the "
                                   "command again")
            if current != digest:
                db.execute("INSERT OR REPLACE INTO info (key, value) VALUES (?, ?)", (SPACE_KEY, digest))
                self._changed(db)

    def write_batch(
        self,
        folder: str,
        products: Iterable[ProductRow] = (),
        restamped: Iterable[tuple[str, FileStamp]] = (),
        skipped: Iterable[SkippedFile] = (),
    ) -> None:
        """Store one batch of the indexer's results (files of `folder`) in a single transaction."""
        products, restamped, skipped = list(products), list(restamped), list(skipped)
        with self.transaction() as db:
            withdrawn = {row[0] for row in db.execute("SELECT id FROM withdrawn")}  # removed on request meanwhile
            products = [p for p in products if p.id not in withdrawn]
            restamped = [(i, s) for i, s in restamped if i not in withdrawn]
            generation = self._changed(db) if products or restamped else 0
            db.executemany(
                "INSERT OR REPLACE INTO products (id, folder, path, size, mtime_ns, sha256, vector, metadata, "
                "generation, vector_generation, colour, swatches, colour_version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(p.id, p.folder, p.stamp.path, p.stamp.size, p.stamp.mtime_ns, p.stamp.sha256,
                  np.asarray(p.vector, dtype="<f4").tobytes(), metadata_json(p.metadata), generation, generation,
                  *colour_columns(p.colour)) for p in products],
            )
            db.executemany(
                "UPDATE products SET folder = ?, path = ?, size = ?, mtime_ns = ? WHERE id = ?",
                [(folder, s.path, s.size, s.mtime_ns, product_id) for product_id, s in restamped],
            )
            db.executemany("DELETE FROM skipped WHERE folder = ? AND path = ?",
                           [(p.folder, p.stamp.path) for p in products] + [(folder, s.path) for _, s in restamped])
            db.executemany(
                "INSERT OR REPLACE INTO skipped (folder, path, size, mtime_ns, reason) VALUES (?, ?, ?, ?, ?)",
                [(folder, s.path, s.size, s.mtime_ns, s.reason) for s in skipped],
            )

    def set_colours(self, colours: dict[str, ColourDescriptor], hashes: dict[str, str] | None = None) -> None:
        """Store the colour of products indexed before it was computed (a backfill), in one transaction: their search
        vectors change, so the generation moves on and the products count as written now (a push sends them). Their
        model vectors do not change, so `vector_generation` stays: a backfill is no drift for the whitening; a
        snapshot that follows another reads their search vectors again (`Catalog.follow_from`: changed colour)."""
        if not colours:
            return
        with self.transaction() as db:
            generation = self._changed(db)
            hashes = hashes or {}  # the image each colour was computed from: a product written since keeps its own
            db.executemany("UPDATE products SET colour = ?, swatches = ?, colour_version = ?, generation = ? "
                           "WHERE id = ? AND (? IS NULL OR sha256 = ?)",
                           [(*colour_columns(descriptor), generation, product_id, hashes.get(product_id),
                             hashes.get(product_id)) for product_id, descriptor in colours.items()])

    def remove(self, product_ids: Iterable[str], skipped: Iterable[tuple[str, str]] = ()) -> int:
        """Drop products, and skipped-file records given as (folder, path), in one transaction; returns how many
        products were there to drop."""
        product_ids = list(product_ids)
        with self.transaction() as db:
            present = [i for i in product_ids
                       if db.execute("SELECT 1 FROM products WHERE id = ?", (i,)).fetchone() is not None]
            db.executemany("DELETE FROM skipped WHERE folder = ? AND path = ?", list(skipped))
            if present:
                generation = self._changed(db)
                db.executemany("DELETE FROM products WHERE id = ?", [(i,) for i in present])
                db.executemany("INSERT INTO removed (id, generation) VALUES (?, ?)", [(i, generation) for i in present])
        return len(present)

    def withdraw(self, product_ids: Iterable[str]) -> list[str] | None:
        """Remove products on request (`fashionrec remove`, DELETE), all or none, in one transaction: they stay
        removed when their folder is indexed again (`withdrawn`). Returns the catalog's own image files they
        pointed at, or None when one of them is not in the catalog (nothing is removed then)."""
        product_ids = list(product_ids)
        with self.transaction() as db:
            rows = [db.execute("SELECT folder, path FROM products WHERE id = ?", (i,)).fetchone() for i in product_ids]
            if any(row is None for row in rows):
                return None
            generation = self._changed(db)
            db.executemany("DELETE FROM products WHERE id = ?", [(i,) for i in product_ids])
            db.executemany("INSERT INTO removed (id, generation) VALUES (?, ?)", [(i, generation) for i in product_ids])
            db.executemany("INSERT OR REPLACE INTO withdrawn (id, generation) VALUES (?, ?)",
                           [(i, generation) for i in product_ids])
        return [path for folder, path in rows if folder == OWN_FOLDER]

    def put_products(self, rows: list[ProductRow], keep_metadata: set[str],
                     prepare: Callable[[], None]) -> list[tuple[bool, dict[str, str | None] | None, str | None]]:
        """Create or replace products whose images the catalog holds itself, in one transaction that first runs
        `prepare()` (the caller puts the image files in place: inside the transaction no other writer can release
        them). Products in `keep_metadata` keep the metadata they have now (read here, inside the transaction, so
        a concurrent write of it is never reverted). Returns, row by row: (created, the metadata stored, the
        catalog's own image file the product pointed at before, if another)."""
        with self.transaction() as db:
            prepare()
            before = {row.id: db.execute("SELECT folder, path, metadata FROM products WHERE id = ?",
                                         (row.id,)).fetchone() for row in rows}
            stored = [row.metadata if row.id not in keep_metadata or before[row.id] is None
                      else (json.loads(before[row.id][2]) if before[row.id][2] else None) for row in rows]
            generation = self._changed(db)
            db.executemany(
                "INSERT OR REPLACE INTO products (id, folder, path, size, mtime_ns, sha256, vector, metadata, "
                "generation, vector_generation, colour, swatches, colour_version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(p.id, OWN_FOLDER, p.stamp.path, p.stamp.size, p.stamp.mtime_ns, p.stamp.sha256,
                  np.asarray(p.vector, dtype="<f4").tobytes(), metadata_json(meta), generation, generation,
                  *colour_columns(p.colour)) for p, meta in zip(rows, stored)])
            db.executemany("DELETE FROM withdrawn WHERE id = ?", [(row.id,) for row in rows])
        return [(before[p.id] is None, meta,
                 before[p.id][1] if before[p.id] is not None and before[p.id][0] == OWN_FOLDER
                 and before[p.id][1] != p.stamp.path else None) for p, meta in zip(rows, stored)]

    def release_files(self, paths: Iterable[str], unlink: Callable[[str], None]) -> None:
        """`unlink` those of the catalog's own image files (relative paths) that no product points at, inside a
        writing transaction: no writer can commit a row pointing at one of them meanwhile."""
        paths = sorted(set(paths))
        if not paths:
            return
        with self.transaction() as db:
            used = set()
            for start in range(0, len(paths), 500):
                chunk = paths[start:start + 500]
                used.update(row[0] for row in db.execute(
                    f"SELECT path FROM products WHERE folder = ? AND path IN ({', '.join('?' * len(chunk))})",
                    (OWN_FOLDER, *chunk)))
            for path in paths:
                if path not in used:
                    unlink(path)

    def restore(self, product_ids: Iterable[str]) -> None:
        """Let removed products come back with their folder's next index run (`fashionrec index --restore`)."""
        with self.transaction() as db:
            db.executemany("DELETE FROM withdrawn WHERE id = ?", [(i,) for i in product_ids])

    def drop_all_products(self, info: dict[str, str]) -> None:
        """Forget every product and the search space (their vectors are unusable), and set `info`, in one
        transaction: a crash leaves either the old catalog or an empty one under the new model, never a mix."""
        with self.transaction() as db:
            generation = self._changed(db)
            db.execute("INSERT INTO removed (id, generation) SELECT id, ? FROM products", (generation,))
            db.execute("DELETE FROM products")
            db.execute(f"DELETE FROM info WHERE key NOT IN ({', '.join('?' * len(KEPT_ON_RESET))}, ?)",
                       (*KEPT_ON_RESET, GENERATION_KEY))
            db.executemany("INSERT OR REPLACE INTO info (key, value) VALUES (?, ?)", info.items())

    def update_metadata(self, metadata: dict[str, dict[str, str | None] | None]) -> None:
        """Replace the metadata of existing products (a new styles.csv), in one transaction; only real changes
        count as a change of the catalog."""
        current = dict(self._db.execute("SELECT id, metadata FROM products"))
        changed = [(metadata_json(value), product_id) for product_id, value in metadata.items()
                   if product_id in current and current[product_id] != metadata_json(value)]
        if not changed:
            return
        with self.transaction() as db:
            generation = self._changed(db)
            db.executemany("UPDATE products SET metadata = ?, generation = ? WHERE id = ?",
                           [(value, generation, product_id) for value, product_id in changed])


def _refused_by_disk(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite failed because of the disk (full, read-only), not because of the statement."""
    text = str(exc).lower()
    return any(words in text for words in ("disk is full", "readonly", "read-only", "disk i/o error",
                                           "unable to open database file"))


def _open_read_only(db_path: Path) -> sqlite3.Connection:
    """A catalog on a disk or folder that cannot be written, opened for reading: read-only where SQLite can share
    the WAL index, else as an unchanging file (nothing can write it anyway)."""
    for mode in ("mode=ro", "immutable=1"):
        try:
            db = sqlite3.connect(f"{db_path.resolve().as_uri()}?{mode}", uri=True, isolation_level=None,
                                 timeout=BUSY_TIMEOUT_S)
            db.execute("SELECT COUNT(*) FROM products").fetchone()
            return db
        except sqlite3.DatabaseError:
            continue
    raise CatalogError(f"the catalog {db_path.parent} cannot be read: check the permissions of {db_path}")
