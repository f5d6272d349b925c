"""Open, validate and preprocess images: the one place that touches image bytes.

Everything that reaches a model passes through `open_image` (decode, size limit, EXIF rotation, any
colour mode to RGB) and `preprocess` (resize and normalise as the model's `Preprocessing` says), so
an upload, a catalog file and a notebook's PIL image are treated exactly alike.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fashionrec.errors import ImageError

ImageSource = Union[str, os.PathLike, bytes, Image.Image]
"""What fashionrec accepts as an image: a file path, the file's bytes, or a PIL image."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Preprocessing:
    """How a model wants its input: size, resize policy, interpolation and normalisation.

    `mode="caffe"` is Keras' `preprocess_input` for ResNet50 (RGB->BGR, subtract `mean` given in BGR
    order, no scaling); `mode="scale"` computes `(pixel - mean) / std` per RGB channel.
    `allow_draft` lets large JPEGs decode at a reduced scale (much faster); it is off for a recipe that
    must match a reference pixel for pixel.
    """

    size: int
    resize: Literal["stretch", "pad", "crop"] = "stretch"
    resample: Literal["nearest", "bilinear", "bicubic"] = "bilinear"
    mode: Literal["caffe", "scale"] = "scale"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    allow_draft: bool = True


def is_image_file(path: Path) -> bool:
    """True for a file name fashionrec treats as a product photo (by suffix, case-insensitive)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def open_image(source: ImageSource, max_pixels: int, draft_size: int | None = None) -> Image.Image:
    """Decode an image into an upright RGB PIL image, refusing anything unusable.

    Args:
        source: a path, the encoded bytes, or a PIL image.
        max_pixels: images with more pixels are refused before decoding (decompression bombs).
        draft_size: if set, a JPEG may decode at a reduced scale that keeps both sides >= this.

    Returns:
        An RGB image with EXIF orientation applied; transparency is flattened onto white.

    Raises:
        ImageError: the file is missing, empty, not an image, truncated, corrupt or too large.

    Example:
        >>> open_image("shirt.jpg", max_pixels=40_000_000).mode
        'RGB'
    """
    if isinstance(source, Image.Image):
        _check_pixels(source.size, max_pixels)
        return _to_rgb(ImageOps.exif_transpose(source.copy()))
    data = read_image_bytes(source) if not isinstance(source, (bytes, bytearray)) else bytes(source)
    if not data:
        raise ImageError("the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_pixels(image.size, max_pixels)
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image, or an image format Pillow cannot read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"the image is too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise ImageError(f"the image is corrupt or truncated ({exc})") from None
    return _to_rgb(ImageOps.exif_transpose(image))


def read_image_bytes(path: str | os.PathLike) -> bytes:
    """Read a file's bytes, turning a missing or unreadable file into an `ImageError`."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image file") from None
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    """Refuse images over the pixel limit, before any pixel is decoded."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            f"the image is too large: {width}x{height} = {width * height:,} pixels, "
            f"over the limit of {max_pixels:,} (FASHIONREC_MAX_PIXELS)"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB: alpha flattened on white, 16-bit and float greyscale rescaled."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        pixels = np.asarray(image, dtype=np.float32)
        top = 65535.0 if pixels.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(pixels * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, _WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def resize(image: Image.Image, prep: Preprocessing) -> Image.Image:
    """Resize to the model's square input by the spec's policy (stretch, pad on white, centre crop)."""
    side = prep.size
    resample = _RESAMPLE[prep.resample]
    if prep.resize == "stretch":
        return image.resize((side, side), resample)
    width, height = image.size
    if prep.resize == "pad":
        scale = side / max(width, height)
        new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        canvas = Image.new("RGB", (side, side), _WHITE)
        canvas.paste(image.resize(new_size, resample), ((side - new_size[0]) // 2, (side - new_size[1]) // 2))
        return canvas
    scale = side / min(width, height)
    new_size = (max(side, round(width * scale)), max(side, round(height * scale)))
    left, top = (new_size[0] - side) // 2, (new_size[1] - side) // 2
    return image.resize(new_size, resample).crop((left, top, left + side, top + side))


def to_array(image: Image.Image, prep: Preprocessing) -> np.ndarray:
    """A resized RGB image to the model's float32 CHW input, normalised as the spec says.

    Each output channel is a lookup of its 256 possible values, computed once per spec in float32 exactly as
    `(pixel - mean) / std` (caffe: BGR order, `pixel - mean`), so the result is bitwise the same as the
    arithmetic, about six times faster (it was the indexer's largest cost after the model).
    """
    pixels = np.asarray(image, dtype=np.uint8)
    tables, sources = _channel_tables(prep)
    out = np.empty((3, pixels.shape[0], pixels.shape[1]), dtype=np.float32)
    for channel, (table, source) in enumerate(zip(tables, sources)):
        np.take(table, pixels[..., source], out=out[channel])
    return out


@lru_cache(maxsize=16)
def _channel_tables(prep: Preprocessing) -> tuple[tuple[np.ndarray, ...], tuple[int, ...]]:
    """Per output channel: the float32 value of each 8-bit level, and which RGB channel it reads."""
    levels = np.arange(256, dtype=np.float32)
    if prep.mode == "caffe":  # RGB -> BGR, ImageNet means subtracted, no scaling
        return tuple(levels - np.float32(mean) for mean in prep.mean), (2, 1, 0)
    return tuple((levels - np.float32(m)) / np.float32(s) for m, s in zip(prep.mean, prep.std)), (0, 1, 2)


def preprocess(image: Image.Image, prep: Preprocessing) -> np.ndarray:
    """An RGB image to the model's input tensor (3, size, size), float32."""
    return to_array(resize(image, prep), prep)


def load_model_input(source: ImageSource, prep: Preprocessing, max_pixels: int) -> np.ndarray:
    """Open and preprocess in one step; JPEGs decode at reduced size when the spec allows it.

    Raises:
        ImageError: as `open_image`.
    """
    draft = 2 * prep.size if prep.allow_draft else None
    return preprocess(open_image(source, max_pixels, draft_size=draft), prep)


def typical_size(paths: list[os.PathLike | str], sample: int = 256) -> tuple[int, int] | None:
    """Median (width, height) of up to `sample` images spread over `paths`, read from headers only."""
    step = max(1, len(paths) // sample)
    sizes = []
    for path in paths[::step][:sample]:
        try:
            with Image.open(path) as image:
                sizes.append(image.size)
        except (OSError, ValueError, Image.DecompressionBombError):
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
