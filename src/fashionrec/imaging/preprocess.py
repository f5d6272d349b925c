"""A decoded picture to a model's input tensor, as the model's `Preprocessing` says (size, resize policy, normalisation)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image

from fashionrec.imaging.decode import ImageSource, PixelLimits, open_image

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
    `allow_draft` lets large images come out reduced by a whole factor before resizing (a JPEG in its
    decoder, much faster; other formats by a box filter, so their full-size pixels are dropped at once); it
    is off for a recipe that must match a reference pixel for pixel.
    """

    size: int
    resize: Literal["stretch", "pad", "crop"] = "stretch"
    resample: Literal["nearest", "bilinear", "bicubic"] = "bilinear"
    mode: Literal["caffe", "scale"] = "scale"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    allow_draft: bool = True

    @property
    def draft_size(self) -> int | None:
        """The `open_image` draft size for this model's input (twice its side), None when drafts are off. Every
        decode of a catalog's images (indexing, API writes, colour backfills) and of queries uses it, so the same
        file gives the same pixels wherever it is read."""
        return 2 * self.size if self.allow_draft else None


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


def load_model_input(source: ImageSource, prep: Preprocessing, max_pixels: int | PixelLimits) -> np.ndarray:
    """Open and preprocess in one step; JPEGs decode at reduced size when the spec allows it.

    Raises:
        ImageError: as `open_image`.
    """
    return preprocess(open_image(source, max_pixels, draft_size=prep.draft_size), prep)
