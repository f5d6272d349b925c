"""`Recommender`: the one object the CLI, the REST API and the web app all use.

It holds a catalog and the model that built it, and answers "products that look like this photo"
(`by_image`) and "more like this product" (`by_id`, never returning the product itself), optionally
restricted by metadata filters.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Union

import numpy as np
from PIL import Image

from fashionrec.catalog import Catalog
from fashionrec.config import Settings, load_settings
from fashionrec.embed import Embedder, load_model
from fashionrec.errors import CatalogError, FashionrecError, FilterError, ModelMismatchError
from fashionrec.images import ImageSource, PixelLimits, match_catalog_look, open_image
from fashionrec.search import (AnnIndex, ExactIndex, Neighbours, Restriction, SearchBackend, block_neighbours,
                               distinct_rows, exact_search)

log = logging.getLogger(__name__)

DEFAULT_K = 5
VALUES_NAMED = 30  # a notice names at most this many of a column's values
SIMILARITY_MEANING = ("similarity: the cosine of the two images' vectors in the catalog's search space, from -1 to 1 "
                      "(the CLI and the web app show it as a percentage: 100% is the same image); it ranks products by "
                      "look, it is not a probability")
"""What the one figure the CLI, the API and the web app show for a match means (they all show `Match.similarity`)."""
Filters = Mapping[str, Union[str, Sequence[str]]]
"""Metadata filters: {column: value or values}. Values of one column are OR-ed, columns AND-ed;
matching ignores case."""


@dataclass(frozen=True)
class Match:
    """One recommended product."""

    id: str
    distance: float  # Euclidean distance between unit vectors: 0 = identical, 2 = opposite
    image: str  # path of the product's image file
    metadata: dict[str, str | None]

    @property
    def similarity(self) -> float:
        """The figure every face shows (see SIMILARITY_MEANING): the cosine, from the distance (1 = identical)."""
        return cosine_of_distance(self.distance)


def cosine_of_distance(distance: float) -> float:
    """The cosine of two unit vectors `distance` apart (Euclidean): what `Match.similarity` reports."""
    return 1.0 - distance**2 / 2.0


@dataclass(frozen=True)
class Recommendations:
    """The answer to one query: the model that produced it and the matches, nearest first."""

    model: str
    results: list[Match]
    notice: str | None = None  # set when a filter matched nothing: which one, and the values there are

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by the CLI (`--json`) and the REST API: each match's figure is `similarity`."""
        results = [{"id": m.id, "similarity": m.similarity, "image": m.image, "metadata": m.metadata}
                   for m in self.results]
        return {"model": self.model, "results": results, "notice": self.notice}


def parse_filters(expressions: Iterable[str]) -> dict[str, list[str]]:
    """Parse `column=value` strings (as given to `--where`) into filters.

    Raises:
        FilterError: an expression has no `=` or an empty column name.

    Example:
        >>> parse_filters(["gender=Men", "articleType=Tshirts", "gender=Boys"])
        {'gender': ['Men', 'Boys'], 'articleType': ['Tshirts']}
    """
    filters: dict[str, list[str]] = {}
    for expression in expressions:
        column, sep, value = expression.partition("=")
        if not sep or not column.strip():
            raise FilterError(f"a filter must look like column=value (e.g. gender=Men), got {expression!r}")
        filters.setdefault(column.strip(), []).append(value.strip())
    return filters


