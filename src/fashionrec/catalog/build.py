"""Build or update a catalog from a folder of images: scan -> plan -> read -> embed -> write.

Each stage is small: `scan_images` lists files, `plan_update` compares them with the catalog (so a
rerun only embeds new or changed files), `read_image` hashes and decodes one file, an `Engine` runs
reader -> embedder over the files to index (`LocalEngine`: a thread pool of readers overlapping inference in
this process; `fashionrec.scale.ray_engine.RayEngine`: Ray Data on a cluster), and `index_images` writes what
the engine hands back, committing one transaction per batch so an interrupted run resumes where it stopped.

A catalog may take products from several folders. Removing products is explicit, as `rsync --delete` is: a
run removes products only with `prune`, and then only products of the folder it indexes whose files are gone.
A run that finds nothing readable changes nothing: every write waits until the first image has been read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TextIO, TypeVar

import numpy as np
from tqdm import tqdm

from fashionrec.catalog.derived import (SPACE_PREFIX, SearchSpace, drift, load_space, products_digest,
                                       remove_superseded, save_space, space_path)
from fashionrec.catalog.metadata import MetadataTable, read_metadata
from fashionrec.catalog.store import DB_NAME, SPACE_KEY, CatalogStore, FileStamp, ProductRow, SkippedFile, StoredProduct
from fashionrec.catalog.whitening import fit_whitening, whitening_dim
from fashionrec.config import Settings, load_settings
from fashionrec.embed import Embedder, load_model
from fashionrec.errors import CatalogError, ImageError, ModelMismatchError
from fashionrec.colour import ColourDescriptor
from fashionrec.colour import describe as describe_colour
from fashionrec.images import (Preprocessing, is_image_file, open_image, preprocess, read_image_bytes,
                               refused_file_reason, typical_size)
from fashionrec.models import outdated_model

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
LOG_PROGRESS_STEP = 0.1  # without a terminal, a progress line for each tenth of the run...
LOG_PROGRESS_SECONDS = 30.0  # ...or after this long without one, whichever comes first


@dataclass(frozen=True)
class ImageFile:
    """A product photo found on disk: its product id (the file name's stem) and its stamp."""

    product_id: str
    stamp: FileStamp


@dataclass(frozen=True)
class UpdatePlan:
    """What a run must do, decided from file stamps alone (no image is read to plan)."""

    todo: list[ImageFile]  # new files, or files whose size or mtime changed (the hash decides)
    unchanged: list[str]  # product ids whose file has the stamp the catalog recorded
    gone: list[str]  # products of this folder whose file is gone (removed only when pruning)
    still_skipped: list[SkippedFile]  # failed before and unchanged since: not retried
    forgotten_skips: list[str]  # skipped-file records of this folder whose file is gone
    conflicts: list[SkippedFile]  # files whose product id belongs to a file of another folder that still exists


@dataclass(frozen=True)
class IndexReport:
    """The outcome of one indexing run."""

    catalog_dir: Path
    model: str
    model_id: str
    images_found: int
    embedded: int  # images decoded and embedded in this run
    unchanged: int  # already in the catalog (same stamp or same content hash)
    removed: int  # products of this folder dropped because their file is gone (only with prune)
    gone_kept: int  # products of this folder whose file is gone, kept because the run did not prune
    skipped: tuple[SkippedFile, ...]  # files that could not be indexed, with the reason
    products: int  # products in the catalog after the run
    images_without_metadata: int | None  # None when no metadata file was used
    metadata_without_image: int | None
    seconds: float  # the whole run, model loading and scanning included
    outdated: int  # products embedded by an older build of the model: dropped, and embedded again if their file is here
    space: SpaceUpdate | None = None  # what happened to the search space
    pipeline_seconds: float = 0.0  # the read -> embed -> write pipeline alone (what grows with the images)
    engine: str = "local"  # what ran reader -> embedder: local (this process) or ray
    coloured: int = 0  # products indexed before their colour existed (or of an older version) given it now

    @property
    def images_per_second(self) -> float:
        """Embedded images per second of the whole run (0 when nothing was embedded)."""
        return self.embedded / self.seconds if self.embedded and self.seconds > 0 else 0.0

    @property
    def pipeline_images_per_second(self) -> float:
        """Embedded images per second of the pipeline once running: decode, preprocess, inference, store."""
        return self.embedded / self.pipeline_seconds if self.embedded and self.pipeline_seconds > 0 else 0.0


@dataclass(frozen=True)
class ReadResult:
    """One file after the reader: decoded input, or the reason it failed, or 'same content as before'."""

    file: ImageFile
    sha256: str = ""
    pixels: np.ndarray | None = None
    error: str | None = None
    colour: ColourDescriptor | None = None


@dataclass(frozen=True)
class EmbeddedBatch:
    """What an engine hands the writer for one batch, in the order of the files it was given."""

    embedded: list[tuple[ImageFile, str, np.ndarray, ColourDescriptor | None]]  # (file, content sha256, unit vector,
    # colour: None when the engine did not compute it, and the run's colour backfill does)
    restamped: list[tuple[str, FileStamp]]  # same content as the catalog holds: only the stamp changes
    failed: list[SkippedFile]  # could not be read or decoded, with the reason


class Engine(Protocol):
    """Runs reader -> embedder over the files to index and hands back batches for the writer.

    The writer stays in the calling process (one SQLite writer, one transaction per batch), so every engine
    gets the same incremental, resumable catalog; only where reading and inference happen differs.
    """

    name: str

    def run(self, todo: list[ImageFile], known: dict[str, FileStamp], embedder: Embedder, images_dir: Path,
            batch_size: int) -> Iterator[EmbeddedBatch]:
        """Embed `todo` (files of `images_dir`; `known`: what the catalog holds) in batches of `batch_size`."""
        ...


@dataclass(frozen=True)
class LocalEngine:
    """In this process: `workers` reader threads decode ahead of the one ONNX Runtime session."""

    workers: int = 4
    name: str = "local"

    def run(self, todo: list[ImageFile], known: dict[str, FileStamp], embedder: Embedder, images_dir: Path,
            batch_size: int) -> Iterator[EmbeddedBatch]:
        """See `Engine.run`."""
        prep, max_pixels = embedder.spec.preprocessing, embedder.max_pixels

        def reader(file: ImageFile) -> ReadResult:
            before = known.get(file.product_id)
            return read_image(file, images_dir, prep, max_pixels, before.sha256 if before else None)

        window = max(4 * batch_size, 64)  # read-ahead: the readers never leave the model waiting
        for ready, restamped, failed in group_results(ordered_map(reader, todo, self.workers, window), batch_size):
            vectors = embedder.embed_batch(np.stack([r.pixels for r in ready])) if ready else []
            yield EmbeddedBatch([(r.file, r.sha256, v, r.colour) for r, v in zip(ready, vectors)], restamped, failed)


def scan_images(images_dir: Path) -> tuple[list[ImageFile], list[SkippedFile]]:
    """Every image file under `images_dir` (recursively), in natural path order, with its stamp.

    The product id is the file name without its suffix (`images/15970.jpg` -> "15970"); a second
    file with an id already taken is reported as skipped, never silently merged; so is a file of an image
    format fashionrec does not read (.tif, .psd, .heic, ...), with the way out.
    """
    files: list[ImageFile] = []
    skipped: list[SkippedFile] = []
    owner: dict[str, str] = {}
    for root, dirs, names in os.walk(images_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            if not is_image_file(path):
                refused = refused_file_reason(path)  # a .tif, .psd, .heic...: reported with the way out
                if refused is not None:
                    skipped.append(SkippedFile(path.relative_to(images_dir).as_posix(), refused))
                continue
            relative = path.relative_to(images_dir).as_posix()
            try:
                stat = path.stat()
            except OSError as exc:
                skipped.append(SkippedFile(relative, f"cannot read the file: {exc.strerror or exc}"))
                continue
            product_id = path.stem
            if product_id in owner:
                skipped.append(SkippedFile(relative, f"product id {product_id!r} is already used by {owner[product_id]}",
                                           stat.st_size, stat.st_mtime_ns))
                continue
            owner[product_id] = relative
            files.append(ImageFile(product_id, FileStamp(relative, stat.st_size, stat.st_mtime_ns)))
    files.sort(key=lambda f: natural_key(f.stamp.path))
    return files, skipped


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders numbers by value: "2.jpg" < "10.jpg" (so --limit takes the lowest ids)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


def plan_update(
    files: list[ImageFile],
    folder: str,
    products: dict[str, StoredProduct],
    skipped: dict[str, SkippedFile],
    limit: int | None = None,
) -> UpdatePlan:
    """Compare the files of `folder` with the catalog: what to embed, keep, leave skipped, or (if pruning) drop.

    A file whose product id belongs to another folder's file takes the product over when that file is gone (a
    folder that was moved) or holds the same picture (a copy); a different picture under that id is reported as a
    conflict (such files are hashed here: the only files read while planning). `limit` restricts the files
    considered for indexing to the first `limit` (in natural path order); it never makes a product count as gone.
    """
    present_ids = {f.product_id for f in files}
    present_paths = {f.stamp.path for f in files}
    plan = UpdatePlan(
        todo=[], unchanged=[],
        gone=[i for i, product in products.items() if product.folder == folder and i not in present_ids],
        still_skipped=[], forgotten_skips=[path for path in skipped if path not in present_paths], conflicts=[],
    )
    for file in files[:limit] if limit is not None else files:
        stamp, before = file.stamp, products.get(file.product_id)
        failed = skipped.get(stamp.path)
        if before and before.folder != folder:
            other = Path(before.folder) / before.stamp.path
            if other.exists() and _content_hash(Path(folder) / stamp.path) != before.stamp.sha256:
                plan.conflicts.append(SkippedFile(stamp.path, (
                    f"product id {file.product_id!r} is already in the catalog from {other}, with another picture; "
                    f"rename this file, or remove that one and index its folder with --prune"),
                    stamp.size, stamp.mtime_ns))
            else:  # moved or copied here with the same picture: the product follows it (no embedding if unchanged)
                plan.todo.append(file)
        elif before and (before.stamp.path, before.stamp.size, before.stamp.mtime_ns) == (
                stamp.path, stamp.size, stamp.mtime_ns):
            plan.unchanged.append(file.product_id)
        elif before is None and failed and (failed.size, failed.mtime_ns) == (stamp.size, stamp.mtime_ns):
            plan.still_skipped.append(failed)
        else:
            plan.todo.append(file)
    return plan


def _content_hash(path: Path) -> str:
    """sha256 of a file's bytes ("" when it cannot be read: the reader reports why)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def read_image(
    file: ImageFile, images_dir: Path, prep: Preprocessing, max_pixels: int, known_sha256: str | None = None
) -> ReadResult:
    """Read, hash and decode one file; never raises for a bad file (the error is in the result).

    `known_sha256` is the content hash the catalog holds for this product, if any: a file with that content
    again (touched, not changed) is not decoded, and keeps its vector.
    """
    try:
        data = read_image_bytes(images_dir / file.stamp.path)
    except ImageError as exc:
        return ReadResult(file, error=str(exc))
    sha256 = hashlib.sha256(data).hexdigest()
    if known_sha256 == sha256:
        return ReadResult(file, sha256=sha256)  # touched, not changed: keep the vector
    try:
        image = open_image(data, max_pixels, draft_size=prep.draft_size)
        return ReadResult(file, sha256=sha256, pixels=preprocess(image, prep), colour=describe_colour(image))
    except ImageError as exc:
        return ReadResult(file, sha256=sha256, error=str(exc))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int) -> Iterator[R]:
    """`map(fn, items)` on a thread pool, in order, with at most `window` results in flight.

    The window bounds memory: decoded images never pile up faster than the model consumes them.
    """
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fashionrec-read") as pool:
        pending = deque(pool.submit(fn, item) for _, item in zip(range(window), iterator))
        while pending:
            result = pending.popleft().result()
            for item in iterator:
                pending.append(pool.submit(fn, item))
                break
            yield result


def index_images(
    images_dir: str | os.PathLike,
    catalog_dir: str | os.PathLike,
    *,
    metadata: str | os.PathLike | None = None,
    model: str | None = None,
    weights: str | os.PathLike | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    prune: bool = False,
    progress: bool = True,
    settings: Settings | None = None,
    engine: Engine | None = None,
) -> IndexReport:
    """Index a folder of product images into a catalog, or bring the catalog's products of that folder up to date.

    Args:
        images_dir: folder of images named `<product id>.<ext>` (searched recursively).
        catalog_dir: the catalog folder; created if missing. It may hold products of other folders too.
        metadata: a styles.csv-like file with an `id` column; remembered for later runs.
        model: backbone for a new catalog (default from settings); must match an existing catalog's.
        weights: a weights file instead of the standard one (resnet50: a Keras .h5).
        batch_size: images per inference call (default from settings).
        limit: index at most the first `limit` images (natural order: 2.jpg before 10.jpg).
        prune: remove the products of this folder whose files are gone (without it they are kept, and counted).
        progress: show progress on stderr: a bar (images/s, ETA) on a terminal, else a plain line per tenth of
            the run or per 30 s (a log, CI, a pipe).
        settings: defaults to `load_settings()`.
        engine: what runs reader -> embedder (default: `LocalEngine`, in this process); the catalog is the
            same whichever runs it.

    Returns:
        An `IndexReport`: counts, skipped files with reasons, images/s.

    Raises:
        CatalogError: the images folder is missing, holds no photo, or none of its photos can be read (then
            nothing is changed); or the catalog cannot be written.
        ModelMismatchError: the catalog holds vectors of another model.
        MetadataError, ModelError, WeightsNotFoundError: as their names say.

    Example:
        >>> report = index_images("images/", "my-catalog", metadata="styles.csv")
        >>> report.products
        7254
    """
    settings = settings or load_settings()
    started = time.perf_counter()
    images_dir = _existing_dir(images_dir)
    if limit is not None and limit < 0:
        raise CatalogError(f"--limit must be 0 or more, got {limit}")
    files, scan_skips = scan_images(images_dir)
    if not files:
        raise CatalogError(_nothing_readable(images_dir, scan_skips, "holds no product photo"))
    catalog_dir = Path(catalog_dir).expanduser()
    created = not (catalog_dir / DB_NAME).is_file()
    try:
        with CatalogStore(catalog_dir, create=True) as store:
            run = _IndexRun.prepare(store, images_dir, files, metadata, model, weights, limit, prune, settings)
            pipeline_started = time.perf_counter()
            engine = engine or LocalEngine(settings.decode_workers)
            batches = engine.run(run.plan.todo, run.known, run.embedder, images_dir,
                                 batch_size or settings.batch_size)
            embedded, restamped, new_skips = run.write(batches, progress)
            pipeline_seconds = time.perf_counter() - pipeline_started
            if not run.started:
                raise CatalogError(_nothing_readable(images_dir, scan_skips + run.plan.conflicts + new_skips
                                                     + run.plan.still_skipped, "has no photo fashionrec can read"))
            store.set_info(_typical_size_info(store))
            coloured = backfill_colours(store, settings.decode_workers, settings.max_image_pixels,
                                        run.embedder.spec.preprocessing.draft_size)
            space = refresh_space(store, settings.whiten_dim, drift_limit=settings.refit_drift)
            products = store.count()
    except BaseException:
        if created:
            _remove_new_catalog(catalog_dir)
        raise
    plan, table = run.plan, run.table
    ids_on_disk = {f.product_id for f in files}
    return IndexReport(
        catalog_dir=catalog_dir,
        model=run.embedder.name,
        model_id=run.embedder.model_id,
        images_found=len(files),
        embedded=embedded,
        unchanged=len(plan.unchanged) + restamped,
        removed=len(plan.gone) if prune else 0,
        gone_kept=0 if prune else len(plan.gone),
        skipped=tuple(sorted(scan_skips + plan.conflicts + plan.still_skipped + new_skips, key=lambda s: s.path)),
        products=products,
        images_without_metadata=None if table is None else sum(table.get(i) is None for i in ids_on_disk),
        metadata_without_image=None if table is None else sum(i not in ids_on_disk for i in table.rows),
        seconds=time.perf_counter() - started,
        outdated=run.outdated,
        space=space,
        pipeline_seconds=pipeline_seconds,
        engine=engine.name,
        coloured=coloured,
    )


@dataclass
class _IndexRun:
    """One indexing run's decisions, and its writer: nothing is written until the first image has been read."""

    store: CatalogStore
    folder: str
    plan: UpdatePlan
    known: dict[str, FileStamp]  # stamps (content hashes) of the products this run may re-embed
    embedder: Embedder
    table: MetadataTable | None
    model_info: dict[str, str]
    prune: bool
    outdated: int  # products of an older build of the model, dropped when writing starts
    started: bool = False

    @classmethod
    def prepare(cls, store: CatalogStore, images_dir: Path, files: list[ImageFile],
                metadata: str | os.PathLike | None, model: str | None, weights: str | os.PathLike | None,
                limit: int | None, prune: bool, settings: Settings) -> _IndexRun:
        """Load the model and plan the run, writing nothing."""
        info = store.info()
        table = _metadata_table(metadata, info)
        embedder = _embedder_for(info, store.catalog_dir, model, weights, settings)
        outdated = bool(info.get("model_id")) and outdated_model(info["model_id"]) is not None
        products = {} if outdated else store.products()
        folder = str(images_dir)
        plan = plan_update(files, folder, products, {} if outdated else store.skipped(folder), limit)
        run = cls(store, folder, plan, {i: p.stamp for i, p in products.items()}, embedder, table,
                  _model_info(embedder, images_dir, weights, table), prune, store.count() if outdated else 0)
        if plan.unchanged:  # something here is readable already: the writes need not wait
            run.start()
        return run

    def start(self) -> None:
        """The writes that wait for a readable image: the model, removals (when pruning), metadata."""
        if self.started:
            return
        self.started = True
        if self.outdated:
            log.warning("the catalog %s was embedded by an older build of %s: its %d products are embedded again",
                        self.store.catalog_dir, self.embedder.name, self.outdated)
            self.store.drop_all_products(self.model_info)
        else:
            self.store.set_info(self.model_info)
        gone = self.plan.gone if self.prune else []
        self.store.remove(gone, [(self.folder, path) for path in self.plan.forgotten_skips])
        if self.table is not None:
            removed = set(gone)
            here = [i for i, p in self.store.products().items() if p.folder == self.folder and i not in removed]
            self.store.update_metadata({i: self.table.get(i) for i in here})

    def write(self, batches: Iterable[EmbeddedBatch], progress: bool) -> tuple[int, int, list[SkippedFile]]:
        """Commit each batch an engine hands back; returns (embedded, restamped, skipped). Failures read before the
        first readable image are held back (a run that reads nothing must change nothing)."""
        embedded = kept = 0
        skipped: list[SkippedFile] = []
        held: list[SkippedFile] = []
        with _progress_bar(len(self.plan.todo), progress) as bar:
            for batch in batches:
                rows = [ProductRow(file.product_id, self.folder, replace(file.stamp, sha256=sha256), vector,
                                   self.table.get(file.product_id) if self.table is not None else None, colour)
                        for file, sha256, vector, colour in batch.embedded]
                if rows or batch.restamped:
                    self.start()
                if self.started:
                    self.store.write_batch(self.folder, rows, batch.restamped, held + batch.failed)
                    held = []
                else:
                    held.extend(batch.failed)
                bar.update(len(rows) + len(batch.restamped) + len(batch.failed))
                embedded, kept = embedded + len(rows), kept + len(batch.restamped)
                skipped.extend(batch.failed)
        return embedded, kept, skipped


def backfill_colours(store: CatalogStore, workers: int, max_pixels: int, draft_size: int | None = None,
                     chunk: int = 256) -> int:
    """Compute the colour of every product that lacks one of this version (indexed before colour existed, or by an
    engine that does not compute it) from its image file, without the CNN; returns how many were computed.
    `draft_size`: the catalog model's (`Preprocessing.draft_size`), so a file is decoded as indexing decodes it.

    A product whose file cannot be read now keeps no colour (its colour part stays zero) and is tried again next run.
    """
    missing = store.without_colour()
    if not missing:
        return 0

    def describe_file(item: tuple[str, StoredProduct]) -> tuple[str, ColourDescriptor | None]:
        product_id, product = item
        try:
            image = open_image(Path(product.folder) / product.stamp.path, max_pixels, draft_size=draft_size)
            return product_id, describe_colour(image)
        except ImageError as exc:
            log.warning("no colour for product %s: %s", product_id, exc)
            return product_id, None

    done = 0
    items = sorted(missing.items())
    log.info("computing the colour of %d products indexed without it", len(items))
    for start in range(0, len(items), chunk):
        found = dict(ordered_map(describe_file, items[start:start + chunk], workers, chunk))
        colours = {product_id: colour for product_id, colour in found.items() if colour is not None}
        store.set_colours(colours)
        done += len(colours)
    return done


def _nothing_readable(images_dir: Path, skipped: list[SkippedFile], what: str) -> str:
    """The one line that refuses a folder with nothing to index, with an example of why."""
    example = f"; e.g. {skipped[0].path}: {skipped[0].reason}" if skipped else ""
    return (f"the folder {images_dir} {what} (files named <product id>.jpg, .png, .webp ...); nothing was changed"
            f"{example}")


def _remove_new_catalog(catalog_dir: Path) -> None:
    """Undo the creation of a catalog by a run that failed before indexing anything."""
    for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
        (catalog_dir / name).unlink(missing_ok=True)
    try:
        catalog_dir.rmdir()
    except OSError:
        pass  # not empty: the folder was there before, or holds other files


@dataclass(frozen=True)
class SpaceUpdate:
    """What `refresh_space` did to the catalog's search space, and why."""

    refitted: bool  # a new whitening was fitted (search vectors of every product changed: a push sends them all)
    reason: str  # why it was fitted, or why not
    drift: float  # how far the products had moved from the fit (`derived.drift`) before this update
    tuning_dropped: bool = False


def refresh_space(store: CatalogStore, wanted_dim: int, force: bool = False,
                  drift_limit: float = float("inf")) -> SpaceUpdate:
    """Keep the catalog's search space, or fit its whitening again, publishing any change as a new version.

    The space stays put as products come and go: products added later are whitened by the space as it is, so the
    search vectors of unchanged products, a tuning and the copies of them elsewhere (Milvus) stay valid. It is
    fitted when there is none yet and the catalog is large enough, when the wanted dimension changes, when `force`
    (`fashionrec refit`), or when the products have drifted past `drift_limit` since the fit. A tuning lives in the
    whitened space it was fitted in: a refit drops it (with a warning: tune again).
    """
    with store.snapshot():
        info = store.info()
        generation = store.generation()
        ids, hashes = store.id_hashes()
        current = _current_space(store, info)
        whitening = current.whitening if current else None
        moved = 0.0
        if whitening is not None:
            written, kept = store.changed_since(whitening.generation)
            moved = drift(whitening.products, kept, written)
        fits = whitening_dim(len(ids), wanted_dim, int(info["dim"]))
        wanted = min(wanted_dim, int(info["dim"]))
        if wanted == 0:
            whitening, reason = None, "whitening is turned off (FASHIONREC_WHITEN_DIM=0)"
        elif whitening is not None and whitening.dim != wanted:
            whitening, reason = None, f"the wanted dimension changed from {whitening.dim} to {wanted}"
        elif force:
            reason = "asked for (fashionrec refit)"
        elif whitening is None:
            reason = "none fitted yet"
        elif moved > drift_limit:
            reason = f"the products drifted {moved:.0%} from the fit (more than {drift_limit:.0%})"
        else:
            reason = ""
        refit_now = bool(reason) and wanted > 0 and fits > 0
        if refit_now:
            log.info("fitting the catalog's whitening (%d products, %d dims): %s", len(ids), fits, reason)
            whitening = fit_whitening(store.vector_blocks(int(info["dim"])), fits,
                                      products_digest(ids, hashes), generation)
    untuned = SearchSpace(info["model_id"], whitening, None)
    tuning = current.tuning if current is not None and current.without_tuning().digest == untuned.digest else None
    dropped = current is not None and current.tuning is not None and tuning is None
    if dropped:
        log.warning("the catalog's whitening changed: its tuning (fitted in the old one) is dropped; "
                    "run fashionrec tune again")
    space = SearchSpace(info["model_id"], whitening, tuning) if whitening or tuning else None
    digest_now = save_space(store.catalog_dir, space) if space else ""
    store.set_space(digest_now, expected=info.get(SPACE_KEY, ""))
    remove_superseded(store.catalog_dir, [space_path(store.catalog_dir, digest_now).name] if space else [],
                      SPACE_PREFIX)
    return SpaceUpdate(refit_now, reason if refit_now or not reason else f"not fitted: {reason}, but too few "
                       "products (4 per dimension)", moved, dropped)


def refit(catalog_dir: str | os.PathLike, settings: Settings | None = None) -> SpaceUpdate:
    """Fit the catalog's search space (its whitening) again on its products as they are now, as a new version.

    Raises:
        CatalogError: not a catalog, or never indexed.
    """
    settings = settings or load_settings()
    with CatalogStore(Path(catalog_dir).expanduser()) as store:
        if "model_id" not in store.info():
            raise CatalogError(f"the catalog {catalog_dir} was never indexed; run fashionrec index first")
        return refresh_space(store, settings.whiten_dim, force=True)


def _current_space(store: CatalogStore, info: dict[str, str]) -> SearchSpace | None:
    """The search space the catalog names, or None (none named, or its file is unusable: it is fitted again)."""
    if not info.get(SPACE_KEY):
        return None
    try:
        return load_space(store.catalog_dir, info[SPACE_KEY], info["model_id"])
    except CatalogError as exc:
        log.warning("%s", exc)
        return None


def _progress_bar(total: int, progress: bool) -> tqdm | LogProgress:
    """A redrawn bar on a terminal; whole lines, now and then, in a log, a CI job or a pipe (a bar redrawn there
    leaves a line per batch: hundreds for the sample)."""
    if progress and not sys.stderr.isatty():
        return LogProgress(total, sys.stderr)
    return tqdm(total=total, unit="img", desc="indexing", disable=not progress, smoothing=0.05)


class LogProgress:
    """Progress as plain lines: one per tenth of the work or per LOG_PROGRESS_SECONDS, and one at the end."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.done = 0
        self._stream = stream
        self._started = self._last_time = time.monotonic()
        self._last_done = 0

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.done != self._last_done:  # the last line says where the run ended
            self._write(time.monotonic())

    def update(self, count: int) -> None:
        """Count `count` more images, writing a line when a tenth more is done or enough time has passed."""
        self.done += count
        now = time.monotonic()
        if self.done > self._last_done and (self.done - self._last_done >= LOG_PROGRESS_STEP * self.total
                                            or now - self._last_time >= LOG_PROGRESS_SECONDS):
            self._write(now)

    def _write(self, now: float) -> None:
        """One line: images done, share, rate, and time left (or taken, at the end)."""
        elapsed = now - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        if self.done >= self.total:
            timing = f" in {_duration(elapsed)}"
        else:
            timing = f", about {_duration((self.total - self.done) / rate)} left" if rate > 0 else ""
        print(f"indexing: {self.done:,}/{self.total:,} images{share}, {rate:.1f} images/s{timing}", file=self._stream,
              flush=True)
        self._last_time, self._last_done = now, self.done


def _duration(seconds: float) -> str:
    """1h02m, 3m05s or 12s."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def group_results(
    results: Iterable[ReadResult], batch_size: int
) -> Iterator[tuple[list[ReadResult], list[tuple[str, FileStamp]], list[SkippedFile]]]:
    """Group reader results into (to embed, same content re-stamped, failed), each group holding at most
    `batch_size` images to embed; the last group holds whatever remains."""
    ready: list[ReadResult] = []
    restamped: list[tuple[str, FileStamp]] = []
    failed: list[SkippedFile] = []
    for result in results:
        stamp = result.file.stamp
        if result.error is not None:
            failed.append(SkippedFile(stamp.path, result.error, stamp.size, stamp.mtime_ns))
        elif result.pixels is None:
            restamped.append((result.file.product_id, stamp))
        else:
            ready.append(result)
        if len(ready) >= batch_size:
            yield ready, restamped, failed
            ready, restamped, failed = [], [], []
    yield ready, restamped, failed


def _typical_size_info(store: CatalogStore) -> dict[str, str]:
    """The catalog's median image size, which queries are brought to (see images.match_catalog_look)."""
    paths = [Path(product.folder) / product.stamp.path for product in store.products().values()]
    size = typical_size(sorted(paths))
    return {"typical_image_size": f"{size[0]}x{size[1]}"} if size else {}


def _existing_dir(images_dir: str | os.PathLike) -> Path:
    """The images folder as an absolute path, or a clear error."""
    path = Path(images_dir).expanduser().resolve()
    if not path.is_dir():
        raise CatalogError(f"the images folder {images_dir} does not exist or is not a folder")
    return path


def _metadata_table(metadata: str | os.PathLike | None, info: dict[str, str]) -> MetadataTable | None:
    """The metadata given now, else the file an earlier run used (if it still exists)."""
    if metadata is not None:
        return read_metadata(Path(metadata).expanduser().resolve())
    remembered = info.get("metadata_path")
    if remembered and Path(remembered).is_file():
        return read_metadata(remembered)
    return None


def _embedder_for(
    info: dict[str, str], catalog_dir: Path, model: str | None, weights: str | os.PathLike | None, settings: Settings
) -> Embedder:
    """The catalog's model (refusing another one), or the requested/default model for a new catalog."""
    stored = info.get("model_name")
    if stored and model and model != stored:
        raise ModelMismatchError(
            f"the catalog {catalog_dir} holds {stored} vectors and cannot take {model} vectors; "
            f"index into another --catalog folder, or delete this one to rebuild it with {model}"
        )
    if weights is None and info.get("weights_path") and Path(info["weights_path"]).is_file():
        weights = info["weights_path"]
    embedder = load_model(model or stored or settings.default_model, weights, settings)
    if info.get("model_id") and info["model_id"] != embedder.model_id and outdated_model(info["model_id"]) is None:
        raise ModelMismatchError(
            f"the catalog {catalog_dir} was built with {info['model_id']}, but the model now loaded is "
            f"{embedder.model_id} (other weights or preprocessing); use the same weights or a new catalog"
        )
    return embedder


def _model_info(
    embedder: Embedder, images_dir: Path, weights: str | os.PathLike | None, table: MetadataTable | None
) -> dict[str, str]:
    """The info keys that record which model and which sources a catalog was built from."""
    values = {
        "model_name": embedder.name,
        "model_id": embedder.model_id,
        "dim": str(embedder.dim),
        "images_dir": str(images_dir),
    }
    if weights is not None:
        values["weights_path"] = str(Path(weights).expanduser().resolve())
    if table is not None:
        values["metadata_path"] = str(table.path)
        values["metadata_columns"] = json.dumps(list(table.columns))
    return values
