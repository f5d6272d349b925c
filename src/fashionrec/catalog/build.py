"""Build or update a catalog from a folder of images: scan -> plan -> read -> embed -> write.

Each stage is small: `scan_images` lists files, `plan_update` compares them with the catalog (so a
rerun only embeds new or changed files and drops vanished ones), `read_image` hashes and decodes one
file, an `Engine` runs reader -> embedder over the files to index (`LocalEngine`: a thread pool of
readers overlapping inference in this process; `fashionrec.scale.ray_engine.RayEngine`: Ray Data on a
cluster), and `index_images` writes what the engine hands back, committing one transaction per batch so
an interrupted run resumes where it stopped.
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

from fashionrec.catalog.metadata import MetadataTable, read_metadata
from fashionrec.catalog import tuning
from fashionrec.catalog.store import CatalogStore, FileStamp, ProductRow, SkippedFile
from fashionrec.catalog.whitening import (
    FITTED_ON_KEY,
    MATRIX_KEY,
    MEAN_KEY,
    fit_whitening,
    products_fingerprint,
    whitening_dim,
)
from fashionrec.config import Settings, load_settings
from fashionrec.embed import Embedder, load_model
from fashionrec.errors import CatalogError, ImageError, ModelMismatchError
from fashionrec.images import (Preprocessing, is_image_file, load_model_input, read_image_bytes, refused_file_reason,
                               typical_size)
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
    removed: list[str]  # products whose file is gone
    still_skipped: list[SkippedFile]  # failed before and unchanged since: not retried
    forgotten_skips: list[str]  # skipped-file records whose file is gone


@dataclass(frozen=True)
class IndexReport:
    """The outcome of one indexing run."""

    catalog_dir: Path
    model: str
    model_id: str
    images_found: int
    embedded: int  # images decoded and embedded in this run
    unchanged: int  # already in the catalog (same stamp or same content hash)
    removed: int  # products dropped because their file is gone
    skipped: tuple[SkippedFile, ...]  # files that could not be indexed, with the reason
    products: int  # products in the catalog after the run
    images_without_metadata: int | None  # None when no metadata file was used
    metadata_without_image: int | None
    seconds: float  # the whole run, model loading and scanning included
    outdated: int  # products embedded by an older build of the model: dropped, and embedded again if their file is here
    pipeline_seconds: float = 0.0  # the read -> embed -> write pipeline alone (what grows with the images)
    engine: str = "local"  # what ran reader -> embedder: local (this process) or ray

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


@dataclass(frozen=True)
class EmbeddedBatch:
    """What an engine hands the writer for one batch, in the order of the files it was given."""

    embedded: list[tuple[ImageFile, str, np.ndarray]]  # (file, content sha256, unit vector)
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
            yield EmbeddedBatch([(r.file, r.sha256, v) for r, v in zip(ready, vectors)], restamped, failed)


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
    known: dict[str, FileStamp],
    skipped: dict[str, SkippedFile],
    limit: int | None = None,
) -> UpdatePlan:
    """Compare the files on disk with the catalog: what to embed, keep, drop, or leave skipped.

    `limit` restricts the files considered for indexing to the first `limit` (in natural path order); products
    are dropped only when their file is really gone, never because of the limit.
    """
    present_ids = {f.product_id for f in files}
    present_paths = {f.stamp.path for f in files}
    plan = UpdatePlan(
        todo=[], unchanged=[],
        removed=[product_id for product_id in known if product_id not in present_ids],
        still_skipped=[], forgotten_skips=[path for path in skipped if path not in present_paths],
    )
    for file in files[:limit] if limit is not None else files:
        stamp, before = file.stamp, known.get(file.product_id)
        failed = skipped.get(stamp.path)
        if before and (before.path, before.size, before.mtime_ns) == (stamp.path, stamp.size, stamp.mtime_ns):
            plan.unchanged.append(file.product_id)
        elif before is None and failed and (failed.size, failed.mtime_ns) == (stamp.size, stamp.mtime_ns):
            plan.still_skipped.append(failed)
        else:
            plan.todo.append(file)
    return plan


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
        return ReadResult(file, sha256=sha256, pixels=load_model_input(data, prep, max_pixels))
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
    progress: bool = True,
    settings: Settings | None = None,
    engine: Engine | None = None,
) -> IndexReport:
    """Index a folder of product images into a catalog, or bring an existing catalog up to date.

    Args:
        images_dir: folder of images named `<product id>.<ext>` (searched recursively).
        catalog_dir: the catalog folder; created if missing.
        metadata: a styles.csv-like file with an `id` column; remembered for later runs.
        model: backbone for a new catalog (default from settings); must match an existing catalog's.
        weights: a weights file instead of the standard one (resnet50: a Keras .h5).
        batch_size: images per inference call (default from settings).
        limit: index at most the first `limit` images (natural order: 2.jpg before 10.jpg).
        progress: show progress on stderr: a bar (images/s, ETA) on a terminal, else a plain line per tenth of
            the run or per 30 s (a log, CI, a pipe).
        settings: defaults to `load_settings()`.
        engine: what runs reader -> embedder (default: `LocalEngine`, in this process); the catalog is the
            same whichever runs it.

    Returns:
        An `IndexReport`: counts, skipped files with reasons, images/s.

    Raises:
        CatalogError: the images folder is missing, or the catalog cannot be written.
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
    with CatalogStore(Path(catalog_dir), create=True) as store:
        info = store.info()
        table = _metadata_table(metadata, info)
        embedder = _embedder_for(info, store.catalog_dir, model, weights, settings)
        outdated = _drop_outdated_products(store, info, _model_info(embedder, images_dir, weights, table))
        files, scan_skips = scan_images(images_dir)
        known = store.stamps()
        plan = plan_update(files, known, store.skipped(), limit)
        store.remove(plan.removed, plan.forgotten_skips)
        if table is not None:
            removed = set(plan.removed)
            store.update_metadata({i: table.get(i) for i in known if i not in removed})
        pipeline_started = time.perf_counter()
        engine = engine or LocalEngine(settings.decode_workers)
        batches = engine.run(plan.todo, known, embedder, images_dir, batch_size or settings.batch_size)
        embedded, restamped, new_skips = _store_batches(store, batches, len(plan.todo), table, progress)
        pipeline_seconds = time.perf_counter() - pipeline_started
        store.set_info(_typical_size_info(images_dir, store))
        refresh_whitening(store, settings.whiten_dim)
        products = store.count()
    ids_on_disk = {f.product_id for f in files}
    return IndexReport(
        catalog_dir=Path(catalog_dir),
        model=embedder.name,
        model_id=embedder.model_id,
        images_found=len(files),
        embedded=embedded,
        unchanged=len(plan.unchanged) + restamped,
        removed=len(plan.removed),
        skipped=tuple(sorted(scan_skips + plan.still_skipped + new_skips, key=lambda s: s.path)),
        products=products,
        images_without_metadata=None if table is None else sum(table.get(i) is None for i in ids_on_disk),
        metadata_without_image=None if table is None else sum(i not in ids_on_disk for i in table.rows),
        seconds=time.perf_counter() - started,
        outdated=outdated,
        pipeline_seconds=pipeline_seconds,
        engine=engine.name,
    )