class Recommender:
    """Find the catalog products most similar to a photo or to another product.

    It answers from one snapshot of the catalog at a time. `follow()` keeps it on the catalog's latest committed
    snapshot as products are indexed, added or removed (a cheap generation check every second, then an
    incremental swap): a query in flight finishes on the snapshot it started on, and none sees a mix.

    Example:
        >>> recommender = Recommender(Catalog.open("my-catalog"))
        >>> [m.id for m in recommender.by_id("15970", k=3).results]
        ['39386', '21379', '11016']
    """

    def __init__(self, catalog: Catalog, embedder: Embedder | None = None, settings: Settings | None = None,
                 match_queries: bool | None = None, search: str | SearchBackend | None = None) -> None:
        """Pair a catalog with its model (loaded here unless given; it must be the catalog's model).

        `match_queries` (default from settings: on) brings photos much larger than the catalog's images
        to the catalog's size and JPEG look before embedding them (see `images.match_catalog_look`).

        `search` (default from settings: auto) picks the index: `exact`; `hnsw` or `faiss` (FAISS HNSW, built
        once and kept in the catalog folder); `auto` (hnsw from `ann_threshold` products when faiss is
        installed); a Milvus collection the catalog was pushed to (`milvus://HOST:PORT/COLLECTION`,
        `milvuss://...` for TLS, `milvus-lite:///path/file.db`); or a ready `SearchBackend` (which cannot follow
        the catalog).

        Raises:
            ModelMismatchError: the embedder is not the model the catalog was built with.
            FashionrecError: an unknown index, hnsw without faiss, or a Milvus collection that does not hold
                this catalog's current vectors.
        """
        self.embedder = embedder or load_model(catalog.model_name, catalog.weights_path, settings)
        if self.embedder.model_id != catalog.model_id:
            raise ModelMismatchError(
                f"the catalog was built with {catalog.model_id}, but the model loaded is "
                f"{self.embedder.model_id}; their vectors cannot be compared"
            )
        self._settings = settings or load_settings()
        self._matching = self._settings.match_queries if match_queries is None else match_queries
        self._search = search or self._settings.search
        backend = search if not isinstance(search, (str, type(None))) else open_search(
            catalog, self._search, self._settings)
        self._view = _View(catalog, self.embedder, backend, self._settings, self._matching)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self._retry_at = 0.0
        self._failures = 0

    @property
    def catalog(self) -> Catalog:
        """The snapshot of the catalog this recommender answers from now."""
        return self._view.catalog

    @property
    def _backend(self) -> SearchBackend:
        return self._view.backend

    @property
    def index(self) -> str:
        """The search in use: exact, hnsw or milvus."""
        return self._view.backend.name

    def by_image(self, image: ImageSource, k: int = DEFAULT_K, where: Filters | None = None,
                 show_duplicates: bool = False) -> Recommendations:
        """The `k` products that look most like `image` (a path, the file's bytes, or a PIL image).

        Duplicate images (exact copies, or vectors closer than the `duplicate_cosine` setting) come back
        once, as their nearest product, unless `show_duplicates`.

        Raises:
            ImageError: the image cannot be used.
            CatalogError: the catalog is empty. FilterError: a filter names an unknown column.
        """
        return self._view.by_image(image, k, where, show_duplicates)

    def by_id(self, product_id: str, k: int = DEFAULT_K, where: Filters | None = None,
              show_duplicates: bool = False) -> Recommendations:
        """The `k` products most like catalog product `product_id`, never the product itself.

        Unless `show_duplicates`, copies of the product's image are left out too, and duplicates among
        the results come back once (see `by_image`).

        Raises:
            ProductNotFoundError: the id is not in the catalog.
        """
        return self._view.by_id(product_id, k, where, show_duplicates)

    def query_image(self, image: ImageSource) -> Image.Image:
        """The query as the model will see it: decoded, upright, RGB, matched to the catalog's look.

        Raises:
            ImageError: the image cannot be used.
        """
        return self._view.query_image(image)

    def refresh(self) -> bool:
        """Swap to the catalog's latest committed snapshot if it has a newer one; returns whether it swapped.

        Only what changed is read: the search vectors of unchanged products come from the current snapshot. A
        Milvus-served recommender first sends the changes to Milvus (incrementally); if Milvus cannot be reached it
        keeps answering from the current snapshot and tries again later (nothing is lost: the catalog holds every
        write). An HNSW-served one answers exactly until the new graph is built (in the background).

        Raises:
            FashionrecError: the new snapshot cannot be served (e.g. another model); the current one stays.
        """
        with self._lock:
            view = self._view
            directory = view.catalog.catalog_dir
            if Catalog.generation_of(directory) == view.catalog.generation:
                return False
            catalog = Catalog.open(directory)
            if catalog.model_id != view.catalog.model_id:
                raise ModelMismatchError(f"the catalog {directory} now holds {catalog.model_id} vectors; restart the "
                                         "server to serve them")
            if catalog.generation == view.catalog.generation:
                return False
            catalog.follow_from(view.catalog)
            backend = self._next_backend(catalog, view)
            self._view = _View(catalog, self.embedder, backend, self._settings, self._matching)
        log.info("now serving generation %d of %s (%d products)", catalog.generation, directory, len(catalog))
        return True

    def _next_backend(self, catalog: Catalog, view: _View) -> SearchBackend:
        """The backend for a new snapshot, built from what the current one holds where it can."""
        if not isinstance(self._search, str):
            return view.backend if getattr(view.backend, "name", "") != "exact" else ExactIndex(catalog.vectors)
        if is_milvus_address(self._search):
            from fashionrec.scale.milvus import push

            push(catalog, self._search)  # only what changed since the copy's generation; raises if unreachable
            return view.backend.for_catalog(catalog)
        mode = search_mode(catalog, self._search, self._settings)
        if mode == "exact":
            return ExactIndex(catalog.vectors)
        from fashionrec.catalog.derived import hnsw_path

        if hnsw_path(catalog.catalog_dir, catalog.keys).is_file():
            return open_search(catalog, "hnsw", self._settings)
        threading.Thread(target=self._build_graph, args=(catalog,), daemon=True, name="fashionrec-hnsw").start()
        return ExactIndex(catalog.vectors)  # exact (slower, never wrong) until the new graph is ready

    def _build_graph(self, catalog: Catalog) -> None:
        """Build the HNSW graph of a snapshot in the background, then serve it if that snapshot is still current."""
        try:
            backend = open_search(catalog, "hnsw", self._settings)
        except FashionrecError as exc:
            log.warning("the HNSW graph of generation %d was not built: %s", catalog.generation, exc)
            return
        with self._lock:
            if self._view.catalog is catalog:
                self._view = _View(catalog, self.embedder, backend, self._settings, self._matching)

    def follow(self, seconds: float | None = None) -> None:
        """Check every `seconds` (default: the `follow_seconds` setting) for a newer catalog and swap to it, in a
        background thread, until `close()`. A failed refresh is logged and tried again, later each time."""
        seconds = self._settings.follow_seconds if seconds is None else seconds
        if seconds <= 0 or self._follower is not None:
            return
        self._follower = threading.Thread(target=self._follow, args=(seconds,), daemon=True, name="fashionrec-follow")
        self._follower.start()

    def _follow(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            if time.monotonic() < self._retry_at:
                continue
            try:
                self.refresh()
                self._failures = 0
            except Exception as exc:  # noqa: BLE001 - the follower must outlive any one failed refresh
                self._failures += 1
                self._retry_at = time.monotonic() + min(60.0, seconds * 2 ** self._failures)
                log.warning("could not serve the catalog's newer snapshot (will try again): %s", exc)

    def close(self) -> None:
        """Stop following, and release the search backend (a Milvus Lite file, which one program opens at a time)."""
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=10)
        getattr(self._view.backend, "close", lambda: None)()


