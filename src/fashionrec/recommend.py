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
from dataclasses import dataclass, field, replace
from typing import Any, Union

import numpy as np
from PIL import Image

from fashionrec.catalog import Catalog
from fashionrec.colour import describe as describe_colour
from fashionrec.config import COLOUR_FULL, Settings, load_settings
from fashionrec.embed import Embedder, load_model
from fashionrec.errors import CatalogError, FashionrecError, FilterError, ModelMismatchError
from fashionrec.images import ImageSource, PixelLimits, match_catalog_look, open_image
from fashionrec.search import (AnnIndex, ExactIndex, Neighbours, Restriction, SearchBackend, block_neighbours,
                               distinct_rows, exact_search)

log = logging.getLogger(__name__)

DEFAULT_K = 5
VALUES_NAMED = 30  # a notice names at most this many of a column's values
SIMILARITY_MEANING = ("similarity: how alike two products look, from -1 to 1 (the CLI and the web app show it as a "
                      "percentage: 100% is the same image): the cosine of their shape vectors in the catalog's search "
                      "space, and with a colour weight w the weighted mean (shape + w * colour) / (1 + w) of that and "
                      "the cosine of their colour vectors; it ranks products, it is not a probability")
"""What the one figure the CLI, the API and the web app show for a match means (they all show `Match.similarity`)."""
Filters = Mapping[str, Union[str, Sequence[str]]]
"""Metadata filters: {column: value or values}. Values of one column are OR-ed, columns AND-ed;
matching ignores case."""


@dataclass(frozen=True)
class Match:
    """One recommended product."""

    id: str
    distance: float  # Euclidean distance between the query and the product's search vector (what search ranks by)
    image: str  # path of the product's image file
    metadata: dict[str, str | None]
    similarity: float  # the figure every face shows (see SIMILARITY_MEANING): 1 = identical
    colours: list[dict] = field(default_factory=list)  # dominant colours [{"rgb": "#a31f2b", "share": 0.62}, ...]


def similarity_scores(query: np.ndarray, vectors: np.ndarray, weight: float) -> np.ndarray:
    """The similarity (SIMILARITY_MEANING) of search vectors to a query [shape; w * colour]: their inner product over
    1 + w, so that the same image scores 1 at any weight and w = 0 gives the shape cosine."""
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.float32)
    return (np.asarray(vectors, dtype=np.float32) @ np.asarray(query, dtype=np.float32)) / (1.0 + weight)


@dataclass(frozen=True)
class Recommendations:
    """The answer to one query: the model that produced it and the matches, nearest first."""

    model: str
    results: list[Match]
    notice: str | None = None  # set when a filter matched nothing: which one, and the values there are
    colour_weight: float = 0.0  # how much colour counted (0-1; see `Recommender.by_image`)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by the CLI (`--json`) and the REST API: each match's figure is `similarity`."""
        results = [{"id": m.id, "similarity": m.similarity, "image": m.image, "metadata": m.metadata,
                    "colours": m.colours} for m in self.results]
        return {"model": self.model, "colour_weight": self.colour_weight, "results": results, "notice": self.notice}


