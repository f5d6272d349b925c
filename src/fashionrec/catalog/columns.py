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

import numpy as np

MISSING = -1  # the code of a column a product's metadata does not have (its dict has no such key)

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
        names: list[str] = []
        columns: dict[str, int] = {}
        values: list[list] = []
        indexes: list[dict] = []  # per column: value -> code, while building
        shapes: dict[tuple[int, ...], int] = {}
        codes, row_shapes = array.array("i"), array.array("i")  # codes: row-major, a row as wide as the columns then
        widths = array.array("i")  # each row's width in `codes`
        for row in rows:
            shape = []
            for name, value in row.items():
                column = columns.get(name)
                if column is None:
                    column = columns[name] = len(names)
                    names.append(name)
                    values.append([])
                    indexes.append({})
                key = _value_key(value)
                code = indexes[column].get(key)
                if code is None:
                    code = indexes[column][key] = len(values[column])
                    values[column].append(value)
                shape.append((column, code))
            widths.append(len(names))
            codes.extend(array.array("i", [MISSING]) * len(names))
            for column, code in shape:
                codes[len(codes) - len(names) + column] = code
            row_shapes.append(shapes.setdefault(tuple(column for column, _ in shape), len(shapes)))
        return cls(names, _matrix(codes, widths, len(names)), values, list(shapes), _int32(row_shapes))

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


def _matrix(codes: array.array, widths: array.array, columns: int) -> np.ndarray:
    """Rows of codes, each as wide as the columns known when it was read, as one (n, columns) int32 matrix."""
    row_widths = _int32(widths)
    flat = _int32(codes)
    starts = np.concatenate([[0], np.cumsum(row_widths)[:-1]]).astype(np.int64)
    out = np.full((len(row_widths), columns), MISSING, dtype=np.int32)
    for width in np.unique(row_widths[row_widths > 0]).tolist():  # the rows of one width at a time
        rows = np.flatnonzero(row_widths == width)
        out[rows, :width] = flat[starts[rows][:, None] + np.arange(width)]
    return out


def _int32(values: array.array) -> np.ndarray:
    return np.frombuffer(values, dtype=np.int32) if len(values) else np.zeros(0, dtype=np.int32)
