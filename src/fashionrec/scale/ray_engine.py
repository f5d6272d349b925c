"""Indexing on a Ray cluster: the reader -> embedder stages of `fashionrec index`, run by Ray Data.

The files to index stream through an actor pool (`map_batches`). Each actor opens its own ONNX Runtime
session inside the actor, from the model's bytes (shipped once through Ray's object store, so workers need
no model cache), then reads, hashes, decodes and embeds its batches with the same `read_image` and
`Embedder` the in-process engine uses (so the colour too). Batches come back to this process in order, where the catalog's
writer commits them exactly as in-process: same ids, same vectors, same skipped-file report, incremental
(only new or changed files are sent) and resumable (each batch is one transaction).

Ray Data restarts an actor that dies and retries the batch it held (its default for actor pools); the writer keys rows by product id, so a
retried batch is neither lost nor written twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fashionrec.catalog.rows import FileStamp, SkippedFile
from fashionrec.config import load_settings
from fashionrec.errors import FashionrecError
from fashionrec.imaging.colour import HISTOGRAM_DIM, ColourDescriptor, Swatch
from fashionrec.index.engine import EmbeddedBatch
from fashionrec.index.plan import ImageFile
from fashionrec.index.read import read_image
from fashionrec.models import get_spec
from fashionrec.models.embed import Embedder


@dataclass(frozen=True)
class RayEngine:
    """Run reader -> embedder on Ray Data: a local Ray started for the run, or the cluster at `address`.

    `workers` actors (default: one per CPU of the cluster) each hold one ONNX Runtime session. On a real
    cluster every node needs fashionrec installed and the images folder at the same path (a shared mount).
    """

    address: str | None = None
    workers: int | None = None
    name: str = "ray"

    def run(self, todo: list[ImageFile], known: dict[str, FileStamp], embedder: Embedder, images_dir: Path,
            batch_size: int) -> Iterator[EmbeddedBatch]:
        """See `fashionrec.index.engine.Engine.run`."""
        if not todo:
            return  # nothing to embed: no cluster to start
        ray = _ray()
        for name in ("ray.data", "ray.data._internal.progress"):  # the indexer reports; Ray's chatter goes to its logs
            logging.getLogger(name).setLevel(logging.WARNING if name == "ray.data" else logging.ERROR)
        with _connected(ray, self.address):
            context = ray.data.DataContext.get_current()
            context.execution_options.preserve_order = True  # batches reach the writer in file order
            context.enable_progress_bars = False  # the indexer shows its own
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            workers = cpus if self.workers is None else self.workers
            if workers < 1:
                raise FashionrecError(f"--workers must be at least 1, got {workers}")
            threads = max(1, cpus // workers)  # ONNX Runtime threads per actor: the cluster's cores shared out
            dataset = ray.data.from_items(
                [_item(file, known) for file in todo],
                override_num_blocks=min(len(todo), max(2 * workers, math.ceil(len(todo) / (4 * batch_size)))),
            ).map_batches(
                EmbedFiles,
                fn_constructor_kwargs={"model": _model_payload(embedder), "images_dir": str(images_dir),
                                       "threads": threads},
                batch_size=batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=threads if workers <= cpus else cpus / workers,  # more actors than cores still all start
            )  # Ray Data's actor pools restart dead actors and retry their batches (its default)
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                yield to_embedded_batch(batch)


class EmbedFiles:
    """A Ray Data actor: its own ONNX Runtime session; reads, decodes and embeds one batch of files per call."""

    def __init__(self, model: dict[str, Any], images_dir: str, threads: int) -> None:
        settings = replace(load_settings(), inference_threads=threads)
        self._embedder = Embedder(get_spec(model["name"]), model["onnx"], model["model_id"], settings)
        self._images_dir = Path(images_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Files in (product_id, path, size, mtime_ns, known_sha256) -> the same rows with sha256, state,
        error, vector (zeros unless the state is "embedded"), and the colour: histogram (zeros when none) and
        swatches (JSON text)."""
        embedder = self._embedder
        results = [
            read_image(ImageFile(str(product_id), FileStamp(str(path), int(size), int(mtime_ns))), self._images_dir,
                       embedder.spec.preprocessing, embedder.max_pixels, str(known) or None)
            for product_id, path, size, mtime_ns, known in zip(batch["product_id"], batch["path"], batch["size"],
                                                              batch["mtime_ns"], batch["known_sha256"])
        ]
        ready = [i for i, r in enumerate(results) if r.pixels is not None]
        vectors = np.zeros((len(results), embedder.dim), dtype=np.float32)
        if ready:
            vectors[ready] = embedder.embed_batch(np.stack([results[i].pixels for i in ready]))
        states = ["failed" if r.error is not None else "same" if r.pixels is None else "embedded" for r in results]
        return {
            "product_id": batch["product_id"], "path": batch["path"], "size": batch["size"],
            "mtime_ns": batch["mtime_ns"],
            "sha256": np.array([r.sha256 for r in results], dtype=object),
            "state": np.array(states, dtype=object),
            "error": np.array([r.error or "" for r in results], dtype=object),
            "vector": vectors,
            "colour": np.stack([r.colour.histogram if r.colour is not None
                                else np.zeros(HISTOGRAM_DIM, np.float32) for r in results]),
            "swatches": np.array([json.dumps([s.to_dict() for s in r.colour.swatches]) if r.colour is not None
                                  else "" for r in results], dtype=object),
        }


