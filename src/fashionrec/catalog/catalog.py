"""`Catalog`: one committed snapshot of a stored catalog, what search and recommend read.

A snapshot is read in one read transaction (products, metadata, the search space it names), so it is never a mix of
two indexing runs. Its search vectors are computed on first use, block by block, from the model vectors of the same
generation: a server whose search runs elsewhere (Milvus) never reads them, nor all the model vectors at once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path

import numpy as np

from fashionrec.catalog.derived import DerivedKeys, catalog_keys
from fashionrec.catalog.packed import IdRows
from fashionrec.catalog.rows import READ_BLOCK_ROWS, SkippedFile, StoredProducts
from fashionrec.catalog.space import SearchSpace, load_space, whitening_drift
from fashionrec.catalog.store import GENERATION_KEY, SPACE_KEY, CatalogStore
from fashionrec.catalog.tuning import Tuning
from fashionrec.catalog.whitening import Whitening
from fashionrec.errors import CatalogError, ModelMismatchError, ProductNotFoundError, shown
from fashionrec.imaging.colour import COLOUR_DIM, COLOUR_VERSION, HISTOGRAM_DIM, colour_vectors
from fashionrec.models import outdated_model


class Catalog:
    """Products, their search vectors (row-aligned with `ids`), metadata and image paths, as of one generation.

    Open it once per process; `Catalog.generation_of(dir)` tells cheaply whether a newer one has been committed.

    Example:
        >>> catalog = Catalog.open("my-catalog")
        >>> len(catalog), catalog.model_name
        (7254, 'efficientnet-lite2')
    """

    def __init__(self, catalog_dir: Path, info: dict[str, str], stored: StoredProducts,
                 skipped: list[SkippedFile], space: SearchSpace | None = None) -> None:
        self.catalog_dir = catalog_dir
        self.info = info
        self.opened_at = time.time()  # derived files published since may be a newer snapshot's (`search.select`)
        self.generation = int(info.get(GENERATION_KEY, "0"))
        self.ids = stored.ids
        self.space = space
        self.content_hashes = stored.sha256  # row-aligned; equal hashes are exact-duplicate images
        self._generations = stored.generations
        self._written = stored.written
        self._folders = stored.folders
        self._paths = stored.paths
        self._metadata = stored.metadata
        self._colour_versions = stored.colour_versions
        self._swatches = stored.swatches
        self.skipped = skipped
        self._vectors: np.ndarray | None = None

    @classmethod
    def open(cls, catalog_dir: str | os.PathLike) -> Catalog:
        """Load the catalog's latest committed snapshot.

        Raises:
            CatalogError: the folder is not a catalog, no model was ever recorded in it, or its search space
                file is missing or damaged.
            ModelMismatchError: its vectors were made by an older build of the model (index it again).
        """
        catalog_dir = Path(catalog_dir).expanduser()
        with CatalogStore(catalog_dir, reading=True) as store, store.snapshot():
            info = store.info()
            if "model_name" not in info:
                raise CatalogError(f"the catalog {catalog_dir} was never indexed; run fashionrec index first")
            reason = outdated_model(info["model_id"])
            if reason:
                raise ModelMismatchError(f"the catalog {catalog_dir} cannot be searched: {reason}; run "
                                         f"fashionrec index {info.get('images_dir', 'IMAGES_DIR')} --catalog "
                                         f"{catalog_dir} to embed its images again")
            stored = store.load()
            skipped = list(store.skipped().values())
        space = load_space(catalog_dir, info[SPACE_KEY], info["model_id"]) if info.get(SPACE_KEY) else None
        return cls(catalog_dir, info, stored, skipped, space)

    @staticmethod
    def generation_of(catalog_dir: str | os.PathLike) -> int:
        """The catalog's latest committed generation, in one cheap query (to notice a change without reopening)."""
        with CatalogStore(Path(catalog_dir).expanduser(), reading=True) as store:
            return store.generation()

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._positions

    @property
    def model_vectors(self) -> np.ndarray:
        """The vectors as the model gives them (unit length, the model's dim), read now (not kept).

        Raises:
            CatalogError: the catalog changed since this snapshot was opened (open it again).
        """
        with CatalogStore(self.catalog_dir, reading=True) as store:
            return store.vectors_at(self.generation, len(self), self.dim)

    @property
    def vectors_loaded(self) -> bool:
        """Whether the search vectors have been read (a server searching Milvus never reads them)."""
        return self._vectors is not None

    @property
    def vectors(self) -> np.ndarray:
        """What search ranks: the model vectors in the catalog's search space, computed block by block on first use.

        Raises:
            CatalogError: the catalog changed since this snapshot was opened (open it again).
        """
        if self._vectors is None:
            with CatalogStore(self.catalog_dir, reading=True) as store:
                self._vectors = store.vectors_at(self.generation, len(self), self.dim, transform=self.search_vectors,
                                                 with_colour=self.has_colour)
        return self._vectors

    def vector_blocks(self, rows: int = READ_BLOCK_ROWS) -> Iterator[np.ndarray]:
        """The search vectors (`vectors`) block by block, never all in memory (the compact index's floats file).

        Raises:
            CatalogError: the catalog changed since this snapshot was opened (open it again).
        """
        if self._vectors is not None:
            yield from (self._vectors[start:start + rows] for start in range(0, max(len(self), 1), rows))
            return
        with CatalogStore(self.catalog_dir, reading=True) as store:
            yield from store.blocks_at(self.generation, len(self), self.dim, transform=self.search_vectors,
                                       rows=rows, with_colour=self.has_colour)

    @cached_property
    def has_colour(self) -> bool:
        """Whether search vectors carry a colour part: some product has a histogram of this version (others: zeros)."""
        return bool(np.any(self._colour_versions == COLOUR_VERSION))

    @property
    def colour_dim(self) -> int:
        """Length of the colour part at the end of each search vector (0: none)."""
        return COLOUR_DIM if self.has_colour else 0

    @property
    def colour_missing(self) -> int:
        """How many products have no colour histogram of this version yet (an index run computes them)."""
        return int(np.count_nonzero(self._colour_versions != COLOUR_VERSION))

    def search_vectors(self, model_vectors: np.ndarray, histograms: np.ndarray | None = None) -> np.ndarray:
        """Model vectors (and colour histograms) to search vectors: [shape in the search space; colour vector].

        Each part is unit length (a colour part of zeros where no histogram is known), so the inner product of a
        query [shape; w * colour] with a product is shape.shape' + w * colour.colour'.
        """
        shape = self.project(model_vectors)
        if not self.has_colour:
            return shape
        if histograms is None:
            histograms = np.zeros((*shape.shape[:-1], HISTOGRAM_DIM), dtype=np.float32)
        return np.concatenate([shape, colour_vectors(histograms)], axis=-1)

    def query_vector(self, search_vector: np.ndarray, gain: np.ndarray | float) -> np.ndarray:
        """A search vector (a product's, or a photo's from `search_vectors`) as a query: its colour part times `gain`
        (one factor, or one per element of the colour vector: what the shopper's 0-1 colour weight means,
        `recommend.query.colour_gain`; 0 ranks by shape alone)."""
        query = np.array(search_vector, dtype=np.float32)
        if self.colour_dim:
            query[..., -self.colour_dim:] *= np.asarray(gain, dtype=np.float32)
        return query

    def shape_part(self, search_vectors: np.ndarray) -> np.ndarray:
        """Search vectors without their colour part."""
        vectors = np.asarray(search_vectors, dtype=np.float32)
        return vectors[..., :vectors.shape[-1] - self.colour_dim] if self.colour_dim else vectors

    def swatches_at(self, position: int) -> list[dict]:
        """The product's dominant colours, [{"rgb": "#a31f2b", "share": 0.62}, ...] ([] when not computed yet)."""
        text = self._swatches[position]
        return json.loads(text) if text and self._colour_versions[position] == COLOUR_VERSION else []

    def changes_since(self, generation: int) -> tuple[list[str], list[str]]:
        """(ids of this snapshot's products written after `generation`: added, replaced, re-coloured or re-described;
        ids removed after it and absent here). What a copy of an earlier snapshot must take to become this one: a
        server following the catalog (`follow_from`) and a push to Milvus both ask here.
        """
        written = [self.ids[row] for row in np.flatnonzero(self._written > generation).tolist()]
        with CatalogStore(self.catalog_dir, reading=True) as store:
            _, removed = store.written_since(generation)
        return written, [product_id for product_id in removed if product_id not in self]

    def read_search_vectors(self, product_ids: list[str]) -> np.ndarray:
        """The search vectors of some products, read from this very snapshot (row by row as `product_ids`).

        Raises:
            CatalogError: the catalog changed since this snapshot was opened (open it again).
        """
        with CatalogStore(self.catalog_dir, reading=True) as store, store.snapshot():
            if store.generation() != self.generation:
                raise CatalogError(f"the catalog {self.catalog_dir} changed since this snapshot was opened; open it "
                                   "again")
            model_vectors = store.vectors_of(product_ids, self.dim)
            histograms = store.colours_of(product_ids) if self.has_colour else {}
        if not product_ids:
            return np.zeros((0, self.search_dim), dtype=np.float32)
        return self.search_vectors(np.stack([model_vectors[i] for i in product_ids]),
                                   np.stack([histograms[i] for i in product_ids]) if histograms else None)

    def vectors_changed_since(self, older: Catalog) -> set[str]:
        """The products whose search vector is not `older`'s (an earlier snapshot of this catalog): added since, or
        written again with another photo, or another colour (a backfill); a metadata change alone keeps it."""
        written, _ = self.changes_since(older.generation)
        fresh = {product_id for product_id in self.ids if product_id not in older}  # added: written since, too
        for product_id in set(written) - fresh:
            row, old_row = self.position(product_id), older.position(product_id)
            if (self._generations[row] > older.generation
                    or self._colour_versions[row] != older._colour_versions[old_row]):
                fresh.add(product_id)
        return fresh

    def follow_from(self, older: Catalog) -> bool:
        """Take the search vectors of products unchanged since `older` (an earlier snapshot of this catalog, in the
        same search space) from it, and read only those whose search vector changed (`vectors_changed_since`): what a
        server does when the catalog changes. Returns whether it could (else all are read on first use, as usual)."""
        if (self._vectors is not None or not older.vectors_loaded or older.catalog_dir != self.catalog_dir
                or older.keys.space != self.keys.space or older.model_id != self.model_id
                or older.has_colour != self.has_colour):
            return False
        fresh_ids = self.vectors_changed_since(older)
        fresh = [row for row, product_id in enumerate(self.ids) if product_id in fresh_ids]
        try:
            read = self.read_search_vectors([self.ids[row] for row in fresh])
        except CatalogError:
            return False  # changed again meanwhile: a later snapshot will catch up
        vectors = np.empty((len(self), older.vectors.shape[1]), dtype=np.float32)
        kept = [row for row, product_id in enumerate(self.ids) if product_id not in fresh_ids]
        vectors[kept] = older.vectors[[older.position(self.ids[row]) for row in kept]]
        vectors[fresh] = read
        self._vectors = vectors
        return True

    @property
    def drift(self) -> float | None:
        """How far the products have moved from those the whitening was fitted on (`space.whitening_drift`), or None."""
        whitening = self.whitening
        if whitening is None:
            return None
        written = int(np.count_nonzero(self._generations > whitening.generation))
        return whitening_drift(whitening, written, len(self))

    @cached_property
    def search_dim(self) -> int:
        """Length of `vectors` (and of queries), known without reading the vectors."""
        return self.shape_dim + self.colour_dim

    @cached_property
    def shape_dim(self) -> int:
        """Length of the shape part of `vectors` (the model vectors in the search space)."""
        return int(self.project(np.zeros((1, self.dim), dtype=np.float32)).shape[1])

    def project(self, model_vectors: np.ndarray) -> np.ndarray:
        """Vectors from the model into the space `vectors` live in (whitened and tuned when the catalog is)."""
        return self.space.apply(model_vectors) if self.space else np.asarray(model_vectors, dtype=np.float32)

    def look_part(self, search_vectors: np.ndarray) -> np.ndarray:
        """The part of search vectors that did not come from `tune` (the look alone), at unit length.

        The near-duplicate threshold was chosen on untuned vectors; a tuning appends label directions that two
        different products of one class share, so near copies are told by this part only.
        """
        shape = self.shape_part(search_vectors)
        base = self.space.base_dim if self.space else None
        if base is None:
            return shape
        head = shape[..., :base]
        return head / np.maximum(np.linalg.norm(head, axis=-1, keepdims=True), 1e-12)

    @property
    def whitening(self) -> Whitening | None:
        """The whitening of the catalog's search space, if any."""
        return self.space.whitening if self.space else None

    @property
    def tuning(self) -> Tuning | None:
        """The label tuning of the catalog's search space, if any (`fashionrec tune`)."""
        return self.space.tuning if self.space else None

    @property
    def model_name(self) -> str:
        """The backbone every vector of this catalog comes from."""
        return self.info["model_name"]

    @property
    def model_id(self) -> str:
        """Name, weights hash and preprocessing fingerprint of that backbone."""
        return self.info["model_id"]

    @property
    def dim(self) -> int:
        """Length of the model vectors."""
        return int(self.info["dim"])

    @property
    def images_dir(self) -> Path:
        """The folder last indexed into the catalog (products may come from several: `folders`)."""
        return Path(self.info["images_dir"])

    @property
    def folders(self) -> list[Path]:
        """Every folder the catalog's products were indexed from."""
        return [Path(folder) for folder in sorted(set(self._folders))]

    @property
    def weights_path(self) -> str | None:
        """A user-given weights file the catalog was built with, if any."""
        return self.info.get("weights_path")

    @property
    def typical_image_size(self) -> tuple[int, int] | None:
        """Median (width, height) of the catalog's images, recorded by the indexer."""
        text = self.info.get("typical_image_size")
        if not text:
            return None
        width, height = text.split("x")
        return int(width), int(height)

    @property
    def columns(self) -> list[str]:
        """Metadata columns available for filters and display."""
        return json.loads(self.info.get("metadata_columns", "[]"))

    @cached_property
    def keys(self) -> DerivedKeys:
        """What derived data of this snapshot must be derived from (`catalog.derived`)."""
        return catalog_keys(self.model_id, self.ids, self.content_hashes, self._metadata,
                            self.info.get(SPACE_KEY, ""), self._colour_versions)

    @property
    def fingerprint(self) -> str:
        """Identifies everything a copy of this snapshot holds: model, search space, products, metadata."""
        return self.keys.fingerprint

    @cached_property
    def _positions(self) -> IdRows:
        return IdRows(self.ids)

    def position(self, product_id: str) -> int:
        """Row of `product_id` in `ids` and `vectors`.

        Raises:
            ProductNotFoundError: the id is not in the catalog.
        """
        try:
            return self._positions[str(product_id)]
        except KeyError:
            raise ProductNotFoundError(f"product {shown(str(product_id))} is not in the catalog {self.catalog_dir}") \
                from None

    def metadata(self, product_id: str) -> dict[str, str | None]:
        """The product's metadata ({} when the metadata file had no row for it)."""
        return dict(self._metadata[self.position(product_id)])

    def metadata_at(self, position: int) -> Mapping[str, str | None]:
        """Metadata by row, for code that already holds positions (search results)."""
        return self._metadata[position]

    def image_path(self, product_id: str) -> Path:
        """Where the product's image file is."""
        return self.image_path_at(self.position(product_id))

    def image_path_at(self, position: int) -> Path:
        """Image file by row."""
        return Path(self._folders[position]) / self._paths[position]

    def column_values(self, column: str) -> list[str | None]:
        """One metadata column for every product, row-aligned (for filters)."""
        return self._metadata.column(column)

    def facets(self, max_values: int = 300) -> dict[str, list[str]]:
        """Columns worth offering as filters, each with its distinct values (sorted, case kept).

        A column qualifies when it has at least two values and at most `max_values` of them, and fewer
        values than half the products (so names and free text are left out).

        Example:
            >>> catalog.facets()["gender"]
            ['Boys', 'Girls', 'Men', 'Unisex', 'Women']
        """
        return {column: list(values) for column, values in self._distinct_values.items()
                if 2 <= len(values) <= max_values and len(values) < max(2, len(self) / 2)}

    @cached_property
    def _distinct_values(self) -> dict[str, tuple[str, ...]]:
        """Each column's distinct non-empty values, sorted: read once, since a catalog object is one snapshot
        (the API's /filters and the web app's sidebar ask on every request)."""
        return {column: tuple(sorted({value for value in self.column_values(column) if value}, key=str.lower))
                for column in self.columns}
