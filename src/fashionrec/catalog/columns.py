"""Every product's metadata held column by column: each distinct value once, a 4-byte code per product and column.

Why: held as one dict a product (as the store's JSON decodes), the sample's metadata took 1.3 kB a product in a
snapshot, 1.3 GB at 1M products, most of it the same few hundred strings ("Men", "Apparel", "Summer") over and over.
A product's metadata is rebuilt as a dict when it is shown (a handful a query), with its keys in its own order.
"""

from __future__ import annotations

import array
import copy
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice

import numpy as np

MISSING = -1  # the code of a column a product's metadata does not have (its dict has no such key)
BATCH_ROWS = 512  # rows decoded and coded at once (more held the freed memory of their dicts in the process)
_ABSENT = object()  # a row's value in a column its dict does not have, while building

Row = Mapping[str, "str | None"]


class MetadataColumns(Sequence[dict]):
    """Row-aligned metadata: `table[row]` is that product's dict (a new one each time), `column(name)` one column.

    Example:
        >>> table = MetadataColumns.from_rows([{"gender": "Men"}, {}, {"usage": None, "gender": "Men"}])
        >>> table[2], table[1], table.column("gender")
        ({'usage': None, 'gender': 'Men'}, {}, ['Men', None, 'Men'])
    """

    def __init__(self, names: list[str], codes: np.ndarray, values: list[list], shapes: list[tuple[int, ...]],
                 row_shapes: np.ndarray) -> None:
        self._names = names  # columns, in the order first seen
        self._codes = codes  # (n, columns) int32: each product's code in each column's values, MISSING if absent
        self._values = values  # per column: its distinct values
        self._shapes = shapes  # each distinct key order: the columns of a product's dict, in its order
        self._row_shapes = row_shapes  # (n,) int32: each product's key order, in `shapes`

    @classmethod
    def from_rows(cls, rows: Iterable[Row]) -> MetadataColumns:
        """Build from dicts as they come (a cursor's rows, decoded one by one: never all at once); a product without
        metadata is an empty dict."""
        rows = iter(rows)
        return cls.from_batches(iter(lambda: list(islice(rows, BATCH_ROWS)), []))

    @classmethod
    def from_batches(cls, batches: Iterable[list[Row]]) -> MetadataColumns:
        """Build from lists of rows (a cursor's rows a batch at a time, each batch's JSON decoded at once): each
        column of a batch coded in one pass (a row at a time, the rows of 1M products took 20 s)."""
        builder = _Builder()
        for batch in batches:
            builder.add(batch)
        return builder.build()

    def __len__(self) -> int:
        return len(self._row_shapes)

    def __getitem__(self, row: int) -> dict:  # type: ignore[override]
        if not -len(self) <= row < len(self):
            raise IndexError(row)
        codes = self._codes[row].tolist()
        return {self._names[column]: _fresh(self._values[column][codes[column]])
                for column in self._shapes[self._row_shapes[row]]}

    def __iter__(self) -> Iterator[dict]:
        return (self[row] for row in range(len(self)))

    def column(self, name: str) -> list:
        """One column for every product, row-aligned; None where a product does not have it."""
        if name not in self._names or not len(self):
            return [None] * len(self)
        column = self._names.index(name)
        lookup = np.empty(len(self._values[column]) + 1, dtype=object)
        lookup[:-1] = self._values[column]
        lookup[-1] = None  # MISSING (-1) indexes the last entry
        return [_fresh(value) for value in lookup[self._codes[:, column]].tolist()]

    def json_texts(self) -> Iterator[str]:
        """Each product's metadata as `json.dumps(row, sort_keys=True, ensure_ascii=False)` writes it, from each
        distinct value's text made once and joined a column at a time over a block of rows (what `catalog.derived`
        hashes: at 1M rows, dumping a dict a row took several seconds at every snapshot, and joining a row at a time
        3 s)."""
        first, later = [], []  # per column: each value's '"name": value' text, as the first key and after another
        for name, column in zip(self._names, self._values):
            texts = [f"{_json_text(name)}: {_json_text(value)}" for value in column]
            first.append(np.array(texts, dtype=object))
            later.append(np.array([", " + text for text in texts], dtype=object))
        order = [sorted(shape, key=lambda column: self._names[column]) for shape in self._shapes]
        for start in range(0, len(self), 65_536):
            codes, shapes = self._codes[start:start + 65_536], self._row_shapes[start:start + 65_536]
            block = np.empty(len(codes), dtype=object)
            for shape in np.unique(shapes).tolist():
                rows = np.flatnonzero(shapes == shape)
                text = np.full(len(rows), "{", dtype=object)
                for place, column in enumerate(order[shape]):
                    text = text + (later if place else first)[column][codes[rows, column]]
                block[rows] = text + "}"
            yield from block.tolist()