def to_embedded_batch(batch: dict[str, np.ndarray]) -> EmbeddedBatch:
    """An actor's output columns back into what the catalog writer takes."""
    embedded: list[tuple[ImageFile, str, np.ndarray, ColourDescriptor | None]] = []
    restamped: list[tuple[str, FileStamp]] = []
    failed: list[SkippedFile] = []
    for row in range(len(batch["product_id"])):
        stamp = FileStamp(str(batch["path"][row]), int(batch["size"][row]), int(batch["mtime_ns"][row]))
        state, product_id = str(batch["state"][row]), str(batch["product_id"][row])
        if state == "embedded":
            vector = np.asarray(batch["vector"][row], dtype=np.float32)
            embedded.append((ImageFile(product_id, stamp), str(batch["sha256"][row]), vector, _colour(batch, row)))
        elif state == "same":
            restamped.append((product_id, stamp))
        else:
            failed.append(SkippedFile(stamp.path, str(batch["error"][row]), stamp.size, stamp.mtime_ns))
    return EmbeddedBatch(embedded, restamped, failed)


def _colour(batch: dict[str, np.ndarray], row: int) -> ColourDescriptor | None:
    """The colour an actor computed for one row (None if it sent none: the run's backfill computes it)."""
    if "colour" not in batch or not str(batch["swatches"][row]):
        return None
    swatches = tuple(Swatch(s["rgb"], float(s["share"])) for s in json.loads(str(batch["swatches"][row])))
    return ColourDescriptor(np.asarray(batch["colour"][row], dtype=np.float32), swatches)


def _item(file: ImageFile, known: dict[str, FileStamp]) -> dict[str, Any]:
    """One file as a dataset row (what an actor needs to read it, and the hash the catalog holds for it)."""
    before = known.get(file.product_id)
    return {"product_id": file.product_id, "path": file.stamp.path, "size": file.stamp.size,
            "mtime_ns": file.stamp.mtime_ns, "known_sha256": before.sha256 if before else ""}


def _model_payload(embedder: Embedder) -> dict[str, Any]:
    """What an actor needs to open its own session: the registered name, the identity and the ONNX bytes."""
    if embedder.onnx_path is None:
        raise FashionrecError("the Ray engine needs a model loaded from its ONNX file")
    return {"name": embedder.name, "model_id": embedder.model_id, "onnx": embedder.onnx_path.read_bytes()}


@contextlib.contextmanager
def _connected(ray: Any, address: str | None) -> Iterator[None]:
    """Use the Ray this process is already connected to; else connect to `address`, or start a local Ray
    (one worker slot per core) and stop it when the run ends."""
    if ray.is_initialized():
        yield
        return
    # Ray prints cluster events (a worker died, a task is retried) on stdout; they are diagnostics, and stdout
    # may be carrying --json to another program.
    with contextlib.redirect_stdout(sys.stderr):
        yield from _started(ray, address)


def _started(ray: Any, address: str | None) -> Iterator[None]:
    """Connect to `address` or start a local Ray for the duration of the block."""
    if address:
        _require_listening(address)
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        hint = " (a cluster with token authentication also needs RAY_AUTH_MODE=token and its token here)" if address else ""
        raise FashionrecError(f"cannot reach the Ray cluster at {address or 'a new local Ray'}: {exc}{hint}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _require_listening(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when nothing listens at a host:port address (Ray itself keeps retrying)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms: Ray resolves them
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise FashionrecError(f"cannot reach the Ray cluster at {address}: nothing answers there ({exc})") from None


def _ray() -> Any:
    """The ray module, or a clear error."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise FashionrecError("--engine ray needs Ray Data: pip install 'fashionrec[scale]'") from None
    return ray
