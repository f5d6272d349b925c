"""Progress of an indexing run: a bar on a terminal, plain lines now and then in a log."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from tqdm import tqdm

log = logging.getLogger(__name__)


LOG_PROGRESS_STEP = 0.1  # without a terminal, a progress line for each tenth of the run...


LOG_PROGRESS_SECONDS = 30.0  # ...or after this long without one, whichever comes first


def progress_bar(total: int, progress: bool) -> tqdm | LogProgress:
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