def colour_strength(colour_weight: float | None, settings: Settings) -> tuple[float, float]:
    """(the weight asked, 0-1; the raw weight w it means: COLOUR_FULL at 1). None means the default setting.

    Raises:
        FashionrecError: not a number from 0 to 1.
    """
    weight = settings.colour_weight if colour_weight is None else colour_weight
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating)) or not 0 <= weight <= 1:
        raise FashionrecError(f"the colour weight must be a number from 0 (shape only) to 1 (colour counts most), "
                              f"got {colour_weight!r}")
    return float(weight), float(weight) * COLOUR_FULL


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
                 show_duplicates: bool = False, colour_weight: float | None = None) -> Recommendations:
        """The `k` products that look most like `image` (a path, the file's bytes, or a PIL image).

        Duplicate images (exact copies, or vectors closer than the `duplicate_cosine` setting) come back
        once, as their nearest product, unless `show_duplicates`.

        `colour_weight` (0-1, default from settings) says how much the product's colour counts beside its shape:
        0 ranks by shape alone, 1 is the strongest colour setting offered (`config.COLOUR_FULL`).

        Raises:
            ImageError: the image cannot be used.
            CatalogError: the catalog is empty. FilterError: a filter names an unknown column.
            FashionrecError: a colour weight outside 0-1.
        """
        return self._view.by_image(image, k, where, show_duplicates, colour_weight)

    def by_id(self, product_id: str, k: int = DEFAULT_K, where: Filters | None = None,
              show_duplicates: bool = False, colour_weight: float | None = None) -> Recommendations:
        """The `k` products most like catalog product `product_id`, never the product itself.

        Unless `show_duplicates`, copies of the product's image are left out too, and duplicates among
        the results come back once (see `by_image`, also for `colour_weight`).

        Raises:
            ProductNotFoundError: the id is not in the catalog.
        """
        return self._view.by_id(product_id, k, where, show_duplicates, colour_weight)

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
        self._settings = settings
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
                 show_duplicates: bool = False, colour_weight: float | None = None) -> Recommendations:
        """See `Recommender.by_image`."""
        self._check(k)
        asked, weight = colour_strength(colour_weight, self._settings)
        decoded = self._decode(image)
        matched = match_catalog_look(decoded, self._query_size) if self._query_size else decoded
        model_vector = self.embedder.embed_image(matched)
        histogram = describe_colour(decoded).histogram if self.catalog.has_colour else None
        search_vector = self.catalog.search_vectors(model_vector[None], None if histogram is None else histogram[None])
        query = self.catalog.query_vector(search_vector[0], weight)
        allowed = self._allowed(where, exclude=None)
        found = self._answer(query, k, allowed, None if show_duplicates else (), weight)
        return replace(found, notice=self._filter_notice(where, allowed), colour_weight=asked)

    def _decode(self, image: ImageSource) -> Image.Image:
        """The query photo decoded, upright, RGB (an upload: the upload pixel limits apply)."""
        prep = self.embedder.spec.preprocessing
        return open_image(image, self._query_limits, draft_size=prep.draft_size)

    def query_image(self, image: ImageSource) -> Image.Image:
        """The query as the model will see it: decoded, upright, RGB, matched to the catalog's look.

        Raises:
            ImageError: the image cannot be used.
        """
        decoded = self._decode(image)
        return match_catalog_look(decoded, self._query_size) if self._query_size else decoded

    def by_id(self, product_id: str, k: int = DEFAULT_K, where: Filters | None = None,
              show_duplicates: bool = False, colour_weight: float | None = None) -> Recommendations:
        """See `Recommender.by_id`."""
        self._check(k)
        asked, weight = colour_strength(colour_weight, self._settings)
        position = self.catalog.position(str(product_id))
        allowed = self._allowed(where, exclude=position)
        query = self.catalog.query_vector(self.backend.vector(position), weight)
        found = self._answer(query, k, allowed, None if show_duplicates else (position,), weight)
        return replace(found, notice=self._filter_notice(where, allowed), colour_weight=asked)

    def _check(self, k: int) -> None:
        """Refuse a k below 1 and an empty catalog, with messages a user can act on."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise FashionrecError(f"k must be a whole number of at least 1, got {k!r}")
        if len(self.catalog) == 0:
            raise CatalogError(f"the catalog {self.catalog.catalog_dir} is empty: index some images first")

    def _answer(self, query: np.ndarray, k: int, allowed: Restriction,
                seen: tuple[int, ...] | None, weight: float) -> Recommendations:
        """Search and turn rows into `Match`es; `seen`: None keeps duplicates, else rows already 'shown'."""
        found = self._search(query, k, allowed) if seen is None else self._distinct(query, k, allowed, seen)
        if found.vectors is not None:
            vectors = found.vectors
        elif len(found.positions):
            vectors = self.catalog.vectors[found.positions]
        else:  # nothing found: never read the catalog's vectors for it (a server searching Milvus has none loaded)
            vectors = np.zeros((0, query.shape[-1]), dtype=np.float32)
        similarities = similarity_scores(query, vectors, weight if self.catalog.has_colour else 0.0)
        results = [
            Match(
                id=self.catalog.ids[position],
                distance=float(distance),
                image=str(self.catalog.image_path_at(position)),
                metadata=dict(self.catalog.metadata_at(position)),
                similarity=float(similarity),
                colours=self.catalog.swatches_at(position),
            )
            for position, distance, similarity in zip(found.positions.tolist(), found.distances.tolist(),
                                                      similarities.tolist())
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
                kept_vectors = found.vectors[keep] if found.vectors is not None else None
                return Neighbours(found.positions[keep], found.distances[keep], kept_vectors)

    def _vectors_of(self, found: Neighbours) -> Mapping[int, np.ndarray] | np.ndarray:
        """The found rows' look vectors (`Catalog.look_part`) for near-duplicate checks: from the vectors the backend
        returned, else from the catalog's (read only when near copies are looked for at all)."""
        if found.vectors is not None:
            return dict(zip(found.positions.tolist(), self.catalog.look_part(found.vectors)))
        if not np.isfinite(self._duplicate_cosine):
            return {}
        plain = self.catalog.tuning is None and not self.catalog.colour_dim  # search vectors are look vectors
        return self.catalog.vectors if plain else _LookRows(self.catalog)

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
    similarities: list[list[float]]  # `Match.similarity` of each, aligned with `similar`

    def rows(self) -> Iterable[tuple[str, int, str, float]]:
        """(product id, rank from 1, similar product id, similarity), product by product."""
        for product_id, similar, similarities in zip(self.ids, self.similar, self.similarities):
            for rank, (other, similarity) in enumerate(zip(similar, similarities), start=1):
                yield product_id, rank, other, similarity


