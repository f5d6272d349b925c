"""models/shared_runs: concurrent callers share model runs, each gets exactly its own rows, errors reach each."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fashionrec.models.shared_runs import SharedRuns
from tests.conftest import draw_product


class _Slow:
    """The real embedder, each model call held 50 ms longer, so that callers pile up behind a run; records the
    thread and batch size of every call."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self.calls: list[tuple[int, int]] = []

    def __getattr__(self, name):
        return getattr(self._embedder, name)

    def _slow(self, method, batch):
        self.calls.append((threading.get_ident(), len(batch)))
        time.sleep(0.05)
        return method(batch)

    def embed_batch(self, batch):
        return self._slow(self._embedder.embed_batch, batch)

    def embed_and_locate(self, batch):
        return self._slow(self._embedder.embed_and_locate, batch)


def _inputs(lite0, count: int) -> list[np.ndarray]:
    """Batches of 1 to 3 prepared drawn products."""
    return [np.stack([lite0.prepare(draw_product(10 * i + j, (60, 80))) for j in range(1 + i % 3)])
            for i in range(count)]


def test_concurrent_callers_share_runs_and_get_their_own_rows_bit_for_bit(lite0) -> None:
    slow = _Slow(lite0)
    shared = SharedRuns(slow, max_batch=8)
    batches = _inputs(lite0, 12)
    expected = [lite0.embed_and_locate(batch) for batch in batches]
    with ThreadPoolExecutor(12) as pool:
        got = list(pool.map(lambda i: (shared.embed_and_locate(batches[i]) if i % 2
                                       else (shared.embed_batch(batches[i]),)), range(12)))
    for i, (want, have) in enumerate(zip(expected, got)):
        for w, h in zip(want, have):
            np.testing.assert_array_equal(w, h)
        assert len(have) == (3 if i % 2 else 1)
    assert shared.images == sum(len(b) for b in batches) and shared.runs < len(batches)  # some runs were shared
    assert max(size for _, size in slow.calls) <= 8


def test_a_lone_caller_runs_on_its_own_thread_at_once(lite0) -> None:
    slow = _Slow(lite0)
    shared = SharedRuns(slow, max_batch=8)
    batch = _inputs(lite0, 1)[0]
    np.testing.assert_array_equal(shared.embed_batch(batch), lite0.embed_batch(batch))
    assert slow.calls == [(threading.get_ident(), len(batch))]


def test_a_failed_run_reaches_every_caller_in_it_and_a_bad_shape_fails_alone(lite0) -> None:
    class Broken(_Slow):
        def embed_batch(self, batch):
            self._slow(lambda b: b, batch)
            raise RuntimeError("the model broke")

    shared = SharedRuns(Broken(lite0), max_batch=8)
    batches = _inputs(lite0, 4)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(shared.embed_batch, batch) for batch in batches]
        for future in futures:
            with pytest.raises(RuntimeError, match="the model broke"):
                future.result()
    with pytest.raises(ValueError, match="expected a batch of shape"):
        SharedRuns(lite0, 8).embed_batch(np.zeros((1, 3, 10, 10), dtype=np.float32))