class _View:
    """One snapshot of the catalog, its search backend, and the queries over them (what `Recommender` holds)."""

    def __init__(self, catalog: Catalog, embedder: Embedder, backend: SearchBackend, settings: Settings,
                 match_queries: bool) -> None:
        self.catalog = catalog
        self.embedder = embedder
        self.backend = backend
        self._lowered_columns: dict[str, np.ndarray] = {}
        self._known_values: dict[str, frozenset[str]] = {}  # a column's lower-cased values, for filter notices
        self._query_limits = PixelLimits.for_uploads(settings)  # a query photo is an upload: its lower limits
        self._query_size = catalog.typical_image_size if match_queries else None
        # Raw pooled features are all alike (nearest-neighbour cosines around 0.99), so near copies are told
        # apart only in a whitened catalog; exact copies (same file content) always are.
        self._duplicate_cosine = settings.duplicate_cosine if catalog.whitening else np.inf

    def _search(self, query: np.ndarray, k: int, allowed: Restriction) -> Neighbours:
        """k nearest allowed rows, by the index in use."""
        found = self.backend.search(query, k, allowed)
        if len(found.positions) == min(k, allowed.count(len(self.catalog))) or self.backend.name != "hnsw":
            return found
        # A very selective filter can starve an approximate index's graph walk: answer that query exactly instead.
        return exact_search(self.catalog.vectors, query, k, allowed.mask)

    def by_image(self, image: ImageSource, k: int = DEFAULT_K, where: Filters | None = None,
                 show_duplicates: bool = False) -> Recommendations:
        """The `k` products that look most like `image` (a path, the file's bytes, or a PIL image).

        Duplicate images (exact copies, or vectors closer than the `duplicate_cosine` setting) come back
        once, as their nearest product, unless `show_duplicates`.

        Raises:
            ImageError: the image cannot be used.
            CatalogError: the catalog is empty. FilterError: a filter names an unknown column.
        """
        self._check(k)
        query = self.catalog.project(self.embedder.embed_image(self.query_image(image)))
        allowed = self._allowed(where, exclude=None)
        found = self._answer(query, k, allowed, None if show_duplicates else ())
        return replace(found, notice=self._filter_notice(where, allowed))

    def query_image(self, image: ImageSource) -> Image.Image:
        """The query as the model will see it: decoded, upright, RGB, matched to the catalog's look.

        Raises:
            ImageError: the image cannot be used.
        """
        prep = self.embedder.spec.preprocessing
        decoded = open_image(image, self._query_limits, draft_size=2 * prep.size if prep.allow_draft else None)
        return match_catalog_look(decoded, self._query_size) if self._query_size else decoded

    def by_id(self, product_id: str, k: int = DEFAULT_K, where: Filters | None = None,
              show_duplicates: bool = False) -> Recommendations:
        """The `k` products most like catalog product `product_id`, never the product itself.

        Unless `show_duplicates`, copies of the product's image are left out too, and duplicates among
        the results come back once (see `by_image`).

        Raises:
            ProductNotFoundError: the id is not in the catalog.
        """
        self._check(k)
        position = self.catalog.position(str(product_id))
        allowed = self._allowed(where, exclude=position)
        found = self._answer(self.backend.vector(position), k, allowed, None if show_duplicates else (position,))
        return replace(found, notice=self._filter_notice(where, allowed))

    def _check(self, k: int) -> None:
        """Refuse a k below 1 and an empty catalog, with messages a user can act on."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise FashionrecError(f"k must be a whole number of at least 1, got {k!r}")
        if len(self.catalog) == 0:
            raise CatalogError(f"the catalog {self.catalog.catalog_dir} is empty: index some images first")

    def _answer(self, query: np.ndarray, k: int, allowed: Restriction,
                seen: tuple[int, ...] | None) -> Recommendations:
        """Search and turn rows into `Match`es; `seen`: None keeps duplicates, else rows already 'shown'."""
        found = self._search(query, k, allowed) if seen is None else self._distinct(query, k, allowed, seen)
        results = [
            Match(
                id=self.catalog.ids[position],
                distance=float(distance),
                image=str(self.catalog.image_path_at(position)),
                metadata=dict(self.catalog.metadata_at(position)),
            )
            for position, distance in zip(found.positions.tolist(), found.distances.tolist())
        ]
        return Recommendations(model=self.catalog.model_name, results=results)

    def _distinct(self, query: np.ndarray, k: int, allowed: Restriction, seen: tuple[int, ...]) -> Neighbours:
        """The k nearest with one product per duplicate group, widening the search until k are found.

        `seen` holds the query product's row ("more like this"), whose vector is the query itself.
        """
        hashes = self.catalog.content_hashes
        available = allowed.count(len(self.catalog))
        if available == 0:
            return Neighbours(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))  # nothing allowed
        fetch = k
        while True:
            fetch = min(2 * fetch + 8, available)
            found = self._search(query, fetch, allowed)
            keep = distinct_rows(found.positions, hashes, self._vectors_of(found), k, self._duplicate_cosine,
                                 seen_hashes=[hashes[p] for p in seen],
                                 seen_vectors=self.catalog.look_part(query) if seen else None)
            if len(keep) == k or fetch >= available:
                return Neighbours(found.positions[keep], found.distances[keep])

    def _vectors_of(self, found: Neighbours) -> Mapping[int, np.ndarray] | np.ndarray:
        """The found rows' look vectors (`Catalog.look_part`) for near-duplicate checks: from the vectors the backend
        returned, else from the catalog's (read only when near copies are looked for at all)."""
        if found.vectors is not None:
            return dict(zip(found.positions.tolist(), self.catalog.look_part(found.vectors)))
        if not np.isfinite(self._duplicate_cosine):
            return {}
        return self.catalog.vectors if self.catalog.tuning is None else _LookRows(self.catalog)

    def _allowed(self, where: Filters | None, exclude: int | None) -> Restriction:
        """The rows a query may return: a mask over the catalog, and the lower-cased filters it came from."""
        if not where and exclude is None:
            return Restriction()
        allowed = np.ones(len(self.catalog), dtype=bool)
        lowered: dict[str, tuple[str, ...]] = {}
        for column, values in (where or {}).items():
            wanted = [values] if isinstance(values, str) else list(values)
            lowered[column] = tuple(str(v).lower() for v in wanted)
            allowed &= np.isin(self._lowered(column), list(lowered[column]))
        if exclude is not None:
            allowed[exclude] = False
        return Restriction(allowed, lowered, () if exclude is None else (exclude,))

    def _filter_notice(self, where: Filters | None, allowed: Restriction) -> str | None:
        """What a shopper must hear when filters matched nothing: values no product has (with the values there
        are), or filters that exist alone but together allow no product (or none but the query's own)."""
        if not where:
            return None
        unknown = []
        for column, values in where.items():
            known = self._known_values[column]  # filled by _allowed for every filtered column
            missing = [str(v) for v in ([values] if isinstance(values, str) else values) if str(v).lower() not in known]
            if missing:
                unknown.append(f"no product has {' or '.join(f'{column}={v}' for v in missing)}; its values are: "
                               f"{self._values_named(column)}")
        if unknown:
            return "; ".join(unknown)
        if allowed.count(len(self.catalog)) > 0:
            return None
        wanted = [f"{column}={' or '.join([values] if isinstance(values, str) else map(str, values))}"
                  for column, values in where.items()]
        described = wanted[0] if len(wanted) == 1 else f"{', '.join(wanted[:-1])} and {wanted[-1]}"
        if allowed.exclude and all(self._matches(row, allowed) for row in allowed.exclude):
            return f"no product other than {self.catalog.ids[allowed.exclude[0]]} has {described}"
        return f"no product has {described} together (each value exists on its own): remove a filter to see more"

    def _matches(self, row: int, allowed: Restriction) -> bool:
        """Whether catalog row `row` meets every (lower-cased) filter of `allowed`."""
        return all(self._lowered(column)[row] in values for column, values in allowed.where.items())

    def _values_named(self, column: str) -> str:
        """A column's values for a message, the first VALUES_NAMED of them, sorted."""
        values = sorted({v for v in self.catalog.column_values(column) if v}, key=str.lower)
        if not values:
            return "none (no product has a value in this column)"
        more = f" (and {len(values) - VALUES_NAMED} more)" if len(values) > VALUES_NAMED else ""
        return ", ".join(values[:VALUES_NAMED]) + more

    def _lowered(self, column: str) -> np.ndarray:
        """A metadata column, lower-cased, as an array (built once per column)."""
        if column not in self._lowered_columns:
            if column not in self.catalog.columns:
                known = ", ".join(self.catalog.columns) or "none (the catalog was indexed without metadata)"
                raise FilterError(f"unknown filter column {column!r}; the catalog's columns are: {known}")
            values = self.catalog.column_values(column)
            self._known_values[column] = frozenset(v.lower() for v in values if v)  # first: see _filter_notice
            self._lowered_columns[column] = np.array(["" if v is None else v.lower() for v in values], dtype=object)
        return self._lowered_columns[column]


