"""What the store reads: products, skipped files, vectors and colours, one snapshot at a time (`CatalogStore`'s reads;
the connection, the transactions and every write are in `catalog.store`)."""

from __future__ import annotations

import json
import sqlite3
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fashionrec.catalog.columns import BATCH_ROWS, MetadataColumns
from fashionrec.catalog.packed import HexDigests, PackedTexts, int_column
from fashionrec.catalog.rows import (
    READ_BLOCK_ROWS,
    FileStamp,
    SkippedFile,
    StoredProduct,
    StoredProducts,
    stored_histogram,
)
from fashionrec.catalog.schema import OWN_FOLDER
from fashionrec.errors import CatalogError
from fashionrec.imaging.colour import COLOUR_VERSION, HISTOGRAM_DIM
from fashionrec.memory import release_freed_memory


class StoreReads:
    """The reads of `CatalogStore` (which holds `_db` and `catalog_dir`)."""

    _db: sqlite3.Connection
    catalog_dir: Path

    def count(self) -> int:
        """Number of products."""
        return self._db.execute("SELECT COUNT(*) FROM products").fetchone()[0]

    def products(self) -> dict[str, StoredProduct]:
        """{product id: its folder and file stamp}, to decide what a run must re-embed or may remove."""
        rows = self._db.execute("SELECT id, folder, path, size, mtime_ns, sha256 FROM products")
        return {row[0]: StoredProduct(self._folder(row[1]), FileStamp(*row[2:])) for row in rows}

    def _folder(self, stored: str) -> str:
        """A stored folder as callers use it: the catalog's own images are stored relative to it (folder ''), so
        they follow the catalog when it moves."""
        return str(self.catalog_dir) if stored == OWN_FOLDER else stored

    def skipped(self, folder: str | None = None) -> dict[str, SkippedFile]:
        """{path: skipped file} of one folder (or of every folder, paths then absolute): files that failed and why."""
        if folder is None:
            rows = self._db.execute("SELECT folder, path, reason, size, mtime_ns FROM skipped ORDER BY folder, path")
            return {str(Path(f) / p): SkippedFile(str(Path(f) / p), r, s, m) for f, p, r, s, m in rows}
        rows = self._db.execute("SELECT path, reason, size, mtime_ns FROM skipped WHERE folder = ? ORDER BY path",
                                (folder,))
        return {row[0]: SkippedFile(*row) for row in rows}

    def without_colour(self) -> dict[str, StoredProduct]:
        """The products whose colour is missing or of another version (what a backfill must compute)."""
        rows = self._db.execute("SELECT id, folder, path, size, mtime_ns, sha256 FROM products WHERE colour_version != ?",
                                (COLOUR_VERSION,))
        return {row[0]: StoredProduct(self._folder(row[1]), FileStamp(*row[2:])) for row in rows}

    def own_paths(self) -> set[str]:
        """Every catalog-owned image file a product points at (relative to the catalog)."""
        return {row[0] for row in self._db.execute("SELECT path FROM products WHERE folder = ?", (OWN_FOLDER,))}

    def withdrawn(self) -> set[str]:
        """Ids of the products removed on request (they stay out of index runs)."""
        return {row[0] for row in self._db.execute("SELECT id FROM withdrawn")}

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

    def vector_blocks(self, dim: int, rows: int = READ_BLOCK_ROWS) -> Iterator[np.ndarray]:
        """Every product's vector, in blocks of `rows` (id order), without loading the catalog at once."""
        cursor = self._db.execute("SELECT vector FROM products ORDER BY id")
        while batch := cursor.fetchmany(rows):
            yield np.frombuffer(b"".join(row[0] for row in batch), dtype="<f4").reshape(len(batch), dim)

    def colour_blocks(self, rows: int = READ_BLOCK_ROWS) -> Iterator[np.ndarray]:
        """Every product's colour histogram (zeros where none is stored), in blocks of `rows` (id order)."""
        cursor = self._db.execute("SELECT colour, colour_version FROM products ORDER BY id")
        while batch := cursor.fetchmany(rows):
            yield np.stack([stored_histogram(blob, version) for blob, version in batch])

    def id_hashes(self) -> tuple[list[str], list[str]]:
        """Ids and image content hashes of every product, in id order."""
        rows = self._db.execute("SELECT id, sha256 FROM products ORDER BY id").fetchall()
        return [row[0] for row in rows], [row[1] for row in rows]

    def load(self) -> StoredProducts:
        """Every product, ordered by id, without its vector; its columns held as arrays (`catalog.packed`)."""
        stored = self._stored_products()
        release_freed_memory()  # what reading them left, freed but kept by the C heap until asked (`fashionrec.memory`)
        return stored

    def _stored_products(self) -> StoredProducts:
        cursor = self._db.execute("SELECT id, folder, path, metadata, sha256, vector_generation, colour_version, "
                                  "swatches, generation FROM products ORDER BY id")
        ids, folders = [], []
        paths, hashes, swatches = PackedTexts(), PackedTexts(), PackedTexts()
        generations, colour_versions, written = array("q"), array("q"), array("q")
        folder_names: dict[str, str] = {}  # one string a folder, not one a product

        def metadata_batches() -> Iterator[list[dict]]:  # a batch's JSON decoded as it comes: never all at once
            while batch := cursor.fetchmany(BATCH_ROWS):
                product_ids, stored_folders, row_paths, metadata, sha256, generation, colour_version, swatch, wrote = \
                    zip(*batch)
                ids.extend(product_ids)
                for folder in dict.fromkeys(stored_folders).keys() - folder_names.keys():
                    folder_names[folder] = self._folder(folder)
                folders.extend(map(folder_names.__getitem__, stored_folders))
                paths.extend(row_paths)
                hashes.extend(sha256)
                generations.extend(generation)
                colour_versions.extend(colour_version)
                swatches.extend(swatch)
                written.extend(wrote)
                yield [json.loads(text) if text else {} for text in metadata]

        metadata = MetadataColumns.from_batches(metadata_batches())
        return StoredProducts(ids=ids, folders=folders, paths=paths.seal(), metadata=metadata,
                              sha256=HexDigests.pack(hashes), generations=int_column(generations),
                              colour_versions=int_column(colour_versions), swatches=swatches.seal(),
                              written=int_column(written))

    def vectors_at(self, generation: int, count: int, dim: int,
                   transform=None, rows: int = READ_BLOCK_ROWS, with_colour: bool = False) -> np.ndarray:
        """The vectors of every product (id order) as the catalog was at `generation`, each block passed through
        `transform` (e.g. into the search space) as it is read, so the model vectors are never all in memory.
        `with_colour`: `transform(vectors, colour histograms)` gets each block's colour histograms too.

        Raises:
            CatalogError: the catalog changed since that generation (open it again).
        """
        out = None
        start = 0
        for block in self.blocks_at(generation, count, dim, transform, rows, with_colour):
            if out is None:
                out = np.empty((count, block.shape[1]), dtype=np.float32)
            out[start:start + len(block)] = block
            start += len(block)
        release_freed_memory()  # the blocks' model vectors and histograms (`fashionrec.memory`)
        return out

    def blocks_at(self, generation: int, count: int, dim: int, transform=None, rows: int = READ_BLOCK_ROWS,
                  with_colour: bool = False) -> Iterator[np.ndarray]:
        """Like `vectors_at`, block by block (for a derived file written without the whole matrix in memory); an
        empty catalog yields one empty block, so a consumer learns the vectors' length. The blocks are read in one
        read transaction, checked against `generation` before the first and after the last.

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
            start = 0
            colour_blocks = self.colour_blocks(rows) if with_colour else iter(lambda: None, 0)
            for block, colours in zip(self.vector_blocks(dim, rows), colour_blocks):
                block = np.asarray(apply(block, colours), dtype=np.float32)
                start += len(block)
                if start > count:
                    break
                yield block
            if start == 0 and count == 0:
                empty = apply(np.zeros((1, dim), np.float32), np.zeros((1, HISTOGRAM_DIM), np.float32))
                yield np.empty((0, empty.shape[1]), dtype=np.float32)
            if start != count:
                raise CatalogError(f"the catalog {self.catalog_dir} changed since it was opened; open it again")
