"""Read product metadata (a `styles.csv`) exactly as shops ship it, quirks included; and a product's metadata as a
write sends it (one flat JSON object), within bounds.

Real catalog exports are not clean CSV: the Myntra file has product names with unquoted commas
(so a row has more fields than the header), stray double quotes inside fields, and `NA` for missing
values. The reader keeps every row: extra fields are joined back into the last column (the free-text
name), and `NA` or empty cells become None.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fashionrec.config import MAX_METADATA_BYTES, MAX_METADATA_KEYS
from fashionrec.errors import FashionrecError, MetadataError, shown

MISSING_VALUES = frozenset({"", "NA"})
ID_COLUMN = "id"


@dataclass(frozen=True)
class MetadataTable:
    """Rows of a metadata file keyed by product id (a string), plus what was repaired on the way."""

    path: Path
    columns: tuple[str, ...]  # every column but the id, in file order
    rows: dict[str, dict[str, str | None]] = field(repr=False)
    repaired_rows: int = 0  # rows with unquoted commas, joined back into the last column
    duplicate_ids: int = 0  # later rows with an id seen before (the later row wins)

    def get(self, product_id: str) -> dict[str, str | None] | None:
        """The metadata of one product, or None when the file has no row for it."""
        return self.rows.get(product_id)


def read_metadata(path: str | Path) -> MetadataTable:
    """Read a CSV with an `id` column into a `MetadataTable`, losing no row.

    Args:
        path: the CSV file; its first line is the header and one column is named `id`.

    Returns:
        The table; values are strings, with `NA` and empty cells as None.

    Raises:
        MetadataError: the file is missing, unreadable, empty, or has no `id` column.

    Example:
        >>> table = read_metadata("styles.csv")
        >>> table.get("15970")["articleType"]
        'Shirts'
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MetadataError(f"the metadata file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MetadataError(f"cannot read the metadata file {path}: {exc}") from None
    # Lines end only where CSV says (\n, \r\n, \r): str.splitlines() would also split on U+2028, \x0c, \x1c, ...,
    # which a product name copied from a web page or a spreadsheet can hold.
    records = [row for row in csv.reader(io.StringIO(text, newline="")) if any(cell.strip() for cell in row)]
    if not records:
        raise MetadataError(f"the metadata file {path} is empty")
    header = [name.strip() for name in records[0]]
    id_index = _id_column(header, path)
    rows: dict[str, dict[str, str | None]] = {}
    repaired = duplicates = 0
    for record in records[1:]:
        if len(record) > len(header):
            record = record[: len(header) - 1] + [",".join(record[len(header) - 1 :])]
            repaired += 1
        record = record + [""] * (len(header) - len(record))
        product_id = record[id_index].strip()
        if not product_id:
            continue
        duplicates += product_id in rows
        rows[product_id] = {
            name: _value(cell) for index, (name, cell) in enumerate(zip(header, record)) if index != id_index
        }
    columns = tuple(name for index, name in enumerate(header) if index != id_index)
    return MetadataTable(path=path, columns=columns, rows=rows, repaired_rows=repaired, duplicate_ids=duplicates)


def _id_column(header: list[str], path: Path) -> int:
    """Position of the id column (matched case-insensitively)."""
    lowered = [name.lower() for name in header]
    if ID_COLUMN not in lowered:
        raise MetadataError(f"the metadata file {path} has no 'id' column (its columns: {', '.join(header)})")
    return lowered.index(ID_COLUMN)


def _value(cell: str) -> str | None:
    """A cell's text, or None for the missing markers."""
    return None if cell in MISSING_VALUES else cell


def metadata_from_json(text: str, field: str, max_bytes: int = MAX_METADATA_BYTES) -> dict:
    """The JSON object a write's metadata field or flag holds, parsed within bounds: a field over `max_bytes`, nested
    deeper than the parser goes or holding a number of thousands of digits is refused, not a crash.

    Raises:
        FashionrecError: too large, not JSON, or not an object; the message names `field` and what to send.
    """
    example = f"{field} must hold a JSON object of text values, e.g. {{\"gender\": \"Men\"}}"
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise FashionrecError(f"{field} is too large ({size:,} bytes, over the limit of {max_bytes:,}): send only "
                              "the catalog's metadata columns, as short text")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FashionrecError(f"{example}: {exc.msg} at character {exc.pos}") from None
    except RecursionError:
        raise FashionrecError(f"{example}; it is nested too deep to read") from None
    except ValueError:  # a number of more digits than Python converts (int_max_str_digits)
        raise FashionrecError(f"{example}; it holds a number too long to be read: send each value as text, "
                              "in quotes") from None
    if not isinstance(value, dict):
        raise FashionrecError(f"{example}, got {type(value).__name__}")
    return value


def check_flat_metadata(metadata: object, what: str, columns: Sequence[str] | None = None) -> None:
    """`metadata` must be one flat object of at most `MAX_METADATA_KEYS` values, each text or null: what a catalog
    stores per product (nested values and numbers have no column to go to).

    Raises:
        FashionrecError: it is not, naming `what` (the field or the product) and the catalog's `columns`.
    """
    wanted = ("a JSON object of the catalog's metadata columns" if columns is None
              else f"a JSON object of the catalog's columns ({', '.join(columns) or 'none'})")
    if not isinstance(metadata, Mapping):
        raise FashionrecError(f"{what} must be {wanted}, got {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_KEYS:
        raise FashionrecError(f"{what} has {len(metadata):,} keys, over the limit of {MAX_METADATA_KEYS}: send "
                              f"only {wanted}")
    broken = next((key for key, value in metadata.items()
                   if any(isinstance(text, str) and not _is_text(text) for text in (key, value))), None)
    if broken is not None:
        where = f"the value of {shown(broken)}" if isinstance(broken, str) and _is_text(broken) else "a column name"
        raise FashionrecError(f"{what}: {where} is not valid Unicode text (it holds a lone surrogate such as "
                              "\\ud800): send it as UTF-8")
    wrong = next((key for key, value in metadata.items() if value is not None and not isinstance(value, str)), None)
    if wrong is not None:
        raise FashionrecError(f"{what} must hold text or null; {shown(wrong)} holds {shown(metadata[wrong])}: send "
                              "each value as a JSON string")


def _is_text(value: str) -> bool:
    """Whether `value` is text the catalog and a JSON answer can hold (valid Unicode: no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