def _drop_outdated_products(store: CatalogStore, info: dict[str, str], model_info: dict[str, str]) -> int:
    """Record the model; if the catalog was embedded by an older build of it, drop its products first.

    Returns how many products were dropped (their files, if still in the folder, are embedded again by this run).
    """
    if not info.get("model_id") or outdated_model(info["model_id"]) is None:
        store.set_info(model_info)
        return 0
    dropped = store.count()
    log.warning("the catalog %s was embedded by an older build of %s: its %d products are embedded again",
                store.catalog_dir, info.get("model_name"), dropped)
    store.drop_all_products(model_info)
    return dropped


def refresh_whitening(store: CatalogStore, wanted_dim: int) -> None:
    """Fit the catalog's whitening again if its products changed since the last fit (or drop it if too few)."""
    ids, hashes = store.id_hashes()
    fingerprint = products_fingerprint(ids, hashes)
    _drop_stale_tuning(store, fingerprint)
    model_dim = int(store.info()["dim"])
    dim = whitening_dim(len(ids), wanted_dim, model_dim)
    if dim == 0:
        store.delete_arrays([MEAN_KEY, MATRIX_KEY], [FITTED_ON_KEY])
        return
    stored = store.get_array(MATRIX_KEY)
    if store.info().get(FITTED_ON_KEY) == fingerprint and stored is not None and stored.shape[1] == dim:
        return
    log.info("fitting the catalog's whitening (%d products, %d dims)", len(ids), dim)
    whitening = fit_whitening(store.vector_blocks(model_dim), dim, fingerprint)
    store.put_arrays({MEAN_KEY: whitening.mean, MATRIX_KEY: whitening.matrix}, {FITTED_ON_KEY: fingerprint})


def _drop_stale_tuning(store: CatalogStore, fingerprint: str) -> None:
    """A label tuning fitted on other products no longer fits the search space: forget it (tune again)."""
    fitted_on = store.info().get(tuning.FITTED_ON_KEY)
    if fitted_on is not None and fitted_on != fingerprint:
        log.warning("the products changed: the catalog's tuning is dropped; rerun fashionrec tune")
        store.delete_arrays(tuning.ARRAY_NAMES, tuning.INFO_KEYS)


def _store_batches(
    store: CatalogStore, batches: Iterable[EmbeddedBatch], total: int, table: MetadataTable | None, progress: bool
) -> tuple[int, int, list[SkippedFile]]:
    """The writer: commit each batch an engine hands back; returns (embedded, restamped, skipped)."""
    embedded = kept = 0
    skipped: list[SkippedFile] = []
    with _progress_bar(total, progress) as bar:
        for batch in batches:
            rows = [ProductRow(file.product_id, replace(file.stamp, sha256=sha256), vector,
                               table.get(file.product_id) if table is not None else None)
                    for file, sha256, vector in batch.embedded]
            store.write_batch(rows, batch.restamped, batch.failed)
            bar.update(len(rows) + len(batch.restamped) + len(batch.failed))
            embedded, kept = embedded + len(rows), kept + len(batch.restamped)
            skipped.extend(batch.failed)
    return embedded, kept, skipped


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


def _typical_size_info(images_dir: Path, store: CatalogStore) -> dict[str, str]:
    """The catalog's median image size, which queries are brought to (see images.match_catalog_look)."""
    paths = [images_dir / stamp.path for stamp in store.stamps().values()]
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
