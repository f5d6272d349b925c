"""The colour of products that have none of this version (indexed before colour existed, or by an engine that does
not compute it), from their image files, without the model: what an index run does after its pipeline."""

from __future__ import annotations

import logging
from pathlib import Path

from fashionrec.catalog.rows import StoredProduct
from fashionrec.catalog.writer import CatalogWriter
from fashionrec.errors import ImageError
from fashionrec.imaging.colour import ColourDescriptor
from fashionrec.imaging.preprocess import Preprocessing
from fashionrec.index.engine import ordered_map
from fashionrec.index.read import read_colour

log = logging.getLogger(__name__)


def backfill_colours(store: CatalogWriter, workers: int, max_pixels: int, prep: Preprocessing, chunk: int = 256) -> int:
    """Compute the colour of every product that lacks one of this version (indexed before colour existed, or by an
    engine that does not compute it) from its image file, without the CNN; returns how many were computed.
    `prep`: the catalog model's, so a file is decoded as indexing decodes it (`index.read`).

    A product whose file cannot be read now keeps no colour (its colour part stays zero) and is tried again next run.
    """
    missing = store.without_colour()
    if not missing:
        return 0

    def describe_file(item: tuple[str, StoredProduct]) -> tuple[str, ColourDescriptor | None]:
        product_id, product = item
        try:
            return product_id, read_colour(Path(product.folder) / product.stamp.path, max_pixels, prep)
        except ImageError as exc:
            log.warning("no colour for product %s: %s", product_id, exc)
            return product_id, None

    done = 0
    items = sorted(missing.items())
    log.info("computing the colour of %d products indexed without it", len(items))
    for start in range(0, len(items), chunk):
        found = dict(ordered_map(describe_file, items[start:start + chunk], workers, chunk))
        colours = {product_id: colour for product_id, colour in found.items() if colour is not None}
        store.set_colours(colours, {product_id: missing[product_id].stamp.sha256 for product_id in colours})
        done += len(colours)
    return done
