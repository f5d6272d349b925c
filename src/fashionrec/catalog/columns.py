"""Every product's metadata held column by column: each distinct value once, a 4-byte code per product and column.

Why: held as one dict a product (as the store's JSON decodes), the sample's metadata took 1.3 kB a product in a
snapshot, 1.3 GB at 1M products, most of it the same few hundred strings ("Men", "Apparel", "Summer") over and over.
A product's metadata is rebuilt as a dict when it is shown (a handful a query).
"""

from __future__ import annotations

import array
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

MISSING = -1  # the code of a column a product's metadata does not have (its dict has no such key)

Row = Mapping[str, "str | None"]


class MetadataTable(Sequence[dict]):
    """Row-aligned metadata: `table[row]` is that product's dict (a new one each time), `column(name)` one column.

    Example:
        >>> table = MetadataTable.from_rows([{"gender": "Men"}, {}, {"gender": "Men", "usage": None}])
        >>> table[2], table[1], table.column("gender")
        ({'gender': 'Men', 'usage': None}, {}, ['Men', None, 'Men'])
    """

    def __init__(self, names: list[str], codes: list[np.ndarray], values: list[list[str | None]],
                 rows: int = 0) -> None:
        self._names = names  # columns, in the order first seen
        self._codes = codes  # per column: (n,) int32 index into its values, MISSING where the key is absent
        self._values = values  # per column: its distinct values
        self._rows = len(codes[0]) if codes else rows

    @classmethod
    def from_rows(cls, rows: Iterable[Row]) -> MetadataTable:
        """Build from dicts as they come (a cursor's rows, decoded one by one: never all at once); a product without
        metadata is an empty dict."""
        names: list[str] = []
        columns: dict[str, int] = {}
        codes: list[array.array] = []
        values: list[list[str | None]] = []
        indexes: list[dict[str | None, int]] = []  # per column: value -> code, while building
        seen = 0
        for row in rows:
            for name, value in row.items():
                column = columns.get(name)
                if column is None:
                    column = columns[name] = len(names)
                    names.append(name)
                    codes.append(array.array("i"))
                    values.append([])
                    indexes.append({})
                key = value if value is None or isinstance(value, str) else repr(value)  # text, as stored; else odd
                code = indexes[column].get(key)
                if code is None:
                    code = indexes[column][key] = len(values[column])
                    values[column].append(value)
                column_codes = codes[column]
                if len(column_codes) < seen:  # the rows before without this key
                    column_codes.extend(array.array("i", [MISSING]) * (seen - len(column_codes)))
                column_codes.append(code)
            seen += 1
        return cls(names, [_padded(column, seen) for column in codes], values, seen)

    def __len__(self) -> int:
        return self._rows

    def __getitem__(self, row: int) -> dict:  # type: ignore[override]
        if not -self._rows <= row < self._rows:
            raise IndexError(row)
        return {name: values[int(codes[row])] for name, codes, values in zip(self._names, self._codes, self._values)
                if codes[row] != MISSING}

    def __iter__(self) -> Iterator[dict]:
        return (self[row] for row in range(self._rows))

    def column(self, name: str) -> list[str | None]:
        """One column for every product, row-aligned; None where a product does not have it."""
        if name not in self._names:
            return [None] * self._rows
        column = self._names.index(name)
        lookup = np.empty(len(self._values[column]) + 1, dtype=object)
        lookup[:-1] = self._values[column]
        lookup[-1] = None  # MISSING (-1) indexes the last entry
        return lookup[self._codes[column]].tolist()


def _padded(codes: array.array, total: int) -> np.ndarray:
    """A column's codes as int32, MISSING for the rows after its last value."""
    out = np.full(total, MISSING, dtype=np.int32)
    if len(codes):
        out[:len(codes)] = np.frombuffer(codes, dtype=np.int32)
    return out
