"""The catalog's look: its typical image size, and a query photo brought to it before the model sees it."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from fashionrec.imaging.formats import decodable_formats


def typical_size(paths: list[os.PathLike | str], sample: int = 256) -> tuple[int, int] | None:
    """Median (width, height) of up to `sample` images spread over `paths`, read from headers only."""
    step = max(1, len(paths) // sample)
    sizes = []
    for path in paths[::step][:sample]:
        try:
            with Image.open(path, formats=decodable_formats()) as image:
                sizes.append(image.size)
        except Exception:  # noqa: BLE001 - any header a reader chokes on is just left out of the sample
            continue
    if not sizes:
        return None
    widths, heights = zip(*sizes)
    return int(np.median(widths)), int(np.median(heights))


def match_catalog_look(image: Image.Image, catalog_size: tuple[int, int], jpeg_quality: int = 75) -> Image.Image:
    """Make a query photo look like the catalog's images: same resolution, same JPEG character.

    CNN features of a sharp 1800x2400 upload and of the shop's 60x80 JPEG of the same product differ
    more than those of two different products photographed alike; bringing the query down to the
    catalog's typical size and through a JPEG round trip removes that gap (measured in
    benchmarks/query_matching.py). Photos not much larger than the catalog's images are unchanged.
    """
    width, height = catalog_size
    if image.width * image.height <= 2 * width * height:
        return image
    scale = min(width / image.width, height / image.height)
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=jpeg_quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
