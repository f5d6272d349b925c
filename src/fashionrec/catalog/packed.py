"""Columns of a snapshot held as arrays, not one Python object a product: what lets a 1M-product server fit in 1 GB.

A list of 1M short texts costs a str object each (49 bytes and the text) and a list slot (8); an int above 256 costs
28 bytes and a slot. Here texts are one UTF-8 buffer and an end offset each (the text's bytes and 8), content hashes
are 32 raw bytes each (not 64 hex characters in a str: 121), and numbers are numpy arrays. Each column is a read-only
`Sequence`, so callers index, slice and iterate it as they did the list (`docs/PERFORMANCE.md` section 10).
"""

from __future__ import annotations

import operator
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from itertools import accumulate, pairwise
from typing import overload

import numpy as np


class _Column(Sequence):
    """A read-only column: equal to any sequence of the same values (as the list it replaces was), unhashable."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(mine == theirs for mine, theirs in zip(self, other))


class PackedTexts(_Column):
    """Texts (or None) in one UTF-8 buffer, each found by its end offset; built with `append`, then `seal`d before it
    is read (once, in the thread that built it: a snapshot's columns are sealed before any query sees them)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._ends = array("q")
        self._none: list[int] = []  # rows holding None (few: most columns have none)
        self._sealed: tuple[bytes, np.ndarray, np.ndarray] | None = None

    def append(self, text: str | None) -> None:
        if self._sealed is not None:
            raise TypeError("a sealed column is read-only")
        if text is None:
            self._none.append(len(self._ends))
        else:
            self._buffer += text.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._buffer))

    def extend(self, texts: Sequence[str | None]) -> None:
        """`append` each of `texts`, in one join (a batch of rows read at once: not a Python call a text, 3M of them
        for the three text columns of 1M products)."""
        if self._sealed is not None:
            raise TypeError("a sealed column is read-only")
        texts = texts if isinstance(texts, (list, tuple)) else list(texts)  # read twice below
        first = len(self._ends)
        encoded = [b"" if text is None else text.encode("utf-8", "surrogatepass") for text in texts]
        self._none.extend([first + row for row, text in enumerate(texts) if text is None])
        lengths = accumulate(map(len, encoded), initial=len(self._buffer))
        next(lengths)  # the buffer's end before these texts
        self._ends.extend(lengths)
        self._buffer += b"".join(encoded)

    def seal(self) -> PackedTexts:
        """End the appends: the buffer and offsets become read-only arrays (the builder's slack is freed)."""
        if self._sealed is None:
            ends = np.frombuffer(self._ends, dtype=np.int64).copy()
            none = np.zeros(len(ends), dtype=bool)
            none[self._none] = True
            self._sealed = (bytes(self._buffer), ends, none)
            self._buffer, self._ends, self._none = bytearray(), array("q"), []
        return self

    def __len__(self) -> int:
        return len(self._sealed[1]) if self._sealed is not None else len(self._ends)

    def _read(self) -> tuple[bytes, np.ndarray, np.ndarray]:
        if self._sealed is None:
            raise TypeError("a column is read once sealed (seal() ends its appends)")
        return self._sealed

    @overload
    def __getitem__(self, index: int) -> str | None: ...

    @overload
    def __getitem__(self, index: slice) -> list[str | None]: ...

    def __getitem__(self, index):
        buffer, ends, none = self._read()
        if isinstance(index, slice):
            return [self[row] for row in range(*index.indices(len(ends)))]
        row = operator.index(index)  # an int (or numpy int), as a list takes: not an array, nor a float
        row = row + len(ends) if row < 0 else row
        if not 0 <= row < len(ends):
            raise IndexError(f"row {index} of {len(ends)}")
        if none[row]:
            return None
        start = int(ends[row - 1]) if row else 0
        return buffer[start:int(ends[row])].decode("utf-8", "surrogatepass")

    def __iter__(self) -> Iterator[str | None]:
        buffer, ends, none = self._read()
        start = 0
        for end, missing in zip(ends.tolist(), none.tolist()):
            yield None if missing else buffer[start:end].decode("utf-8", "surrogatepass")
            start = end

    def nbytes(self) -> int:
        """Bytes held (the buffer and the offsets)."""
        buffer, ends, none = self._read()
        return len(buffer) + ends.nbytes + none.nbytes


