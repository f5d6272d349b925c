"""The store's tables, and bringing a catalog of an older format to this one (or refusing it, with the way out)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fashionrec.errors import CatalogError

if TYPE_CHECKING:
    from fashionrec.catalog.store import CatalogStore

SCHEMA_VERSION = "5"
OWN_FOLDER = ""  # the stored folder of a product whose image the catalog holds itself (its path: images/...)
KEPT_ON_RESET = ("schema_version", "images_dir", "metadata_path", "metadata_columns")

SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    folder TEXT NOT NULL,        -- the absolute images folder the file was indexed from ('': the catalog's own)
    path TEXT NOT NULL,          -- relative to that folder
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,        -- of the image file's bytes: what decides whether to re-embed
    vector BLOB NOT NULL,        -- float32, unit length, info.dim values
    metadata TEXT,               -- JSON object, or NULL when the metadata file has no row
    generation INTEGER NOT NULL,  -- the catalog generation that last wrote this row (what a copy must send again)
    vector_generation INTEGER NOT NULL,  -- ... that last wrote its vector (what a snapshot must read again)
    colour BLOB,                 -- float16 colour histogram (imaging.colour), NULL until computed
    swatches TEXT,               -- JSON [{"rgb": "#a31f2b", "share": 0.62}, ...], the product's dominant colours
    colour_version INTEGER NOT NULL DEFAULT 0  -- colour.COLOUR_VERSION of that histogram (0: none yet)
);
CREATE TABLE IF NOT EXISTS removed (  -- products removed, and at which generation (what a live copy must drop)
    id TEXT NOT NULL,
    generation INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS removed_by_generation ON removed (generation);
CREATE INDEX IF NOT EXISTS products_by_generation ON products (generation);
CREATE INDEX IF NOT EXISTS products_by_vector_generation ON products (vector_generation);
CREATE TABLE IF NOT EXISTS withdrawn (  -- products removed by fashionrec remove or DELETE: they stay removed when
    id TEXT PRIMARY KEY,                   -- their folder is indexed again (until index --restore, or a new write)
    generation INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS skipped (
    folder TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (folder, path)
);
"""


def bring_to_format(store: CatalogStore, create: bool) -> None:
    """Create the tables; refuse (or, creating, rebuild) a catalog of another format."""
    tables = {row[0] for row in store.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    version = store.info().get("schema_version") if "info" in tables else None
    version = _upgrade(store, version)
    if version is not None and version != SCHEMA_VERSION:
        if not create or version > SCHEMA_VERSION:
            images = store.info().get("images_dir", "IMAGES_DIR")
            raise CatalogError(
                f"the catalog {store.catalog_dir} has format {version} (this fashionrec reads {SCHEMA_VERSION}) "
                f"and vectors this version does not make; run fashionrec index {images} --catalog "
                f"{store.catalog_dir} to embed its images again")
        # Format 1 was written by fashionrec 0.1, whose vectors every later model id refuses: keep only the
        # facts that say where the images and the metadata are, and index again.
        with store.transaction() as db:
            for table in ("products", "skipped", "arrays"):
                db.execute(f"DROP TABLE IF EXISTS {table}")
            db.execute(f"DELETE FROM info WHERE key NOT IN ({', '.join('?' * len(KEPT_ON_RESET))})", KEPT_ON_RESET)
    store.connection.executescript(SCHEMA)
    if version != SCHEMA_VERSION:
        store.set_info({"schema_version": SCHEMA_VERSION})


def _upgrade(store: CatalogStore, version: str | None) -> str | None:
    """Bring a catalog of format 2, 3 or 4 to this format step by step, each step one transaction."""
    db_version = version
    if db_version == "2":  # format 2 lacked the generation of each row: every row counts as written at 0
        with store.transaction() as db:
            db.execute("ALTER TABLE products ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")
            db.execute("ALTER TABLE products ADD COLUMN vector_generation INTEGER NOT NULL DEFAULT 0")
            db.execute("UPDATE info SET value = '3' WHERE key = 'schema_version'")
        db_version = "3"
    if db_version == "3":  # format 3 had no colour: every product gets it on the next index run, without the CNN
        with store.transaction() as db:
            db.execute("ALTER TABLE products ADD COLUMN colour BLOB")
            db.execute("ALTER TABLE products ADD COLUMN swatches TEXT")
            db.execute("ALTER TABLE products ADD COLUMN colour_version INTEGER NOT NULL DEFAULT 0")
            db.execute("UPDATE info SET value = '4' WHERE key = 'schema_version'")
        db_version = "4"
    if db_version == "4":  # format 4 named the catalog's own image folder by its absolute path: a moved catalog
        with store.transaction() as db:  # lost its images. Its own: "…/images" rows whose file is in ours
            own = [(folder, path) for folder, path, size in db.execute(
                       "SELECT folder, path, size FROM products WHERE folder LIKE '%images'")
                   if Path(folder).name == "images" and _has_file(store.catalog_dir / "images" / path, size)]
            db.executemany("UPDATE products SET folder = '', path = 'images/' || path WHERE folder = ? AND path = ?",
                           own)
            db.execute("UPDATE info SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))
        db_version = SCHEMA_VERSION
    return db_version


def _has_file(path: Path, size: int) -> bool:
    """Whether the file is there with this size (the catalog's own copy of a product's photo)."""
    try:
        return path.stat().st_size == size
    except OSError:
        return False
