"""The catalog on disk: one SQLite file (WAL) holding products, vectors, metadata and skipped files.

SQLite gives atomic transactions: each indexing batch commits in one, so a crash (even `kill -9`)
loses at most the batch in flight and never leaves a half-written catalog. Vectors are float32 BLOBs;
metadata is JSON text. Nothing here is pickled.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashionrec.errors import CatalogError

DB_NAME = "catalog.sqlite"
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,          -- relative to the catalog's images_dir
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,        -- of the image file's bytes: what decides whether to re-embed
    vector BLOB NOT NULL,        -- float32, unit length, info.dim values
    metadata TEXT                -- JSON object, or NULL when the metadata file has no row
);
CREATE TABLE IF NOT EXISTS arrays (  -- fitted transforms (the whitening): float32, C order
    name TEXT PRIMARY KEY,
    shape TEXT NOT NULL,         -- JSON list
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS skipped (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    reason TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class FileStamp:
    """What identifies a file's version cheaply (size, mtime) and surely (content hash)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str = ""


@dataclass(frozen=True)
class ProductRow:
    """One product as written by the indexer."""

    id: str
    stamp: FileStamp
    vector: np.ndarray
    metadata: dict[str, str | None] | None


@dataclass(frozen=True)
class SkippedFile:
    """A file that could not be indexed, and why."""

    path: str
    reason: str
    size: int = 0
    mtime_ns: int = 0


@dataclass(frozen=True)
class StoredProducts:
    """Every product of the catalog, row-aligned: ids[i] has paths[i], metadata[i] (and vectors[i] if loaded)."""

    ids: list[str]
    paths: list[str]
    vectors: np.ndarray | None  # None when loaded without vectors (see `CatalogStore.load_vectors`)
    metadata: list[dict[str, str | None]]
    sha256: list[str]  # of each image file: equal hashes are exact-duplicate images


