"""memory.py: freed heap memory goes back to the system when asked (glibc), and asking is harmless elsewhere."""

from __future__ import annotations

import platform

import pytest

from fashionrec import memory
from fashionrec.memory import release_freed_memory


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0]) / 1024


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's: elsewhere nothing is asked")
def test_freed_heap_memory_goes_back_to_the_system() -> None:
    blocks = [bytearray(2000) for _ in range(100_000)]  # 200 MB from the C heap (above pymalloc's 512 bytes)
    kept = blocks[::100]  # a few kept among them, as a snapshot's objects are among its load's garbage
    del blocks
    before = resident_mb()
    assert release_freed_memory()
    assert before - resident_mb() > 100, "the freed blocks stayed resident"
    assert len(kept) == 1000


def test_without_glibc_nothing_is_asked_and_nothing_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS and musl have no `malloc_trim`; Windows has no C library to load by name."""
    for refusal in (AttributeError("malloc_trim"), TypeError("no name"), OSError("no library")):
        def refuse(*args: object, error: Exception = refusal) -> None:
            raise error
        monkeypatch.setattr(memory.ctypes, "CDLL", refuse)
        memory._malloc_trim.cache_clear()
        assert release_freed_memory() is False
    memory._malloc_trim.cache_clear()  # the real library again for the next caller
