"""What runs reader -> embedder over the files to index: `LocalEngine` in this process (Ray: `scale.ray_engine`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from fashionrec.catalog.rows import FileStamp, SkippedFile
from fashionrec.imaging.colour import ColourDescriptor
from fashionrec.index.plan import ImageFile
from fashionrec.index.read import ReadResult, read_image
from fashionrec.models.embed import Embedder

T = TypeVar("T")


R = TypeVar("R")


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