class CatalogStore:
    """Read and write one catalog's SQLite file. Not shared across threads; open one per thread."""

    def __init__(self, catalog_dir: Path, create: bool = False) -> None:
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
            self._db = sqlite3.connect(db_path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"{db_path} cannot be opened as a catalog: {exc}") from None
        version = self.info().get("schema_version")
        if version is None:
            self.set_info({"schema_version": SCHEMA_VERSION})
        elif version != SCHEMA_VERSION:
            raise CatalogError(f"{db_path} has catalog format {version}; this fashionrec reads {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the database (a checkpoint folds the WAL back into the main file)."""
        self._db.close()

    def __enter__(self) -> CatalogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All statements inside commit together, or none do."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def info(self) -> dict[str, str]:
        """The catalog's key/value facts: model name and id, dim, images_dir, columns, ..."""
        return dict(self._db.execute("SELECT key, value FROM info"))

    def set_info(self, values: dict[str, str]) -> None:
        """Set several info keys in one transaction."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO info (key, value) VALUES (?, ?)", values.items())

    def count(self) -> int:
        """Number of products."""
        return self._db.execute("SELECT COUNT(*) FROM products").fetchone()[0]

    def stamps(self) -> dict[str, FileStamp]:
        """{product id: its file's stamp}, to decide what a rerun must re-embed."""
        rows = self._db.execute("SELECT id, path, size, mtime_ns, sha256 FROM products")
        return {row[0]: FileStamp(*row[1:]) for row in rows}

    def skipped(self) -> dict[str, SkippedFile]:
        """{path: skipped file}: files that failed before and why."""
        rows = self._db.execute("SELECT path, reason, size, mtime_ns FROM skipped ORDER BY path")
        return {row[0]: SkippedFile(*row) for row in rows}

    def write_batch(
        self,
        products: Iterable[ProductRow] = (),
        restamped: Iterable[tuple[str, FileStamp]] = (),
        skipped: Iterable[SkippedFile] = (),
    ) -> None:
        """Store one batch of the indexer's results in a single transaction."""
        products = list(products)
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO products (id, path, size, mtime_ns, sha256, vector, metadata) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(p.id, p.stamp.path, p.stamp.size, p.stamp.mtime_ns, p.stamp.sha256,
                  np.asarray(p.vector, dtype="<f4").tobytes(), _json(p.metadata)) for p in products],
            )
            db.executemany(
                "UPDATE products SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
                [(s.path, s.size, s.mtime_ns, product_id) for product_id, s in restamped],
            )
            db.executemany("DELETE FROM skipped WHERE path = ?", [(p.stamp.path,) for p in products])
            db.executemany(
                "INSERT OR REPLACE INTO skipped (path, size, mtime_ns, reason) VALUES (?, ?, ?, ?)",
                [(s.path, s.size, s.mtime_ns, s.reason) for s in skipped],
            )

    def remove(self, product_ids: Iterable[str], skipped_paths: Iterable[str] = ()) -> None:
        """Drop products (and skipped-file records) whose files are gone, in one transaction."""
        with self.transaction() as db:
            db.executemany("DELETE FROM products WHERE id = ?", [(i,) for i in product_ids])
            db.executemany("DELETE FROM skipped WHERE path = ?", [(p,) for p in skipped_paths])

    def drop_all_products(self, info: dict[str, str]) -> None:
        """Forget every product and everything fitted on them (their vectors are unusable), and set `info`, in one
        transaction: a crash leaves either the old catalog or an empty one under the new model, never a mix."""
        with self.transaction() as db:
            db.execute("DELETE FROM products")
            db.execute("DELETE FROM arrays")
            db.execute("DELETE FROM info WHERE key NOT IN ('schema_version', 'images_dir', 'metadata_path', "
                       "'metadata_columns')")
            db.executemany("INSERT OR REPLACE INTO info (key, value) VALUES (?, ?)", info.items())

    def update_metadata(self, metadata: dict[str, dict[str, str | None] | None]) -> None:
        """Replace the metadata of existing products (a new styles.csv), in one transaction."""
        with self.transaction() as db:
            db.executemany("UPDATE products SET metadata = ? WHERE id = ?",
                           [(_json(value), product_id) for product_id, value in metadata.items()])

    def put_arrays(self, arrays: dict[str, np.ndarray], info: dict[str, str]) -> None:
        """Store float32 arrays and the info keys that describe them, in one transaction."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO arrays (name, shape, data) VALUES (?, ?, ?)",
                           [(name, json.dumps(list(a.shape)), np.ascontiguousarray(a, dtype="<f4").tobytes())
                            for name, a in arrays.items()])
            db.executemany("INSERT OR REPLACE INTO info (key, value) VALUES (?, ?)", info.items())

    def get_array(self, name: str) -> np.ndarray | None:
        """A stored array, or None."""
        row = self._db.execute("SELECT shape, data FROM arrays WHERE name = ?", (name,)).fetchone()
        return None if row is None else np.frombuffer(row[1], dtype="<f4").reshape(json.loads(row[0])).copy()

    def delete_arrays(self, names: Sequence[str], info_keys: Sequence[str]) -> None:
        """Forget arrays and their info keys, in one transaction."""
        with self.transaction() as db:
            db.executemany("DELETE FROM arrays WHERE name = ?", [(n,) for n in names])
            db.executemany("DELETE FROM info WHERE key = ?", [(k,) for k in info_keys])

    def vector_blocks(self, dim: int, rows: int = 65_536) -> Iterator[np.ndarray]:
        """Every product's vector, in blocks of `rows` (id order), without loading the catalog at once."""
        cursor = self._db.execute("SELECT vector FROM products ORDER BY id")
        while batch := cursor.fetchmany(rows):
            yield np.frombuffer(b"".join(row[0] for row in batch), dtype="<f4").reshape(len(batch), dim)

    def id_hashes(self) -> tuple[list[str], list[str]]:
        """Ids and image content hashes of every product, in id order."""
        rows = self._db.execute("SELECT id, sha256 FROM products ORDER BY id").fetchall()
        return [row[0] for row in rows], [row[1] for row in rows]

    def load(self, dim: int, vectors: bool = True) -> StoredProducts:
        """Every product, ordered by id, with its vectors as one (n, dim) float32 matrix (unless not wanted)."""
        rows = self._db.execute("SELECT id, path, metadata, sha256 FROM products ORDER BY id").fetchall()
        ids = [row[0] for row in rows]
        return StoredProducts(
            ids=ids,
            paths=[row[1] for row in rows],
            vectors=self.load_vectors(ids, dim) if vectors else None,
            metadata=[json.loads(row[2]) if row[2] else {} for row in rows],
            sha256=[row[3] for row in rows],
        )

    def load_vectors(self, ids: list[str], dim: int) -> np.ndarray:
        """The vectors of every product as one (n, dim) float32 matrix, row-aligned with `ids` (ordered by id).

        Raises:
            CatalogError: the products are no longer `ids` (an indexing run changed the catalog meanwhile).
        """
        vectors = np.empty((len(ids), dim), dtype=np.float32)
        count = 0
        for index, (product_id, blob) in enumerate(self._db.execute("SELECT id, vector FROM products ORDER BY id")):
            if index >= len(ids) or ids[index] != product_id:
                break
            vectors[index] = np.frombuffer(blob, dtype="<f4")
            count += 1
        if count != len(ids) or self.count() != len(ids):
            raise CatalogError(f"the catalog {self.catalog_dir} changed since it was opened; open it again")
        return vectors


def _json(value: dict[str, str | None] | None) -> str | None:
    """Metadata as compact JSON text (None stays NULL)."""
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
