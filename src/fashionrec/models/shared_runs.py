"""Concurrent queries share model runs: what arrives while the model is busy goes through it together, next.

A server answers each request on its own thread; run one by one, eight concurrent photos make eight model calls at
batch 1, while the model does about twice the images per second at batch 16. `SharedRuns` wraps an `Embedder`: a
caller that finds the model idle runs its own images at once, on its own thread (a lone query waits for nothing and
hops to no other thread); callers that arrive while a run is on queue up, and the next of them takes the whole queue
(up to `max_batch` images) into one run and hands each its rows. This is the dynamic batching of inference servers,
without their fixed wait: the batch is whatever piled up during the previous run, so it grows with the load.

Rows do not depend on what else is in the batch (`Embedder.embed_batch`, checked bit for bit in the tests), so an
answer is the same whoever it shared a run with.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fashionrec.models.embed import Embedder


@dataclass
class _Request:
    """One caller's images, whether it wants the garment maps too, and (once run) its outputs or error."""

    batch: np.ndarray
    locate: bool
    outputs: tuple[np.ndarray, ...] | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class SharedRuns:
    """An `Embedder` whose calls from many threads share model runs (see the module). Everything else (spec, name,
    model_id, prepare, ...) is the wrapped embedder's.

    `runs` and `images` count the model calls made and the images they took (what the tests and benchmarks read).
    """

    def __init__(self, embedder: Embedder, max_batch: int) -> None:
        self._embedder = embedder
        self.max_batch = max(1, max_batch)
        self._queue: deque[_Request] = deque()
        self._ready = threading.Condition()
        self._running = False
        self.runs = 0
        self.images = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)

    @property
    def wrapped(self) -> Embedder:
        """The embedder whose model runs are shared."""
        return self._embedder

    def embed_batch(self, batch: np.ndarray) -> np.ndarray:
        """As `Embedder.embed_batch`, in a run shared with concurrent callers."""
        if len(batch) == 0:
            return self._embedder.embed_batch(batch)
        return self._call(batch, locate=False)[0]

    def embed_and_locate(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As `Embedder.embed_and_locate`, in a run shared with concurrent callers."""
        if len(batch) == 0 or not self._embedder.locates:
            return self._embedder.embed_and_locate(batch)  # its own errors, unshared
        vectors, maps, log_norm = self._call(batch, locate=True)
        return vectors, maps, log_norm

    def _call(self, batch: np.ndarray, locate: bool) -> tuple[np.ndarray, ...]:
        """Queue the images; run the queue whenever the model is idle; return this caller's rows."""
        side = self._embedder.spec.input_size
        if batch.ndim != 4 or batch.shape[1:] != (3, side, side):  # refused alone, before it could fail a shared run
            raise ValueError(f"expected a batch of shape (N, 3, {side}, {side}), got {batch.shape}")
        request = _Request(np.ascontiguousarray(batch, dtype=np.float32), locate)
        with self._ready:
            self._queue.append(request)
        while True:
            with self._ready:
                while self._running and not request.done:
                    self._ready.wait()
                if request.done:
                    break
                self._running = True
                taken = self._take()
            try:
                self._run(taken)
            finally:
                with self._ready:
                    self._running = False
                    self._ready.notify_all()
        if request.error is not None:
            raise request.error
        assert request.outputs is not None
        return request.outputs

    def _take(self) -> list[_Request]:
        """The queue's first requests, up to `max_batch` images (always at least one request). Lock held."""
        taken = [self._queue.popleft()]
        rows = len(taken[0].batch)
        while self._queue and rows + len(self._queue[0].batch) <= self.max_batch:
            rows += len(self._queue[0].batch)
            taken.append(self._queue.popleft())
        return taken

    def _run(self, taken: list[_Request]) -> None:
        """One model call for the taken requests; each gets its rows of every output (or the call's error)."""
        batch = taken[0].batch if len(taken) == 1 else np.concatenate([request.batch for request in taken])
        locate = any(request.locate for request in taken)
        try:
            outputs = self._embedder.embed_and_locate(batch) if locate else (self._embedder.embed_batch(batch),)
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the run, raised on its own thread
            for request in taken:
                request.error, request.done = exc, True
            return
        self.runs += 1
        self.images += len(batch)
        start = 0
        for request in taken:
            end = start + len(request.batch)
            rows = tuple(output[start:end] for output in outputs)
            request.outputs, request.done = (rows if request.locate else rows[:1]), True
            start = end
