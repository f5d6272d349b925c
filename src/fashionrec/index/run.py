"""Build or update a catalog from a folder of images: scan -> plan -> read -> embed -> write."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fashionrec.catalog.identity import require_model
from fashionrec.catalog.rows import FileStamp, ProductRow, SkippedFile
from fashionrec.catalog.space import SpaceUpdate
from fashionrec.catalog.writer import CatalogWriter, catalog_exists, discard_new_catalog
from fashionrec.config import Settings, load_settings
from fashionrec.errors import CatalogError, ModelMismatchError
from fashionrec.imaging.look import typical_size
from fashionrec.index.backfill import backfill_colours
from fashionrec.index.engine import EmbeddedBatch, Engine, LocalEngine
from fashionrec.index.metadata import MetadataTable, read_metadata
from fashionrec.index.plan import ImageFile, UpdatePlan, plan_update, scan_images
from fashionrec.index.progress import progress_bar
from fashionrec.index.write import ProductWrite, put_products
from fashionrec.models import outdated_model
from fashionrec.models.embed import Embedder, load_model

log = logging.getLogger(__name__)


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
    withdrawn: int = 0  # files of products removed on request, left out (`restore` brings them back)

    @property
    def images_per_second(self) -> float:
        """Embedded images per second of the whole run (0 when nothing was embedded)."""
        return self.embedded / self.seconds if self.embedded and self.seconds > 0 else 0.0

    @property
    def pipeline_images_per_second(self) -> float:
        """Embedded images per second of the pipeline once running: decode, preprocess, inference, store."""
        return self.embedded / self.pipeline_seconds if self.embedded and self.pipeline_seconds > 0 else 0.0


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
    restore: bool = False,
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
        restore: index the files of products that `fashionrec remove` or DELETE removed (else they stay removed).
        progress: show progress on stderr: a bar on a terminal, else a line now and then (`index.progress`).
        settings: defaults to `load_settings()`.
        engine: what runs reader -> embedder (default: `LocalEngine`, in this process); same catalog either way.

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
    images_dir, files, scan_skips = _scan(images_dir, limit)
    catalog_dir = Path(catalog_dir).expanduser()
    created = not catalog_exists(catalog_dir)
    try:
        with CatalogWriter(catalog_dir, create=True) as writer:
            run = _IndexRun.prepare(writer, images_dir, files, metadata, model, weights, limit, prune, restore,
                                    settings, scan_skips)
            outcome = _pipeline(run, writer, images_dir, scan_skips, engine or LocalEngine(settings.decode_workers),
                                batch_size or settings.batch_size, progress, settings)
    except BaseException:
        if created:
            discard_new_catalog(catalog_dir)
        raise
    return _report(catalog_dir, run, outcome, files, scan_skips, time.perf_counter() - started)


def _scan(images_dir: str | os.PathLike, limit: int | None) -> tuple[Path, list[ImageFile], list[SkippedFile]]:
    """The folder (absolute), its photos and the files refused by name, or a clear error before anything is opened."""
    folder = _existing_dir(images_dir)
    if limit is not None and limit < 0:
        raise CatalogError(f"--limit must be 0 or more, got {limit}")
    files, scan_skips = scan_images(folder)
    if not files:
        raise CatalogError(_nothing_readable(folder, scan_skips, "holds no product photo"))
    return folder, files, scan_skips


@dataclass(frozen=True)
class _Outcome:
    """What the pipeline of one run did (the counts the report needs beyond its plan)."""

    embedded: int
    restamped: int
    new_skips: list[SkippedFile]
    pipeline_seconds: float
    coloured: int
    space: SpaceUpdate
    products: int
    engine: str


def _pipeline(run: _IndexRun, writer: CatalogWriter, images_dir: Path, scan_skips: list[SkippedFile], engine: Engine,
              batch_size: int, progress: bool, settings: Settings) -> _Outcome:
    """read -> embed (the engine) -> write, then what follows a run: the typical image size, colours still
    missing, and the search space kept or refitted."""
    pipeline_started = time.perf_counter()
    batches = engine.run(run.plan.todo, run.known, run.embedder, images_dir, batch_size)
    embedded, restamped, new_skips = run.write(batches, progress)
    pipeline_seconds = time.perf_counter() - pipeline_started
    if not run.started:
        raise CatalogError(_nothing_readable(images_dir, scan_skips + run.plan.conflicts + new_skips
                                             + run.plan.still_skipped, "has no photo fashionrec can read"))
    if run.own:  # the model was rebuilt: the products written over the API or with add come back, embedded anew
        put_products(writer.catalog_dir, run.own, run.embedder)
    writer.set_info(_typical_size_info(writer))
    coloured = backfill_colours(writer, settings.decode_workers, settings.max_image_pixels,
                                run.embedder.spec.preprocessing)
    space = writer.refresh_space(settings.whiten_dim, drift_limit=settings.refit_drift)
    writer.collect_orphans()  # images a crashed or failed live write left behind
    return _Outcome(embedded, restamped, new_skips, pipeline_seconds, coloured, space, writer.count(), engine.name)


def _report(catalog_dir: Path, run: _IndexRun, outcome: _Outcome, files: list[ImageFile],
            scan_skips: list[SkippedFile], seconds: float) -> IndexReport:
    """The run's `IndexReport`."""
    plan, table = run.plan, run.table
    ids_on_disk = {f.product_id for f in files}
    return IndexReport(
        catalog_dir=catalog_dir,
        model=run.embedder.name,
        model_id=run.embedder.model_id,
        images_found=len(files),
        embedded=outcome.embedded,
        unchanged=len(plan.unchanged) + outcome.restamped,
        removed=len(plan.gone) if run.prune else 0,
        gone_kept=0 if run.prune else len(plan.gone),
        skipped=tuple(sorted(scan_skips + plan.conflicts + plan.still_skipped + outcome.new_skips,
                             key=lambda s: s.path)),
        products=outcome.products,
        images_without_metadata=None if table is None else sum(table.get(i) is None for i in ids_on_disk),
        metadata_without_image=None if table is None else sum(i not in ids_on_disk for i in table.rows),
        seconds=seconds,
        outdated=run.outdated,
        space=outcome.space,
        pipeline_seconds=outcome.pipeline_seconds,
        engine=outcome.engine,
        coloured=outcome.coloured,
        withdrawn=run.withdrawn,
    )


