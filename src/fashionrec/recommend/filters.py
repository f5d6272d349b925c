"""Metadata filters: which catalog rows a query may return, and what to tell a shopper when filters match nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.errors import FilterError
from fashionrec.search.backend import Restriction

VALUES_NAMED = 30  # a notice names at most this many of a column's values

Filters = Mapping[str, str | Sequence[str]]
"""Metadata filters: {column: value or values}. Values of one column are OR-ed, columns AND-ed;
matching ignores case."""


def parse_filters(expressions: Iterable[str]) -> dict[str, list[str]]:
    """Parse `column=value` strings (as given to `--where`) into filters.

    Raises:
        FilterError: an expression has no `=` or an empty column name.

    Example:
        >>> parse_filters(["gender=Men", "articleType=Tshirts", "gender=Boys"])
        {'gender': ['Men', 'Boys'], 'articleType': ['Tshirts']}
    """
    filters: dict[str, list[str]] = {}
    for expression in expressions:
        column, sep, value = expression.partition("=")
        if not sep or not column.strip():
            raise FilterError(f"a filter must look like column=value (e.g. gender=Men), got {expression!r}")
        filters.setdefault(column.strip(), []).append(value.strip())
    return filters


class MetadataFilters:
    """The filters of one catalog snapshot: columns lower-cased once, masks per query. Values of one column are
    OR-ed, columns AND-ed, case ignored."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._lowered_columns: dict[str, np.ndarray] = {}
        self._known_values: dict[str, frozenset[str]] = {}  # a column's lower-cased values, for notices

    def allowed(self, where: Filters | None, exclude: int | None) -> Restriction:
        """The rows a query may return: a mask over the catalog, and the lower-cased filters it came from."""
        if not where and exclude is None:
            return Restriction()
        allowed = np.ones(len(self._catalog), dtype=bool)
        lowered: dict[str, tuple[str, ...]] = {}
        for column, values in (where or {}).items():
            wanted = [values] if isinstance(values, str) else list(values)
            lowered[column] = tuple(str(v).lower() for v in wanted)
            allowed &= np.isin(self._lowered(column), list(lowered[column]))
        if exclude is not None:
            allowed[exclude] = False
        return Restriction(allowed, lowered, () if exclude is None else (exclude,))

    def present(self, column: str, values: Sequence[str]) -> list[str]:
        """Those of `values` that some product has in `column` (case ignored); none when the column is absent."""
        if column not in self._catalog.columns:
            return []
        self._lowered(column)  # fills the column's known values once a snapshot
        return [value for value in values if value.lower() in self._known_values[column]]

    def notice(self, where: Filters | None, allowed: Restriction) -> str | None:
        """What a shopper must hear when filters matched nothing: values no product has (with the values there
        are), or filters that exist alone but together allow no product (or none but the query's own)."""
        if not where:
            return None
        unknown = []
        for column, values in where.items():
            known = self._known_values[column]  # filled by allowed() for every filtered column
            missing = [str(v) for v in ([values] if isinstance(values, str) else values) if str(v).lower() not in known]
            if missing:
                unknown.append(f"no product has {' or '.join(f'{column}={v}' for v in missing)}; its values are: "
                               f"{self._values_named(column)}")
        if unknown:
            return "; ".join(unknown)
        if allowed.count(len(self._catalog)) > 0:
            return None
        wanted = [f"{column}={' or '.join([values] if isinstance(values, str) else map(str, values))}"
                  for column, values in where.items()]
        described = wanted[0] if len(wanted) == 1 else f"{', '.join(wanted[:-1])} and {wanted[-1]}"
        if allowed.exclude and all(self._matches(row, allowed) for row in allowed.exclude):
            return f"no product other than {self._catalog.ids[allowed.exclude[0]]} has {described}"
        return f"no product has {described} together (each value exists on its own): remove a filter to see more"

    def _matches(self, row: int, allowed: Restriction) -> bool:
        """Whether catalog row `row` meets every (lower-cased) filter of `allowed`."""
        return all(self._lowered(column)[row] in values for column, values in allowed.where.items())

    def _values_named(self, column: str) -> str:
        """A column's values for a message, the first VALUES_NAMED of them, sorted."""
        values = sorted({v for v in self._catalog.column_values(column) if v}, key=str.lower)
        if not values:
            return "none (no product has a value in this column)"
        more = f" (and {len(values) - VALUES_NAMED} more)" if len(values) > VALUES_NAMED else ""
        return ", ".join(values[:VALUES_NAMED]) + more

    def _lowered(self, column: str) -> np.ndarray:
        """A metadata column, lower-cased, as an array (built once per column)."""
        if column not in self._lowered_columns:
            if column not in self._catalog.columns:
                known = ", ".join(self._catalog.columns) or "none (the catalog was indexed without metadata)"
                raise FilterError(f"unknown filter column {column!r}; the catalog's columns are: {known}")
            values = self._catalog.column_values(column)
            self._known_values[column] = frozenset(v.lower() for v in values if v)  # first: see notice()
            self._lowered_columns[column] = np.array(["" if v is None else v.lower() for v in values], dtype=object)
        return self._lowered_columns[column]
