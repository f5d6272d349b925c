"""`Recommender`: the one object the CLI, the REST API and the web app all use."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from PIL import Image

from fashionrec.catalog.catalog import Catalog
from fashionrec.catalog.identity import require_model
from fashionrec.config import QUERY_BATCH, Settings, load_settings
from fashionrec.errors import ModelMismatchError
from fashionrec.imaging.decode import ImageSource
from fashionrec.models.embed import Embedder, load_model
from fashionrec.models.shared_runs import SharedRuns
from fashionrec.recommend.answers import DEFAULT_K, Recommendations
from fashionrec.recommend.filters import Filters
from fashionrec.recommend.view import View
from fashionrec.search.backend import SearchBackend
from fashionrec.search.compact import CompactIndex, PatchedIndex
from fashionrec.search.exact import ExactIndex
from fashionrec.search.select import (
    can_patch,
    exact_stand_in,
    hnsw_is_current,
    ivf_is_current,
    open_hnsw,
    open_ivf,
    open_local,
    patch_ivf,
    search_kind,
)

log = logging.getLogger(__name__)


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
        to the catalog's size and JPEG look before embedding them (see `imaging.look.match_catalog_look`).

        `search` (default from settings: auto) picks the index: `exact`; `ivf` or `compact` (FAISS IVF over 4-bit
        codes, 8-bit below 100,000 products, the exact floats read from disk: little memory, `search.compact`);
        `hnsw` or `faiss` (FAISS HNSW); both built once and kept in the catalog folder; `auto` (ivf from
        `ann_threshold` products when faiss is installed); a Milvus collection the catalog was pushed to
        (`milvus://HOST:PORT/COLLECTION`, `milvuss://...` for TLS, `milvus-lite:///path/file.db`); or a ready
        `SearchBackend` (which cannot follow the catalog).

        Raises:
            ModelMismatchError: the embedder is not the model the catalog was built with.
            FashionrecError: an unknown index, hnsw without faiss, or a Milvus collection that does not hold
                this catalog's current vectors.
        """
        self.embedder = embedder or load_model(catalog.model_name, catalog.weights_path, settings)
        require_model(catalog.catalog_dir, catalog.model_id, self.embedder.model_id)
        self._settings = settings or load_settings()
        self._matching = self._settings.match_queries if match_queries is None else match_queries
        self._search = search or self._settings.search
        backend = search if not isinstance(search, (str, type(None))) else open_search(
            catalog, self._search, self._settings)
        self._view = View(catalog, self.embedder, backend, self._settings, self._matching)
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._building = False
        self._stand_in: SearchBackend | None = None  # what serves until a background build ends (refresh sets it)
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self._retry_at = 0.0
        self._failures = 0

    def share_model_runs(self, max_batch: int = QUERY_BATCH) -> None:
        """Let concurrent queries share model runs (`models.shared_runs.SharedRuns`): what a server does, whose
        requests each run on a thread. Answers are the same; a lone query is not slowed."""
        with self._lock:
            if not isinstance(self.embedder, SharedRuns):
                self.embedder = SharedRuns(self.embedder, max_batch)
                self._view.embedder = self.embedder

    @property
    def catalog(self) -> Catalog:
        """The snapshot of the catalog this recommender answers from now."""
        return self._view.catalog

    @property
    def _backend(self) -> SearchBackend:
        return self._view.backend

    @property
    def search_in_use(self) -> str:
        """The search in use: exact, ivf, hnsw or milvus (`search.select` chose it)."""
        return self._view.backend.name

    @property
    def index(self) -> str:
        """Deprecated (fashionrec 0.1): `search_in_use`. "Index" now names only an indexing run."""
        return self.search_in_use

    def by_image(self, image: ImageSource, k: int = DEFAULT_K, where: Filters | None = None,
                 show_duplicates: bool = False, colour_weight: float | None = None, region: str | None = None,
                 regions: bool = True) -> Recommendations:
        """The `k` products that look most like `image` (a path, the file's bytes, or a PIL image).

        Duplicate images (exact copies, or vectors closer than the `duplicate_cosine` setting) come back
        once, as their nearest product, unless `show_duplicates`.

        `colour_weight` (0-1, default from settings) says how much the product's colour counts beside its shape:
        0 ranks by shape alone, 1 is the strongest colour setting offered (`recommend.query.colour_gain`).

        A photo of a person wearing garments (skin seen, and a garment kind: top, bottom, dress, shoes, bag) is
        answered per garment: `regions` of the answer hold each garment's box and answers, and `results` are those
        of `region` (a kind), by default of the most probable garment. A packshot, or the shop's own photo of a
        product, is answered whole, as is every photo when `regions` is False or the model cannot locate garments
        (resnet50). At most 1 + `REGION_LIMIT` images go through the model, in two calls.

        Raises:
            ImageError: the image cannot be used.
            CatalogError: the catalog is empty. FilterError: a filter names an unknown column.
            FashionrecError: a colour weight outside 0-1, or an unknown `region`.
        """
        return self._view.by_image(image, k, where, show_duplicates, colour_weight, region, regions)

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
        write). An HNSW-served one answers exactly until the new graph is built (in the background); one served by
        the compact index answers from the earlier index, patched with what changed, until its own is built
        (exactly, when the search space itself changed).

        Raises:
            FashionrecError: the new snapshot cannot be served (e.g. another model); the current one stays.
        """
        with self._lock:
            view = self._view
            directory = view.catalog.catalog_dir
            if self._stop.is_set() or Catalog.generation_of(directory) == view.catalog.generation:
                return False  # closed: nothing is opened or swapped in any more
            catalog = Catalog.open(directory)
            if catalog.model_id != view.catalog.model_id:
                raise ModelMismatchError(f"the catalog {directory} now holds {catalog.model_id} vectors; restart the "
                                         "server to serve them")
            if catalog.generation == view.catalog.generation:
                return False
            catalog.follow_from(view.catalog)
            backend = self._next_backend(catalog, view)
            if self._stop.is_set():  # closed while this refresh ran (it outlived close()'s wait): never swapped in
                if backend is not view.backend and backend.name != "milvus":  # Milvus: the served one's connection
                    getattr(backend, "close", lambda: None)()
                return False
            self._view = View(catalog, self.embedder, backend, self._settings, self._matching)
        log.info("now serving generation %d of %s (%d products)", catalog.generation, directory, len(catalog))
        return True

    def _next_backend(self, catalog: Catalog, view: View) -> SearchBackend:
        """The backend for a new snapshot, built from what the current one holds where it can. Lock held; the stand-in
        it may return (`_stand_in`) is recorded only once made (making one can fail: the catalog moved on again)."""
        if (isinstance(self._search, str) and view.backend.name in ("hnsw", "ivf")
                and view.backend.name == search_kind(catalog, self._search, self._settings)
                and catalog.keys.search == view.catalog.keys.search):
            return view.backend  # the same vectors in the same rows (a metadata change): what serves goes on serving
        backend, build = self._backend_for(catalog, view)
        self._stand_in = backend if build is not None else None
        if build is not None:
            self._build_later(build)
        return backend

    def _backend_for(self, catalog: Catalog, view: View) -> tuple[SearchBackend, Callable | None]:
        """(the backend for a new snapshot, and the build its own index needs when that backend only stands in)."""
        if not isinstance(self._search, str):
            return (view.backend if getattr(view.backend, "name", "") != "exact" else ExactIndex(catalog.vectors)), None
        kind = search_kind(catalog, self._search, self._settings)
        if kind == "milvus":
            from fashionrec.scale.milvus import push

            push(catalog, self._search)  # only what changed since the copy's generation; raises if unreachable
            return view.backend.for_catalog(catalog), None
        if kind == "hnsw" and not hnsw_is_current(catalog):
            # exact (slower, never wrong) until the new graph is ready
            return ExactIndex(catalog.vectors), lambda snapshot, _stand_in: open_hnsw(snapshot)
        if kind == "ivf" and not ivf_is_current(catalog):
            # The earlier index, patched with what changed, until this snapshot's own is built; exact search when
            # the earlier one holds vectors of another space (a refit, a first whitening or colour backfill), carried
            # on from the exact stand-in already serving where there is one.
            if isinstance(view.backend, (CompactIndex, PatchedIndex)) and can_patch(catalog, view.catalog):
                return patch_ivf(catalog, view.backend, view.catalog), open_ivf
            previous = view.backend if view.backend is self._stand_in else None
            return exact_stand_in(catalog, previous, view.catalog), open_ivf
        return open_local(catalog, kind), None

    def _build_later(self, build: Callable[[Catalog, SearchBackend], SearchBackend]) -> None:
        """Build the index of the snapshot a stand-in serves, in the background (one build at a time); the running
        build goes on with the newest snapshot when it ends."""
        with self._build_lock:
            if self._building:
                return
            self._building = True
        threading.Thread(target=self._build_index, args=(build,), daemon=True, name="fashionrec-index-build").start()

    def _build_index(self, build: Callable[[Catalog, SearchBackend], SearchBackend]) -> None:
        try:
            while self._build_one(build):
                pass
        except BaseException:
            with self._build_lock:
                self._building = False  # whatever happened: a later refresh can start a build again
            raise

    def _build_one(self, build: Callable[[Catalog, SearchBackend], SearchBackend]) -> bool:
        """Build the index of the snapshot a stand-in serves now, from the stand-in's own vectors
        (`search.select.open_ivf`), and serve it (`_serve_built`); returns whether a newer snapshot's stand-in waits
        for a build next. Ends the builds when no stand-in serves (taken under both locks, as refresh takes them, so
        that a refresh never leaves a stand-in with no build coming)."""
        with self._lock, self._build_lock:
            catalog, stand_in = self._view.catalog, self._stand_in
            if self._view.backend is not stand_in or self._stop.is_set():
                self._building = False
                return False
        try:
            backend = build(catalog, stand_in)
        except Exception as exc:  # noqa: BLE001 - any failure (faiss raises RuntimeError) leaves the stand-in
            log.warning("the search index of generation %d was not built: %s", catalog.generation, exc)
            backend = None
        with self._lock, self._build_lock:
            waiting = self._view.backend is self._stand_in and not self._stop.is_set()
            if backend is not None and not (waiting and self._serve_built(catalog, backend)):
                getattr(backend, "close", lambda: None)()  # built for nothing (closed, overtaken): its file shut now
            # Next: a newer snapshot still served by a stand-in (the catalog moved on while this one was built).
            more = self._view.catalog is not catalog and self._view.backend is self._stand_in
            if not more:
                self._building = False
            return more

    def _serve_built(self, catalog: Catalog, backend: SearchBackend) -> bool:
        """Serve a finished index: for its own snapshot, if that is still the one served; else for the newest, patched
        with what changed since (a compact index of the same search space; the changed rows from the stand-in that
        serves the newest), so that a catalog written faster than an index builds moves its patch forward instead of
        piling every write onto the first one. Returns whether it serves. Both locks held."""
        newest = self._view.catalog
        if newest.keys.search != catalog.keys.search:
            if not (isinstance(backend, CompactIndex) and can_patch(newest, catalog)):
                return False
            try:
                backend = self._stand_in = patch_ivf(newest, backend, catalog, self._stand_in.rows)
            except Exception as exc:  # noqa: BLE001 - the build thread must go on: the next build serves the newest
                log.warning("could not serve the newest snapshot from the index just built: %s", exc)
                return False
        else:
            self._stand_in = None  # served by its own index now: the stand-in (maybe every float) can go
        self._view = View(newest, self.embedder, backend, self._settings, self._matching)
        return True

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
        with self._lock:  # a build ending now sees the stop under this lock: nothing is swapped in after this
            backend = self._view.backend
        getattr(backend, "close", lambda: None)()


def open_search(catalog: Catalog, spec: str, settings: Settings | None = None) -> SearchBackend:
    """The search backend `spec` names for `catalog` (see `Recommender`'s `search`; `search.select` decides).

    Raises:
        FashionrecError: an unknown spec, hnsw without faiss, or a Milvus collection that cannot serve.
    """
    kind = search_kind(catalog, spec, settings or load_settings())
    if kind == "milvus":
        from fashionrec.scale.milvus import MilvusIndex  # optional: pymilvus is needed only here

        return MilvusIndex.open(spec.strip(), catalog)
    return open_local(catalog, kind)