@dataclass
class _IndexRun:
    """One indexing run's decisions, and its writer: nothing is written until the first image has been read."""

    store: CatalogWriter
    folder: str
    plan: UpdatePlan
    known: dict[str, FileStamp]  # stamps (content hashes) of the products this run may re-embed
    embedder: Embedder
    table: MetadataTable | None
    model_info: dict[str, str]
    prune: bool
    outdated: int  # products of an older build of the model, dropped when writing starts
    restored: list[str]  # products removed on request that this run brings back (`restore`)
    withdrawn: int  # files of products removed on request, left out
    scan_skips: list[SkippedFile]  # files refused by name (format, id), recorded with the run's other skips
    started: bool = False
    own: list[ProductWrite] = field(default_factory=list)  # written products to embed again (an outdated model)

    @classmethod
    def prepare(cls, store: CatalogWriter, images_dir: Path, files: list[ImageFile],
                metadata: str | os.PathLike | None, model: str | None, weights: str | os.PathLike | None,
                limit: int | None, prune: bool, restore: bool, settings: Settings,
                scan_skips: list[SkippedFile] = ()) -> _IndexRun:
        """Load the model and plan the run, writing nothing. Files of products removed on request are left out
        (counted), unless `restore`."""
        info = store.info()
        withdrawn = store.withdrawn()
        left_out = [f.product_id for f in files if f.product_id in withdrawn]
        if not restore:
            files = [f for f in files if f.product_id not in withdrawn]
        table = _metadata_table(metadata, info)
        embedder = _embedder_for(info, store.catalog_dir, model, weights, settings)
        outdated = bool(info.get("model_id")) and outdated_model(info["model_id"]) is not None
        products = {} if outdated else store.products()
        folder = str(images_dir)
        plan = plan_update(files, folder, products, {} if outdated else store.skipped(folder), limit)
        run = cls(store, folder, plan, {i: p.stamp for i, p in products.items()}, embedder, table,
                  _model_info(embedder, images_dir, weights, table), prune, store.count() if outdated else 0,
                  left_out if restore else [], 0 if restore else len(left_out), list(scan_skips))
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
            own = str(self.store.catalog_dir)  # products the catalog keeps the images of: embedded again below
            self.own = [ProductWrite(i, Path(p.folder) / p.stamp.path, self.store.metadata_of(i))
                        for i, p in self.store.products().items() if p.folder == own]
            self.store.drop_all_products(self.model_info)
        else:
            self.store.set_info(self.model_info)
        self.store.restore(self.restored)
        gone = self.plan.gone if self.prune else []
        self.store.remove(gone, [(self.folder, path) for path in self.plan.forgotten_skips])
        self.store.write_batch(self.folder, [], [], self.scan_skips + self.plan.conflicts)  # info counts what we said
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
        with progress_bar(len(self.plan.todo), progress) as bar:
            for batch in batches:
                rows = [ProductRow(file.product_id, self.folder, replace(file.stamp, sha256=sha256), vector,
                                   self.table.get(file.product_id) if self.table is not None else None, colour)
                        for file, sha256, vector, colour in batch.embedded if np.isfinite(vector).all()]
                batch = replace(batch, failed=batch.failed + _not_finite(batch))
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


def _not_finite(batch: EmbeddedBatch) -> list[SkippedFile]:
    """The files whose vector is not finite (never stored: they would drop out of every search), as skipped."""
    return [SkippedFile(file.stamp.path, "the model gave no usable vector for this image (not finite numbers)",
                        file.stamp.size, file.stamp.mtime_ns)
            for file, _, vector, _ in batch.embedded if not np.isfinite(vector).all()]


def _nothing_readable(images_dir: Path, skipped: list[SkippedFile], what: str) -> str:
    """The one line that refuses a folder with nothing to index, with an example of why."""
    example = f"; e.g. {skipped[0].path}: {skipped[0].reason}" if skipped else ""
    return (f"the folder {images_dir} {what} (files named <product id>.jpg, .png, .webp ...); nothing was changed"
            f"{example}")


def _typical_size_info(store: CatalogWriter) -> dict[str, str]:
    """The catalog's median image size, which queries are brought to (see imaging.look.match_catalog_look)."""
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
    if info.get("model_id") and outdated_model(info["model_id"]) is None:  # an outdated build is embedded again
        require_model(catalog_dir, info["model_id"], embedder.model_id)
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
