"""Add, replace and remove single products while the shop serves: what the API's write endpoints, `fashionrec add`
/ `fashionrec remove` and the Python API call.

A write validates everything first (ids, metadata columns, every image decoded and embedded), so a bad item
changes nothing; then it stores the images in the catalog's own image folder and commits the products in one
single-writer transaction (SQLite waits for another writer up to its busy timeout, then says the catalog is busy).
The search space stays as it is: products written here are whitened (and tuned) like every other, and serving
processes that follow the catalog answer them within a second or two.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fashionrec.catalog.identity import require_model
from fashionrec.catalog.writer import CatalogWriter, OwnImage, OwnProduct
from fashionrec.config import Settings, load_settings
from fashionrec.errors import (
    FashionrecError,
    ImageError,
    ProductIdError,
    ProductNotFoundError,
    cut,
    shown,
)
from fashionrec.imaging.colour import ColourDescriptor
from fashionrec.imaging.decode import ImageSource, PixelLimits, read_image_bytes
from fashionrec.imaging.formats import stored_suffix
from fashionrec.index.metadata import check_flat_metadata
from fashionrec.index.plan import is_product_id
from fashionrec.index.read import decode_query, read_picture
from fashionrec.models.embed import Embedder

WRITE_SLOT = threading.Lock()  # one write prepares, embeds and commits at a time in a process (memory)
MAX_BATCH = 1000  # products one write may carry


@dataclass(frozen=True)
class ProductWrite:
    """One product to create or replace: its id, its image, and (optionally) its metadata."""

    product_id: str
    image: ImageSource
    metadata: Mapping[str, str | None] | None = None  # None: keep a replaced product's metadata


@dataclass(frozen=True)
class WrittenProduct:
    """A product as stored by a write."""

    id: str
    created: bool  # False: it replaced a product of the same id
    image: Path
    metadata: dict[str, str | None]


def check_product_id(product_id: str) -> str:
    """The id, if it can be a file name: letters, digits, '.', '_' and '-', starting with a letter or digit, at most
    128 characters.

    Raises:
        ProductIdError: it cannot, with the rule.
    """
    if not is_product_id(product_id):
        raise ProductIdError(f"the product id {shown(product_id)} cannot be used: an id is 1 to 128 letters, digits, "
                             "'.', '_' or '-', starting with a letter or digit (it names the product's image file)")
    return product_id


def put_products(catalog_dir: str | os.PathLike, items: Sequence[ProductWrite], embedder: Embedder,
                 limits: PixelLimits | None = None) -> list[WrittenProduct]:
    """Create or replace products, all or none: every item is checked and embedded before anything is written.

    Each photo is read as queries are (`index.read`, brought to the catalog's look), so a product is found first by
    its own photo; it is kept by the catalog, named by its content (`catalog.writer`). One write prepares at a time
    in a process (`WRITE_SLOT`), which bounds the memory of many large batches arriving together.

    Args:
        catalog_dir: an indexed catalog.
        items: the products; ids must be distinct.
        embedder: the catalog's model (`load_model(catalog.model_name)`).
        limits: pixel limits of the images (default: the catalog's, `FASHIONREC_MAX_PIXELS`).

    Raises:
        ProductIdError, ImageError (naming the product), FashionrecError (metadata columns), ModelMismatchError,
        StorageError (disk full or read-only), CatalogError (busy, or not a catalog).

    Example:
        >>> put_products("my-catalog", [ProductWrite("15970", "shirt.jpg", {"gender": "Men"})], load_model())
    """
    catalog_dir = Path(catalog_dir).expanduser()
    _check_items(items)
    if not items:
        return []
    with WRITE_SLOT, CatalogWriter(catalog_dir) as writer:
        info = writer.info()
        require_model(catalog_dir, info.get("model_id"), embedder.model_id)
        look = _catalog_look(info, load_settings())
        limits = limits or PixelLimits.uniform(embedder.max_pixels)
        products = [product for start in range(0, len(items), max(1, embedder.batch_size))
                    for product in _embedded(items[start:start + max(1, embedder.batch_size)], embedder, limits,
                                             _columns(info), look)]
        done = writer.put_own(products)
    return [WrittenProduct(item.product_id, outcome.created, outcome.image, dict(outcome.metadata or {}))
            for item, outcome in zip(items, done)]


def remove_products(catalog_dir: str | os.PathLike, product_ids: Sequence[str]) -> int:
    """Remove products, all or none, in one transaction; they stay removed when their folder is indexed again
    (until `fashionrec index --restore`). The catalog's own images of them go once no product points at them.

    Raises:
        ProductNotFoundError: an id is not in the catalog (then nothing is removed).
    """
    catalog_dir = Path(catalog_dir).expanduser()
    ids = list(dict.fromkeys(check_product_id(product_id) for product_id in product_ids))
    with CatalogWriter(catalog_dir) as writer:
        if not writer.withdraw(ids):
            products = writer.products()
            missing = next(product_id for product_id in ids if product_id not in products)
            raise ProductNotFoundError(f"product {shown(missing)} is not in the catalog {catalog_dir}")
    return len(ids)


def collect_orphans(catalog_dir: str | os.PathLike) -> int:
    """Remove the photos the catalog keeps that no product points at (left by a crashed write); how many. A server
    that takes writes does it when it starts; every `index` run does it too."""
    with CatalogWriter(Path(catalog_dir).expanduser()) as writer:
        return writer.collect_orphans()


def _check_items(items: Sequence[ProductWrite]) -> None:
    """At most MAX_BATCH products, with distinct ids that can be file names."""
    if len(items) > MAX_BATCH:
        raise FashionrecError(f"one write takes at most {MAX_BATCH} products, got {len(items)}: send them in parts")
    ids = [check_product_id(item.product_id) for item in items]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise ProductIdError(f"a product id is given twice in one write: {', '.join(map(shown, twice[:5]))}")


def _catalog_look(info: dict[str, str], settings: Settings) -> tuple[int, int] | None:
    """The look queries are brought to (the catalog's typical image size), which a written photo is brought to as
    well: then the product is found by its own photo, whatever its size (None: queries are not matched)."""
    text = info.get("typical_image_size")
    if not text or not settings.match_queries:
        return None
    width, height = text.split("x")
    return int(width), int(height)


def _embedded(items: Sequence[ProductWrite], embedder: Embedder, limits: PixelLimits, columns: list[str],
              look: tuple[int, int] | None) -> list[OwnProduct]:
    """One model call's worth of items read and embedded (so only `batch_size` model inputs are alive at once, and
    the model's activations stay those of one batch); a vector that is not finite is refused, naming its product."""
    prepared = [_prepare(item, embedder, limits, columns, look) for item in items]
    vectors = embedder.embed_batch(np.stack([pixels for _, pixels, _ in prepared]))
    for item, vector in zip(items, vectors):
        if not np.isfinite(vector).all():
            raise ImageError(f"the model gave no usable vector for the image of product {shown(item.product_id)} "
                             "(not finite numbers): send another photo")
    return [OwnProduct(item.product_id, image, vector, colour, None if item.metadata is None else dict(item.metadata))
            for item, (image, _, colour), vector in zip(items, prepared, vectors)]


def _columns(info: dict[str, str]) -> list[str]:
    import json

    return json.loads(info.get("metadata_columns", "[]"))


def _prepare(item: ProductWrite, embedder: Embedder, limits: PixelLimits, columns: list[str],
             look: tuple[int, int] | None) -> tuple[OwnImage, np.ndarray, ColourDescriptor | None]:
    """(the image to keep, the model input as a query of it would be, its colour), or an error naming the product."""
    if item.metadata is not None:
        _check_metadata(item.product_id, item.metadata, columns)
    try:
        data = _image_bytes(item.image)
        suffix = stored_suffix(data)
        prep = embedder.spec.preprocessing
        picture = read_picture(decode_query(data, limits, prep, look), prep, look)
    except ImageError as exc:
        raise type(exc)(f"the image of product {shown(item.product_id)}: {exc}") from None
    return OwnImage(data, suffix), picture.pixels, picture.colour


def _image_bytes(image: ImageSource) -> bytes:
    """The bytes to store: the file's, or a PIL image saved as PNG (lossless)."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return buffer.getvalue()
    return read_image_bytes(image)


def _check_metadata(product_id: str, metadata: Mapping, columns: list[str]) -> None:
    """Metadata must be one flat object (at most `MAX_METADATA_KEYS` text-or-null values) naming the catalog's
    columns: what every write path checks, whatever parsed it."""
    check_flat_metadata(metadata, f"the metadata of product {shown(product_id)}", columns)
    unknown = sorted(map(str, set(metadata) - set(columns)))
    if unknown:
        named = ", ".join(cut(name) for name in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        raise FashionrecError(f"the metadata of product {shown(product_id)} names columns the catalog does not have: "
                              f"{named}; its columns are: {', '.join(columns) or 'none'}")






