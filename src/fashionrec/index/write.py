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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fashionrec.catalog.derived import publish
from fashionrec.catalog.identity import require_model
from fashionrec.catalog.rows import FileStamp, ProductRow
from fashionrec.catalog.writer import CatalogWriter
from fashionrec.errors import (
    FashionrecError,
    ImageError,
    ProductIdError,
    ProductNotFoundError,
)
from fashionrec.imaging.colour import ColourDescriptor
from fashionrec.imaging.decode import ImageSource, PixelLimits, read_image_bytes
from fashionrec.imaging.formats import stored_suffix
from fashionrec.index.read import decode_picture, read_picture
from fashionrec.models.embed import Embedder

IMAGES_FOLDER = "images"  # the catalog's own image folder, under the catalog folder
PRODUCT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
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
    if not isinstance(product_id, str) or not PRODUCT_ID.fullmatch(product_id):
        raise ProductIdError(f"the product id {product_id!r} cannot be used: an id is 1 to 128 letters, digits, '.', "
                             "'_' or '-', starting with a letter or digit (it names the product's image file)")
    return product_id


def put_products(catalog_dir: str | os.PathLike, items: Sequence[ProductWrite], embedder: Embedder,
                 limits: PixelLimits | None = None) -> list[WrittenProduct]:
    """Create or replace products, all or none: every item is checked and embedded before anything is written.

    Args:
        catalog_dir: an indexed catalog.
        items: the products; ids must be distinct.
        embedder: the catalog's model (`load_model(catalog.model_name)`).
        limits: pixel limits of the images (default: the catalog's, `FASHIONREC_MAX_PIXELS`).

    Raises:
        ProductIdError, ImageError (naming the product), FashionrecError (metadata columns), ModelMismatchError,
        CatalogError (busy, or not a catalog).

    Example:
        >>> put_products("my-catalog", [ProductWrite("15970", "shirt.jpg", {"gender": "Men"})], load_model())
    """
    catalog_dir = Path(catalog_dir).expanduser()
    if not items:
        return []
    if len(items) > MAX_BATCH:
        raise FashionrecError(f"one write takes at most {MAX_BATCH} products, got {len(items)}: send them in parts")
    ids = [check_product_id(item.product_id) for item in items]
    if len(set(ids)) != len(ids):
        raise ProductIdError(f"a product id is given twice in one write: {sorted({i for i in ids if ids.count(i) > 1})}")
    with CatalogWriter(catalog_dir) as store:
        info = store.info()
    require_model(catalog_dir, info.get("model_id"), embedder.model_id)
    columns = _columns(info)
    prepared = [_prepare(item, embedder, limits or PixelLimits.uniform(embedder.max_pixels), columns)
                for item in items]
    vectors = embedder.embed_batch(np.stack([pixels for _, _, pixels, _ in prepared]))
    folder = catalog_dir / IMAGES_FOLDER
    written_files = [_store_image(folder, item.product_id, data, suffix)
                     for item, (data, suffix, _, _) in zip(items, prepared)]
    with CatalogWriter(catalog_dir) as store:
        before = store.products()
        rows, results = [], []
        for item, path, vector, (_, _, _, colour) in zip(items, written_files, vectors, prepared):
            old = before.get(item.product_id)
            metadata = _metadata_for(item, old, store)
            stamp = FileStamp(path.name, path.stat().st_size, path.stat().st_mtime_ns, _sha256(path))
            rows.append(ProductRow(item.product_id, str(folder), stamp, vector, metadata, colour))
            results.append(WrittenProduct(item.product_id, old is None, path, dict(metadata or {})))
        store.write_batch(str(folder), rows)
    for item, path in zip(items, written_files):  # a replaced image of another format is no longer the product's
        old = before.get(item.product_id)
        if old is not None and Path(old.folder) == folder and old.stamp.path != path.name:
            (folder / old.stamp.path).unlink(missing_ok=True)
    return results


def remove_products(catalog_dir: str | os.PathLike, product_ids: Sequence[str]) -> int:
    """Remove products (and their images, when they live in the catalog's own image folder), in one transaction.

    Raises:
        ProductNotFoundError: an id is not in the catalog (then nothing is removed).
    """
    catalog_dir = Path(catalog_dir).expanduser()
    ids = [check_product_id(product_id) for product_id in product_ids]
    with CatalogWriter(catalog_dir) as store:
        products = store.products()
        missing = [product_id for product_id in ids if product_id not in products]
        if missing:
            raise ProductNotFoundError(f"product {missing[0]!r} is not in the catalog {catalog_dir}")
        removed = store.remove(ids)
    folder = catalog_dir / IMAGES_FOLDER
    for product_id in ids:
        product = products[product_id]
        if Path(product.folder) == folder:
            (folder / product.stamp.path).unlink(missing_ok=True)
    return removed


def _columns(info: dict[str, str]) -> list[str]:
    import json

    return json.loads(info.get("metadata_columns", "[]"))


def _prepare(item: ProductWrite, embedder: Embedder, limits: PixelLimits,
             columns: list[str]) -> tuple[bytes, str, np.ndarray, ColourDescriptor]:
    """(the image's bytes, its stored suffix, the model input, its colour), or an error naming the product."""
    if item.metadata is not None:
        _check_metadata(item.product_id, item.metadata, columns)
    try:
        data = _image_bytes(item.image)
        suffix = stored_suffix(data)
        prep = embedder.spec.preprocessing
        picture = read_picture(decode_picture(data, limits, prep), prep)
    except ImageError as exc:
        raise type(exc)(f"the image of product {item.product_id!r}: {exc}") from None
    return data, suffix, picture.pixels, picture.colour


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
    """Metadata must name the catalog's columns and hold text (or null)."""
    if not isinstance(metadata, Mapping):
        raise FashionrecError(f"the metadata of product {product_id!r} must be a JSON object of the catalog's "
                              f"columns ({', '.join(columns) or 'none'}), got {type(metadata).__name__}")
    unknown = sorted(set(metadata) - set(columns))
    if unknown:
        raise FashionrecError(f"the metadata of product {product_id!r} names columns the catalog does not have: "
                              f"{', '.join(map(str, unknown))}; its columns are: {', '.join(columns) or 'none'}")
    wrong = [key for key, value in metadata.items() if value is not None and not isinstance(value, str)]
    if wrong:
        raise FashionrecError(f"the metadata of product {product_id!r} must hold text or null; {wrong[0]!r} holds "
                              f"{metadata[wrong[0]]!r}")


def _metadata_for(item: ProductWrite, old, store: CatalogWriter) -> dict[str, str | None] | None:
    """The metadata to store: the item's, else (a replaced product) the product's own."""
    if item.metadata is not None:
        return dict(item.metadata)
    if old is None:
        return None
    return store.metadata_of(item.product_id)


def _store_image(folder: Path, product_id: str, data: bytes, suffix: str) -> Path:
    """Publish the image as <folder>/<id><suffix>, atomically."""
    target = folder / f"{product_id}{suffix}"
    publish(target, lambda handle: handle.write(data))
    return target


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
