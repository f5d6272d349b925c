"""`Catalog`: a read-only snapshot of a stored catalog (vectors read on first use), what search and recommend read."""

from __future__ import annotations

import json
import logging
import os
from functools import cached_property
from pathlib import Path

import numpy as np

from fashionrec.catalog.store import CatalogStore, SkippedFile, StoredProducts
from fashionrec.catalog import tuning as tuning_keys
from fashionrec.catalog.tuning import Tuning, load_tuning
from fashionrec.catalog.whitening import FITTED_ON_KEY, MATRIX_KEY, MEAN_KEY, Whitening, products_fingerprint
from fashionrec.errors import CatalogError, ModelMismatchError, ProductNotFoundError
from fashionrec.models import outdated_model

log = logging.getLogger(__name__)


class Catalog:
    """Products, their unit vectors (row-aligned with `ids`), metadata and image paths.

    Open it once per process; reopen to see a later indexing run. The vectors are read from the store the
    first time something asks for them, so a server whose search runs elsewhere (Milvus) never holds them.

    Example:
        >>> catalog = Catalog.open("my-catalog")
        >>> len(catalog), catalog.model_name
        (7254, 'efficientnet-lite2')
    """

    def __init__(self, catalog_dir: Path, info: dict[str, str], stored: StoredProducts,
                 skipped: list[SkippedFile], whitening: Whitening | None = None, tuning: Tuning | None = None) -> None:
        self.catalog_dir = catalog_dir
        self.info = info
        self.ids = stored.ids
        self._model_vectors = stored.vectors
        self.whitening = whitening
        self.tuning = tuning
        self.content_hashes = stored.sha256  # row-aligned; equal hashes are exact-duplicate images
        self._paths = stored.paths
        self._metadata = stored.metadata
        self.skipped = skipped

    @classmethod
    def open(cls, catalog_dir: str | os.PathLike) -> Catalog:
        """Load a catalog built by `fashionrec index`.

        Raises:
            CatalogError: the folder is not a catalog, or no model was ever recorded in it.
        """
        catalog_dir = Path(catalog_dir).expanduser()
        with CatalogStore(catalog_dir) as store:
            info = store.info()
            if "model_name" not in info:
                raise CatalogError(f"the catalog {catalog_dir} was never indexed; run fashionrec index first")
            reason = outdated_model(info["model_id"])
            if reason:
                raise ModelMismatchError(f"the catalog {catalog_dir} cannot be searched: {reason}; run "
                                         f"fashionrec index {info['images_dir']} --catalog {catalog_dir} to embed its "
                                         "images again")
            stored = store.load(int(info["dim"]), vectors=False)
            skipped = list(store.skipped().values())
            fingerprint = products_fingerprint(stored.ids, stored.sha256)
            whitening = _stored_whitening(store, info, fingerprint)
            # A tuning lives in the space it was fitted in: not over raw vectors if a whitening was meant.
            tuning = _stored_tuning(store, info, fingerprint) if whitening or FITTED_ON_KEY not in info else None
        return cls(catalog_dir, info, stored, skipped, whitening, tuning)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._positions

    @property
    def model_vectors(self) -> np.ndarray:
        """The vectors as the model gives them (unit length, the model's dim), read on first use.

        Raises:
            CatalogError: an indexing run changed the catalog since it was opened (open it again).
        """
        if self._model_vectors is None:
            with CatalogStore(self.catalog_dir) as store:
                self._model_vectors = store.load_vectors(self.ids, self.dim)
        return self._model_vectors

    @property
    def vectors_loaded(self) -> bool:
        """Whether the vectors have been read (a server searching Milvus never reads them)."""
        return self._model_vectors is not None

    @cached_property
    def vectors(self) -> np.ndarray:
        """What search ranks: the model vectors, whitened and tuned when the catalog is."""
        return self.project(self.model_vectors)

    @cached_property
    def search_dim(self) -> int:
        """Length of `vectors` (and of projected queries), known without reading the vectors."""
        return int(self.project(np.zeros((1, self.dim), dtype=np.float32)).shape[1])

    def project(self, model_vectors: np.ndarray) -> np.ndarray:
        """Query vectors from the model into the space `vectors` live in (whitened when the catalog is)."""
        vectors = self.whitening.apply(model_vectors) if self.whitening else model_vectors
        return self.tuning.apply(vectors) if self.tuning else vectors

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
        """Length of the vectors."""
        return int(self.info["dim"])

    @property
    def images_dir(self) -> Path:
        """The folder the product images were indexed from."""
        return Path(self.info["images_dir"])

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
    def fingerprint(self) -> str:
        """Identifies these search vectors: the products, their images, and the whitening and tuning on them."""
        tuned = self.tuning.describe() if self.tuning else "-"
        shape = (len(self.ids), self.search_dim)
        return products_fingerprint([*self.ids, str(shape), tuned], [*self.content_hashes, "", ""])

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {product_id: index for index, product_id in enumerate(self.ids)}

    def position(self, product_id: str) -> int:
        """Row of `product_id` in `ids` and `vectors`.

        Raises:
            ProductNotFoundError: the id is not in the catalog.
        """
        try:
            return self._positions[str(product_id)]
        except KeyError:
            raise ProductNotFoundError(f"product {product_id!r} is not in the catalog {self.catalog_dir}") from None

    def metadata(self, product_id: str) -> dict[str, str | None]:
        """The product's metadata ({} when the metadata file had no row for it)."""
        return dict(self._metadata[self.position(product_id)])

    def metadata_at(self, position: int) -> dict[str, str | None]:
        """Metadata by row, for code that already holds positions (search results)."""
        return self._metadata[position]

    def image_path(self, product_id: str) -> Path:
        """Where the product's image file is."""
        return self.images_dir / self._paths[self.position(product_id)]

    def image_path_at(self, position: int) -> Path:
        """Image file by row."""
        return self.images_dir / self._paths[position]

    def column_values(self, column: str) -> list[str | None]:
        """One metadata column for every product, row-aligned (for filters)."""
        return [row.get(column) for row in self._metadata]

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


def _stored_whitening(store: CatalogStore, info: dict[str, str], fingerprint: str) -> Whitening | None:
    """The catalog's whitening if it was fitted on exactly these products (a crash may leave it stale)."""
    matrix = store.get_array(MATRIX_KEY)
    if matrix is None:
        return None
    if info.get(FITTED_ON_KEY) != fingerprint:
        log.warning("the catalog's whitening is older than its products; rerun fashionrec index to refit it")
        return None
    return Whitening(store.get_array(MEAN_KEY), matrix, fingerprint)


def _stored_tuning(store: CatalogStore, info: dict[str, str], fingerprint: str) -> Tuning | None:
    """The catalog's label tuning (`fashionrec tune`) if it was fitted on exactly these products."""
    arrays = {name: array for name in tuning_keys.ARRAY_NAMES if (array := store.get_array(name)) is not None}
    tuning = load_tuning(info, arrays)
    if tuning is None:
        return None
    if tuning.fitted_on != fingerprint:
        log.warning("the catalog's tuning is older than its products; rerun fashionrec tune")
        return None
    return tuning
