"""Freed heap memory handed back to the system after a large short-lived load (a snapshot of the catalog read).

Why: reading a snapshot decodes every product's metadata into a short-lived dict. Freed, their memory stays with
the process: glibc keeps it in its heap, among the objects the snapshot keeps. At 1M products a process held 478 MB
after `Catalog.open`, 428 MB once `malloc_trim` had run (docs/PERFORMANCE.md section 10), and a live server opens
every new snapshot. `malloc_trim` gives the free pages back; without glibc (macOS, Windows, musl) nothing is done.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (AttributeError, OSError, TypeError):  # not glibc; or no C library to load by name (Windows)
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_freed_memory() -> bool:
    """Give the C heap's free pages back to the system; whether it could be asked (glibc only)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