def similar_all(catalog: Catalog, k: int = 10, show_duplicates: bool = False,
                settings: Settings | None = None, colour_weight: float | None = None) -> SimilarTable:
    """"More like this" for every product at once, by blocked matrix products over the whole catalog.

    Same answers as `Recommender.by_id` for each product (never itself; one product per duplicate group unless
    `show_duplicates`; `colour_weight` as there), without loading a model.

    Example:
        >>> table = similar_all(Catalog.open("my-catalog"), k=10)
        >>> table.similar[0][:3]
        ['39386', '21379', '11016']
    """
    if k < 1:
        raise FashionrecError(f"k must be at least 1, got {k}")
    settings = settings or load_settings()
    _, weight = colour_strength(colour_weight, settings)
    weight = weight if catalog.has_colour else 0.0
    vectors, hashes = catalog.vectors, catalog.content_hashes
    count = len(catalog)
    depth = min(count - 1, k if show_duplicates else 2 * k + 8)
    if depth < 1:
        return SimilarTable(list(catalog.ids), [[] for _ in range(count)], [[] for _ in range(count)])
    found = block_neighbours(vectors, np.arange(count), depth, as_query=lambda rows: catalog.query_vector(rows, weight))
    cosine = settings.duplicate_cosine if catalog.whitening else np.inf
    looks = catalog.look_part(vectors) if np.isfinite(cosine) else vectors  # near copies: the untuned part
    similar, similarities = [], []
    for row in range(count):
        keep = (np.arange(min(k, depth)) if show_duplicates else
                distinct_rows(found.positions[row], hashes, looks, k, cosine, seen_hashes=[hashes[row]],
                              seen_vectors=looks[row]))
        chosen = found.positions[row, keep]
        similar.append([catalog.ids[p] for p in chosen.tolist()])
        similarities.append(similarity_scores(catalog.query_vector(vectors[row], weight), vectors[chosen], weight).tolist())
    return SimilarTable(list(catalog.ids), similar, similarities)