class _LookRows(Mapping):
    """The catalog's look vectors, row by row, computed when asked (no copy of the whole matrix)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def __getitem__(self, position: int) -> np.ndarray:
        return self._catalog.look_part(self._catalog.vectors[position])

    def __len__(self) -> int:
        return len(self._catalog)

    def __iter__(self):
        return iter(range(len(self._catalog)))


def is_milvus_address(spec: str) -> bool:
    """Whether a search spec names a Milvus collection."""
    return spec.strip().lower().startswith(("milvus://", "milvuss://", "milvus-lite://"))


def search_mode(catalog: Catalog, spec: str, settings: Settings) -> str:
    """"exact" or "hnsw": what a local search spec (auto, exact, hnsw, faiss) means for this catalog.

    Raises:
        FashionrecError: an unknown spec.
    """
    mode = {"faiss": "hnsw"}.get(spec.strip().lower(), spec.strip().lower())
    if mode not in ("auto", "exact", "hnsw"):
        raise FashionrecError(
            f"the search must be auto, exact, hnsw (or faiss), or a milvus://, milvuss:// or milvus-lite:// address, "
            f"got {spec!r}")
    if mode == "exact" or len(catalog) == 0 or (mode == "auto" and len(catalog) < settings.ann_threshold):
        return "exact"
    if mode == "auto" and importlib.util.find_spec("faiss") is None:
        log.warning("%d products: approximate search would be faster; pip install 'fashionrec[ann]'", len(catalog))
        return "exact"
    return "hnsw"


def open_search(catalog: Catalog, spec: str, settings: Settings | None = None) -> SearchBackend:
    """The search backend `spec` names for `catalog` (see `Recommender`'s `search`).

    Raises:
        FashionrecError: an unknown spec, hnsw without faiss, or a Milvus collection that cannot serve.
    """
    settings = settings or load_settings()
    if is_milvus_address(spec):
        from fashionrec.scale.milvus import MilvusIndex  # optional: pymilvus is needed only here

        return MilvusIndex.open(spec.strip(), catalog)
    if search_mode(catalog, spec, settings) == "exact":
        return ExactIndex(catalog.vectors)
    from fashionrec.catalog.derived import HNSW_PREFIX, hnsw_path, remove_superseded

    path = hnsw_path(catalog.catalog_dir, catalog.keys)
    index = AnnIndex.build(catalog.vectors, path)
    remove_superseded(catalog.catalog_dir, [path.name], HNSW_PREFIX)
    return index


@dataclass(frozen=True)
class SimilarTable:
    """For every product, its k most similar products: what a storefront precomputes for product pages."""

    ids: list[str]  # the catalog's products, row by row
    similar: list[list[str]]  # similar[i]: ids most like ids[i], nearest first (fewer than k in tiny catalogs,
    # or when more than k + 8 of a product's neighbours are duplicates of one another)
    distances: list[list[float]]  # Euclidean distances between unit vectors, aligned with `similar`

    def rows(self) -> Iterable[tuple[str, int, str, float]]:
        """(product id, rank from 1, similar product id, distance), product by product."""
        for product_id, similar, distances in zip(self.ids, self.similar, self.distances):
            for rank, (other, distance) in enumerate(zip(similar, distances), start=1):
                yield product_id, rank, other, distance


def similar_all(catalog: Catalog, k: int = 10, show_duplicates: bool = False,
                settings: Settings | None = None) -> SimilarTable:
    """"More like this" for every product at once, by blocked matrix products over the whole catalog.

    Same answers as `Recommender.by_id` for each product (never itself; one product per duplicate group unless
    `show_duplicates`), without loading a model.

    Example:
        >>> table = similar_all(Catalog.open("my-catalog"), k=10)
        >>> table.similar[0][:3]
        ['39386', '21379', '11016']
    """
    if k < 1:
        raise FashionrecError(f"k must be at least 1, got {k}")
    settings = settings or load_settings()
    vectors, hashes = catalog.vectors, catalog.content_hashes
    count = len(catalog)
    depth = min(count - 1, k if show_duplicates else 2 * k + 8)
    if depth < 1:
        return SimilarTable(list(catalog.ids), [[] for _ in range(count)], [[] for _ in range(count)])
    found = block_neighbours(vectors, np.arange(count), depth)
    cosine = settings.duplicate_cosine if catalog.whitening else np.inf
    looks = catalog.look_part(vectors) if np.isfinite(cosine) else vectors  # near copies: the untuned part
    similar, distances = [], []
    for row in range(count):
        keep = (np.arange(min(k, depth)) if show_duplicates else
                distinct_rows(found.positions[row], hashes, looks, k, cosine, seen_hashes=[hashes[row]],
                              seen_vectors=looks[row]))
        chosen = found.positions[row, keep]
        similar.append([catalog.ids[p] for p in chosen.tolist()])
        distances.append(np.linalg.norm(vectors[chosen] - vectors[row], axis=1).tolist())  # as exact_search does
    return SimilarTable(list(catalog.ids), similar, distances)
