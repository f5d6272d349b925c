"""The float file beside a compact index: a `.npy` of float32 rows, read a few rows at a time without being mapped.

Why not a memory map: the kernel's fault-around then counts most of the file (2.4 GB at 1M products) in the process's
resident memory; a query reads its 100 candidates' rows with `preadv`, straight into the array it returns.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from fashionrec.errors import FashionrecError

HASH_CHUNK = 1 << 24


class FloatFile:
    """A `.npy` file of float32 rows, read a run of adjacent rows at a time (`_read_rows`)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)  # the header, the digest and the rows are all read through it
        try:
            with os.fdopen(os.dup(self._fd), "rb") as handle:
                version = np.lib.format.read_magic(handle)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(handle)
                self.offset = handle.tell()
            if fortran or dtype != np.dtype("<f4") or len(shape) != 2:
                raise FashionrecError(f"{path} is not a file of float32 rows")
        except BaseException:
            self.close()
            raise
        self.shape = tuple(shape)

    def digest(self) -> str:
        """The SHA-256 of the whole file, read through this file's own descriptor."""
        digest, offset = hashlib.sha256(), 0
        while chunk := os.pread(self._fd, HASH_CHUNK, offset):
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()

    def rows(self, positions: np.ndarray) -> np.ndarray:
        return _read_rows(self._fd, self.offset, self.shape[1], positions)

    def close(self) -> None:
        if getattr(self, "_fd", -1) >= 0:  # (also for a file refused in __init__, before it was opened)
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:  # an index swapped out is dropped, not closed (queries may still be reading it)
        self.close()


def _read_rows(fd: int, offset: int, dim: int, positions: np.ndarray) -> np.ndarray:
    """Rows `positions` (any order) of a float32 file at `offset`, one `preadv` straight into the result per run of
    adjacent rows."""
    order = np.argsort(positions, kind="stable")
    wanted = positions[order]
    out = np.empty((len(wanted), dim), dtype=np.float32)
    if not len(wanted):
        return out
    row_bytes = dim * 4
    starts = np.flatnonzero(np.r_[True, np.diff(wanted) != 1])
    into = memoryview(out).cast("B")
    for start, end in zip(starts.tolist(), [*starts[1:].tolist(), len(wanted)]):
        size = (end - start) * row_bytes
        if _read_into(fd, into[start * row_bytes:end * row_bytes], offset + int(wanted[start]) * row_bytes) != size:
            raise FashionrecError("the compact index's floats file is shorter than its record says")
    if np.array_equal(order, np.arange(len(order))):
        return out
    result = np.empty_like(out)
    result[order] = out
    return result


def _read_into(fd: int, into: memoryview, offset: int) -> int:
    """`os.preadv` into `into` (no copy) where the system has it, else `os.pread` and a copy; the bytes read."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [into], offset)
    data = os.pread(fd, len(into), offset)
    into[:len(data)] = data
    return len(data)


class Hashed:
    """A file handle that hashes what is written through it."""

    def __init__(self, handle, digest) -> None:
        self._handle, self._digest = handle, digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._handle.write(data)


def file_digest(handle) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