class HexDigests(_Column):
    """Lower-case hex digests of one length held as raw bytes (32 a SHA-256, not a 113-byte str)."""

    def __init__(self, raw: np.ndarray) -> None:
        self._raw = raw  # (rows, digest bytes) uint8

    @staticmethod
    def pack(texts: PackedTexts) -> Sequence[str]:
        """`texts` as raw digests when every one is lower-case hex of one length, else `texts` unchanged (a catalog
        whose hashes are of another form loses nothing)."""
        buffer, ends, none = texts.seal()._sealed
        width = int(ends[0]) if len(ends) else 0
        if (not width or width % 2 or none.any() or len(buffer) != width * len(ends)
                or not np.array_equal(np.diff(ends, prepend=0), np.full(len(ends), width))):
            return texts
        try:
            raw = bytes.fromhex(buffer.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return texts
        if raw.hex().encode("ascii") != buffer:  # upper-case letters, spaces: kept as they were written
            return texts
        return HexDigests(np.frombuffer(raw, dtype=np.uint8).reshape(len(ends), width // 2))

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [row.tobytes().hex() for row in self._raw[index]]
        return self._raw[operator.index(index)].tobytes().hex()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HexDigests):
            return np.array_equal(self._raw, other._raw)
        return super().__eq__(other)

    def __iter__(self) -> Iterator[str]:
        width = self._raw.shape[1] * 2
        for start in range(0, len(self._raw), 65_536):  # a block's hex at once, then cut: not a call a row
            text = self._raw[start:start + 65_536].tobytes().hex()
            yield from (text[at:at + width] for at in range(0, len(text), width))

    def nbytes(self) -> int:
        return self._raw.nbytes

    def smallest_distinct(self, size: int) -> np.ndarray:
        """Rows of the `size` smallest distinct digests, each digest's first row, in digest order: what
        `recommend.answers.sample_positions` asks, without a str a row (a dict of 1M digests held 200 MB)."""
        words = self._raw.view(">u8") if self._raw.shape[1] % 8 == 0 else None
        if words is None:
            order = sorted(range(len(self)), key=lambda row: (self._raw[row].tobytes(), row))
        else:  # lexsort's last key sorts first; stable, so equal digests keep their rows' order
            order = np.lexsort([words[:, column] for column in reversed(range(words.shape[1]))]).tolist()
        chosen, last = [], None
        for row in order:
            digest = self._raw[row].tobytes()
            if digest != last:
                chosen.append(row)
                last = digest
                if len(chosen) == size:
                    break
        return np.asarray(chosen, dtype=np.int64)


def int_column(values: array) -> np.ndarray:
    """An `array` of ints collected row by row as a read-only numpy column (8 bytes a row, no int objects)."""
    column = np.frombuffer(values, dtype=np.int64).copy()
    column.flags.writeable = False
    return column


class IdRows(Mapping):
    """{id: row} of a snapshot's ids, found by bisection when they are sorted (a snapshot's are: the store reads them
    in id order, and SQLite's byte order of UTF-8 is Python's order of str), else through a dict. A dict of 1M ids
    holds about 85 MB (its table, and an int object a row); bisection holds nothing, at about a microsecond a look-up.
    """

    def __init__(self, ids: Sequence[str]) -> None:
        self._ids = ids
        ordered = all(isinstance(product_id, str) for product_id in ids) and all(
            before < after for before, after in pairwise(ids))
        self._rows = None if ordered else {product_id: row for row, product_id in enumerate(ids)}

    def __getitem__(self, product_id: object) -> int:
        if self._rows is not None:
            return self._rows[product_id]
        if isinstance(product_id, str):
            row = bisect_left(self._ids, product_id)
            if row < len(self._ids) and self._ids[row] == product_id:
                return row
        raise KeyError(product_id)

    def __contains__(self, product_id: object) -> bool:
        try:
            self[product_id]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)
