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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from fashionrec.catalog.rows import (
    FileStamp,
    ProductRow,
    SkippedFile,
    StoredProduct,
    StoredProducts,
    colour_columns,
    metadata_json,
    stored_histogram,
)
from fashionrec.catalog.schema import KEPT_ON_RESET, bring_to_format
from fashionrec.errors import CatalogError
from fashionrec.imaging.colour import COLOUR_VERSION, HISTOGRAM_DIM, ColourDescriptor

DB_NAME = "catalog.sqlite"


BUSY_TIMEOUT_S = 30.0  # a writer waits this long for another writer's transaction before giving up


GENERATION_KEY, SPACE_KEY = "generation", "space"


class CatalogStore:
    """Read and write one catalog's SQLite file. Not shared across threads; open one per thread."""

    def __init__(self, catalog_dir: Path, create: bool = False) -> None:
        """Open the catalog; `create` also makes a new one, and brings one of an older format up to this one.

        Raises:
            CatalogError: not a catalog (and not `create`), unreadable, or of an older format (and not `create`).
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
            self._db.execute("PRAGMA synchronous=NORMAL")
            bring_to_format(self, create)
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"{db_path} cannot be opened as a catalog: {exc}") from None

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
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

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

    def count(self) -> int:
        """Number of products."""
        return self._db.execute("SELECT COUNT(*) FROM products").fetchone()[0]

    def products(self) -> dict[str, StoredProduct]:
        """{product id: its folder and file stamp}, to decide what a run must re-embed or may remove."""
        rows = self._db.execute("SELECT id, folder, path, size, mtime_ns, sha256 FROM products")
        return {row[0]: StoredProduct(row[1], FileStamp(*row[2:])) for row in rows}

    def skipped(self, folder: str | None = None) -> dict[str, SkippedFile]:
        """{path: skipped file} of one folder (or of every folder, paths then absolute): files that failed and why."""
        if folder is None:
            rows = self._db.execute("SELECT folder, path, reason, size, mtime_ns FROM skipped ORDER BY folder, path")
            return {str(Path(f) / p): SkippedFile(str(Path(f) / p), r, s, m) for f, p, r, s, m in rows}
        rows = self._db.execute("SELECT path, reason, size, mtime_ns FROM skipped WHERE folder = ? ORDER BY path",
                                (folder,))
        return {row[0]: SkippedFile(*row) for row in rows}

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

    def set_colours(self, colours: dict[str, ColourDescriptor]) -> None:
        """Store the colour of products indexed before it was computed (a backfill), in one transaction: their search
        vectors change, so the generation moves on and the products count as written now (a push sends them). Their
        model vectors do not change, so `vector_generation` stays: a backfill is no drift for the whitening; a
        snapshot that follows another reads their search vectors again (`Catalog.follow_from`: changed colour)."""
        if not colours:
            return
        with self.transaction() as db:
            generation = self._changed(db)
            db.executemany("UPDATE products SET colour = ?, swatches = ?, colour_version = ?, generation = ? "
                           "WHERE id = ?",
                           [(*colour_columns(descriptor), generation, product_id)
                            for product_id, descriptor in colours.items()])

    def without_colour(self) -> dict[str, StoredProduct]:
        """The products whose colour is missing or of another version (what a backfill must compute)."""
        rows = self._db.execute("SELECT id, folder, path, size, mtime_ns, sha256 FROM products WHERE colour_version != ?",
                                (COLOUR_VERSION,))
        return {row[0]: StoredProduct(row[1], FileStamp(*row[2:])) for row in rows}

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

    def metadata_of(self, product_id: str) -> dict[str, str | None] | None:
        """One product's stored metadata (None: none stored, or no such product)."""
        row = self._db.execute("SELECT metadata FROM products WHERE id = ?", (product_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def written_since(self, generation: int) -> tuple[list[str], list[str]]:
        """(ids of products written after `generation`, ids removed after it and not written again since)."""
        written = [row[0] for row in self._db.execute("SELECT id FROM products WHERE generation > ?", (generation,))]
        removed = {row[0] for row in self._db.execute("SELECT id FROM removed WHERE generation > ?", (generation,))}
        return written, sorted(removed - set(written))

    def changed_since(self, generation: int) -> tuple[int, int]:
        """(products whose vector was written after `generation`, products whose vector is older)."""
        after = self._db.execute("SELECT COUNT(*) FROM products WHERE vector_generation > ?",
                                 (generation,)).fetchone()[0]
        return after, self.count() - after

    def vectors_of(self, product_ids: list[str], dim: int) -> dict[str, np.ndarray]:
        """{id: model vector} of some products (the ones a live server must add to its snapshot)."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(product_ids), 500):
            chunk = product_ids[start:start + 500]
            rows = self._db.execute(f"SELECT id, vector FROM products WHERE id IN ({', '.join('?' * len(chunk))})",
                                    chunk)
            found.update((row[0], np.frombuffer(row[1], dtype="<f4").reshape(dim)) for row in rows)
        return found

    def colours_of(self, product_ids: list[str]) -> dict[str, np.ndarray]:
        """{id: colour histogram (zeros when none is stored)} of some products."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(product_ids), 500):
            chunk = product_ids[start:start + 500]
            rows = self._db.execute(f"SELECT id, colour, colour_version FROM products WHERE id IN "
                                    f"({', '.join('?' * len(chunk))})", chunk)
            found.update((row[0], stored_histogram(row[1], row[2])) for row in rows)
        return found

    def vector_blocks(self, dim: int, rows: int = 65_536) -> Iterator[np.ndarray]:
        """Every product's vector, in blocks of `rows` (id order), without loading the catalog at once."""
        cursor = self._db.execute("SELECT vector FROM products ORDER BY id")
        while batch := cursor.fetchmany(rows):
            yield np.frombuffer(b"".join(row[0] for row in batch), dtype="<f4").reshape(len(batch), dim)

    def colour_blocks(self, rows: int = 65_536) -> Iterator[np.ndarray]:
        """Every product's colour histogram (zeros where none is stored), in blocks of `rows` (id order)."""
        cursor = self._db.execute("SELECT colour, colour_version FROM products ORDER BY id")
        while batch := cursor.fetchmany(rows):
            yield np.stack([stored_histogram(blob, version) for blob, version in batch])

    def id_hashes(self) -> tuple[list[str], list[str]]:
        """Ids and image content hashes of every product, in id order."""
        rows = self._db.execute("SELECT id, sha256 FROM products ORDER BY id").fetchall()
        return [row[0] for row in rows], [row[1] for row in rows]

    def load(self) -> StoredProducts:
        """Every product, ordered by id, without its vector."""
        rows = self._db.execute("SELECT id, folder, path, metadata, sha256, vector_generation, colour_version, "
                                "swatches, generation FROM products ORDER BY id").fetchall()
        return StoredProducts(
            ids=[row[0] for row in rows],
            folders=[row[1] for row in rows],
            paths=[row[2] for row in rows],
            metadata=[json.loads(row[3]) if row[3] else {} for row in rows],
            sha256=[row[4] for row in rows],
            generations=[row[5] for row in rows],
            colour_versions=[row[6] for row in rows],
            swatches=[row[7] for row in rows],
            written=[row[8] for row in rows],
        )

    def vectors_at(self, generation: int, count: int, dim: int,
                   transform=None, rows: int = 65_536, with_colour: bool = False) -> np.ndarray:
        """The vectors of every product (id order) as the catalog was at `generation`, each block passed through
        `transform` (e.g. into the search space) as it is read, so the model vectors are never all in memory.
        `with_colour`: `transform(vectors, colour histograms)` gets each block's colour histograms too.

        Raises:
            CatalogError: the catalog changed since that generation (open it again).
        """
        def apply(block: np.ndarray, colours: np.ndarray | None) -> np.ndarray:
            if transform is None:
                return block.copy()
            return transform(block, colours) if with_colour else transform(block)

        with self.snapshot():
            if self.generation() != generation:
                raise CatalogError(f"the catalog {self.catalog_dir} changed since it was opened; open it again")
            out = None
            start = 0
            colour_blocks = self.colour_blocks(rows) if with_colour else iter(lambda: None, 0)
            for block, colours in zip(self.vector_blocks(dim, rows), colour_blocks):
                block = apply(block, colours)
                if out is None:
                    out = np.empty((count, block.shape[1]), dtype=np.float32)
                out[start:start + len(block)] = block
                start += len(block)
            if out is None:
                empty = apply(np.zeros((1, dim), np.float32), np.zeros((1, HISTOGRAM_DIM), np.float32))
                out = np.empty((0, empty.shape[1]), dtype=np.float32)
            if start != count:
                raise CatalogError(f"the catalog {self.catalog_dir} changed since it was opened; open it again")
        return out