class _Builder:
    """`MetadataColumns` being built, a batch of rows at a time."""

    def __init__(self) -> None:
        self.names: list[str] = []  # columns, in the order first seen
        self.columns: dict[str, int] = {}
        self.values: list[list] = []  # per column: its distinct values, in the order first seen
        self.indexes: list[dict] = []  # per column: value key -> code (a key not in a row: MISSING)
        self.shapes: dict[tuple[int, ...], int] = {}  # each distinct key order (as columns) -> its number
        self.shape_of_keys: dict[tuple[str, ...], int] = {}  # the same, by the keys' names
        self.blocks: list[np.ndarray] = []  # per batch: (rows, columns known then) int32 codes
        self.row_shapes = array.array("i")

    def add(self, rows: list[Row]) -> None:
        keys = [tuple(row) for row in rows]
        present: dict[int, None] = {}  # the columns some row of this batch has
        for names in dict.fromkeys(keys):
            if names not in self.shape_of_keys:
                shape = tuple(self._column(name) for name in names)
                self.shape_of_keys[names] = self.shapes.setdefault(shape, len(self.shapes))
            present.update(dict.fromkeys(self.columns[name] for name in names))
        self.row_shapes.extend([self.shape_of_keys[names] for names in keys])
        block = np.full((len(rows), len(self.names)), MISSING, dtype=np.int32)
        for column in present:
            block[:, column] = self._codes(column, [row.get(self.names[column], _ABSENT) for row in rows])
        self.blocks.append(block)

    def _column(self, name: str) -> int:
        if name not in self.columns:
            self.columns[name] = len(self.names)
            self.names.append(name)
            self.values.append([])
            self.indexes.append({_ABSENT: MISSING})
        return self.columns[name]

    def _codes(self, column: int, row_values: list) -> list[int]:
        """Each value's code in `column`, new values added in the order first seen."""
        index, values = self.indexes[column], self.values[column]
        keys = [value if value is None or type(value) is str or value is _ABSENT else _value_key(value)
                for value in row_values]
        fresh = [key for key in dict.fromkeys(keys) if key not in index]
        if fresh:
            first: dict = {}  # a value that is not text, as first seen (its key is its type and JSON)
            if any(type(key) is tuple for key in fresh):
                for key, value in zip(keys, row_values):
                    first.setdefault(key, value)
            for key in fresh:
                index[key] = len(values)
                values.append(first.get(key, key))
        return list(map(index.__getitem__, keys))

    def build(self) -> MetadataColumns:
        codes = np.full((sum(len(block) for block in self.blocks), len(self.names)), MISSING, dtype=np.int32)
        start = 0
        for block in self.blocks:
            codes[start:start + len(block), :block.shape[1]] = block
            start += len(block)
        return MetadataColumns(self.names, codes, self.values, list(self.shapes), _int32(self.row_shapes))


def _json_text(value: object) -> str:
    """`json.dumps(value, sort_keys=True, ensure_ascii=False)`; a text through the encoder's own C function, which
    `dumps` ends in (at 1M products, `dumps` made a new encoder for each of 1.7M distinct values: 3 s)."""
    if type(value) is str:
        return json.encoder.encode_basestring(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _value_key(value: object) -> object:
    """A value's key among its column's values: text (or None) itself; anything else (an old catalog's number or
    list) by its type and text, so that 2012 and "2012", or True and 1, never share a code."""
    if value is None or isinstance(value, str):
        return value
    return (type(value).__name__, json.dumps(value, sort_keys=True))


def _fresh(value: object) -> object:
    """A value as handed out: text as it is; an old catalog's list or dict copied, so no caller changes another
    product's metadata through it."""
    return value if value is None or isinstance(value, (str, int, float)) else copy.deepcopy(value)


def _int32(values: array.array) -> np.ndarray:
    return np.frombuffer(values, dtype=np.int32) if len(values) else np.zeros(0, dtype=np.int32)
