"""What the store holds of a product and of a skipped file, as the rest of the package hands it over and gets it back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fashionrec.catalog.columns import MetadataColumns
from fashionrec.imaging.colour import COLOUR_VERSION, HISTOGRAM_DIM, ColourDescriptor

# Rows of vectors read, and brought to the search space, at once. Why this few: a block's model vectors (1752-d),
# colour histograms and their transforms peaked at 268 MB for 7,254 rows (tracemalloc); at 65,536 rows a block,
# building a 1M catalog's compact index peaked at 3,521 MB, at 4,096 rows 1,030 MB (docs/PERFORMANCE.md section 10).
READ_BLOCK_ROWS = 4096


@dataclass(frozen=True)
class FileStamp:
    """What identifies a file's version cheaply (size, mtime) and surely (content hash)."""

    path: str  # relative to its folder
    size: int
    mtime_ns: int
    sha256: str = ""


@dataclass(frozen=True)
class ProductRow:
    """One product as written by the indexer."""

    id: str
    folder: str
    stamp: FileStamp
    vector: np.ndarray
    metadata: dict[str, str | None] | None
    colour: ColourDescriptor | None = None


@dataclass(frozen=True)
class SkippedFile:
    """A file that could not be indexed, and why."""

    path: str
    reason: str
    size: int = 0
    mtime_ns: int = 0


@dataclass(frozen=True)
class StoredProduct:
    """Where a stored product's file is, and its stamp."""

    folder: str
    stamp: FileStamp


@dataclass(frozen=True)
class StoredProducts:
    """Every product of the catalog, row-aligned: ids[i] has paths[i], metadata[i] (and vectors[i] if loaded). The
    columns but the ids are held as arrays (`catalog.packed`): read-only sequences, not lists."""

    ids: list[str]
    folders: list[str]  # one str object a folder, shared by its products
    paths: Sequence[str]
    metadata: MetadataColumns
    sha256: Sequence[str]  # of each image file: equal hashes are exact-duplicate images
    generations: np.ndarray  # the generation that last wrote each product's vector
    colour_versions: np.ndarray  # colour.COLOUR_VERSION of each product's colour histogram (0: none)
    swatches: Sequence[str | None]  # each product's dominant colours as stored (JSON text), parsed when shown
    written: np.ndarray  # the generation that last wrote each row (vector, colour,
    # metadata): what a copy of an earlier snapshot must take again


def colour_columns(descriptor: ColourDescriptor | None) -> tuple[bytes | None, str | None, int]:
    """A colour descriptor as the (colour, swatches, colour_version) columns."""
    if descriptor is None:
        return None, None, 0
    swatches = json.dumps([swatch.to_dict() for swatch in descriptor.swatches], separators=(",", ":"))
    return np.asarray(descriptor.histogram, dtype="<f2").tobytes(), swatches, COLOUR_VERSION


def stored_histogram(blob: bytes | None, version: int) -> np.ndarray:
    """A stored colour histogram as float32; zeros when none of this version is stored."""
    if blob is None or version != COLOUR_VERSION:
        return np.zeros(HISTOGRAM_DIM, dtype=np.float32)
    return np.frombuffer(blob, dtype="<f2").astype(np.float32)


def metadata_json(value: dict[str, str | None] | None) -> str | None:
    """Metadata as compact JSON text (None stays NULL)."""
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
