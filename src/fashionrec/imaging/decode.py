"""Decode image bytes into an upright RGB picture, within pixel limits checked from the header, in the process's decode slots."""

from __future__ import annotations

import io
import logging
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from fashionrec.config import Settings, load_settings
from fashionrec.errors import ImageError, ImageTooLargeError
from fashionrec.imaging.formats import (
    FORMAT_NAMES,
    accepted_kind,
    accepted_text,
    decodable_formats,
    unidentified_error,
)

log = logging.getLogger(__name__)


T = TypeVar("T")


ImageSource = Union[str, os.PathLike, bytes, Image.Image]
"""What fashionrec accepts as an image: a file path, the file's bytes, or a PIL image."""


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF Orientation -> the transposition that shows the picture upright (as Pillow's exif_transpose does)."""


_ORIENTATION_TAG = 0x0112


_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class PixelLimits:
    """The most pixels an image may have, by how it will be decoded; checked from its header, before decoding.

    `full_decode` bounds an image decoded in full (every format, and a JPEG when no reduced-scale decoding is
    allowed); `jpeg_draft` a JPEG that the decoder reduces 2 to 8 times per side as it decodes (far cheaper).
    The `*_setting` fields name, in a message, the setting that raises each limit.

    Example:
        >>> open_image("photo.png", PixelLimits.for_uploads(load_settings()))
    """

    full_decode: int
    jpeg_draft: int
    full_decode_setting: str = "FASHIONREC_MAX_PIXELS"
    jpeg_draft_setting: str = "FASHIONREC_MAX_PIXELS"

    @classmethod
    def uniform(cls, max_pixels: int) -> PixelLimits:
        """One limit for every image (catalog files: `FASHIONREC_MAX_PIXELS`)."""
        return cls(max_pixels, max_pixels)

    @classmethod
    def for_uploads(cls, settings: Settings) -> PixelLimits:
        """The limits of query photos: far below Pillow's bomb limit, higher for a JPEG decoded at reduced scale."""
        return cls(settings.max_upload_pixels, settings.max_upload_jpeg_pixels,
                   "FASHIONREC_MAX_UPLOAD_PIXELS", "FASHIONREC_MAX_UPLOAD_JPEG_PIXELS")


class DecodeSlots:
    """The process's decode slots: `size` threads that do all its decoding, whichever thread asks.

    Decoding is where an image costs memory (width x height x 4 bytes, and more while converting), so bounding
    concurrent decodes bounds it, however many uploads arrive at once; the others wait for a slot, like at a
    semaphore. The slots are threads, not a semaphore, because the C allocator keeps freed memory in the arena
    of the thread that used it: decoded on eight request threads in turn, eight arenas would each keep a large
    image's worth (measured: 0.9 GB instead of 0.45 GB for eight 4096 x 4096 PNGs, benchmarks/bad_uploads.py).
    Sized from `FASHIONREC_DECODE_SLOTS` on first use, then fixed for the process (a forked child makes its own).
    `peak` is the most slots busy at once since `reset_peak` (what the tests and benchmarks read).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._owner_pid = 0
        self._size = 0
        self.in_use = 0
        self.peak = 0

    @property
    def size(self) -> int:
        """How many images may decode at once."""
        self._ready()
        return self._size

    def run(self, step: Callable[[], T]) -> T:
        """Run `step` in a free slot (waiting for one) and return what it returns, or raise what it raises."""
        return self._ready().submit(self._counted, step).result()

    def reset_peak(self) -> None:
        """Start counting `peak` again from the slots busy now."""
        with self._lock:
            self.peak = self.in_use

    def _counted(self, step: Callable[[], T]) -> T:
        """Run `step`, counting it as a busy slot."""
        with self._lock:
            self.in_use += 1
            self.peak = max(self.peak, self.in_use)
        try:
            return step()
        finally:
            with self._lock:
                self.in_use -= 1

    def _ready(self) -> ThreadPoolExecutor:
        """The slot threads, started on first use from the settings (again in a forked child: threads do not
        survive a fork)."""
        with self._lock:
            if self._pool is None or self._owner_pid != os.getpid():
                self._size = load_settings().decode_slots
                self._pool = ThreadPoolExecutor(self._size, thread_name_prefix="fashionrec-decode")
                self._owner_pid = os.getpid()
                self.in_use = 0
            return self._pool


DECODE_SLOTS = DecodeSlots()
"""The process's decode slots (see `DecodeSlots`)."""


def open_image(source: ImageSource, max_pixels: int | PixelLimits, draft_size: int | None = None) -> Image.Image:
    """Decode an image into an upright RGB PIL image, refusing anything unusable with a message that says why.

    Args:
        source: a path, the encoded bytes, or a PIL image.
        max_pixels: one limit for every image, or `PixelLimits` by how the image decodes; an image with more
            pixels is refused from its header, before decoding (decompression bombs).
        draft_size: if set, the image may come back reduced by a whole factor that keeps both sides >= this
            (a JPEG decodes at that scale; other formats are reduced right after decoding).

    Returns:
        An RGB image with its EXIF orientation applied; transparency is flattened onto white; an animation
        gives its first frame.

    Raises:
        UnsupportedImageFormatError: not one of the accepted formats (EPS, PSD, SVG, TIFF, HEIC, ...).
        ImageTooLargeError: more pixels than the limit.
        ImageError: the file is missing, empty, damaged, truncated, or not an image. A path is named in the
            message.

    Example:
        >>> open_image("shirt.jpg", max_pixels=40_000_000).mode
        'RGB'
    """
    limits = max_pixels if isinstance(max_pixels, PixelLimits) else PixelLimits.uniform(max_pixels)
    if isinstance(source, Image.Image):
        # Already decoded: no decoding to bound, only the larger limit (the image's memory is spent).
        limit, setting = max((limits.full_decode, limits.full_decode_setting),
                             (limits.jpeg_draft, limits.jpeg_draft_setting))
        _check_pixels(source.size, limit, setting, "")
        return _guarded(lambda: _finish(source.copy(), draft_size), "the picture")
    if isinstance(source, (bytes, bytearray)):
        return _decode(bytes(source), limits, draft_size)
    data = read_image_bytes(source)
    try:
        return _decode(data, limits, draft_size)
    except ImageError as exc:
        raise type(exc)(f"{source}: {exc}") from None


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


def _decode(data: bytes, limits: PixelLimits, draft_size: int | None) -> Image.Image:
    """Header, format and pixel checks, then the decode itself in one of the process's decode slots."""
    if not data:
        raise ImageError("the file is empty (0 bytes): copy or upload the photo again")
    image = _open_header(data, limits)
    name = FORMAT_NAMES.get(image.format or "", image.format or "image")
    reduced = bool(draft_size) and image.format in ("JPEG", "MPO")  # the decoder itself scales it down
    if reduced:
        _check_pixels(image.size, limits.jpeg_draft, limits.jpeg_draft_setting, "a JPEG")
    else:
        bigger_as_jpeg = bool(draft_size) and limits.jpeg_draft > limits.full_decode
        hint = (f", or send it as a JPEG (up to {limits.jpeg_draft:,} pixels)"
                if bigger_as_jpeg and name != "JPEG" else "")
        what = f"a {name} decoded in full" if name == "JPEG" else f"a {name} image"
        _check_pixels(image.size, limits.full_decode, limits.full_decode_setting, what, hint)

    full_size = image.size

    def decode() -> Image.Image:
        if reduced:
            image.draft("RGB", (draft_size, draft_size))
        image.load()  # an animation: its first frame only
        return _finish(image, draft_size, full_size)

    return DECODE_SLOTS.run(lambda: _guarded(decode, f"the {name}"))  # full-size pixels exist only in a slot


def _finish(image: Image.Image, draft_size: int | None, full_size: tuple[int, int] | None = None) -> Image.Image:
    """A decoded image to what `open_image` returns: RGB, reduced by a whole factor keeping both sides >=
    `draft_size` (as the JPEG decoder's draft does; a no-op on a JPEG it already scaled), upright.

    Its `info["full_size"]` is the photo's upright size before any reduction, so that a box found on the reduced
    picture can be given in the photo's own pixels (`recommend.view`)."""
    full_size = full_size or image.size
    transposition = _orientation(image)  # read first: converting may drop the EXIF block
    rgb = _to_rgb(image)
    factor = min(rgb.width, rgb.height) // draft_size if draft_size else 1
    if factor >= 2:
        rgb = rgb.reduce(factor)  # a box filter, like the JPEG decoder's DCT scaling
    upright = rgb.transpose(transposition) if transposition is not None else rgb
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "Raw profile type exif"):  # never turned a second time
        upright.info.pop(key, None)
    turned = transposition in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270, Image.Transpose.TRANSPOSE,
                               Image.Transpose.TRANSVERSE)
    upright.info["full_size"] = full_size[::-1] if turned else full_size
    return upright


def _open_header(data: bytes, limits: PixelLimits) -> Image.Image:
    """Read the header (size, format) with only the accepted formats' readers; nothing is decoded yet."""
    try:
        return Image.open(io.BytesIO(data), formats=decodable_formats())
    except UnidentifiedImageError:
        raise unidentified_error(data) from None
    except Image.DecompressionBombError:
        raise ImageTooLargeError(
            f"the image is too large: its header claims over {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels, over "
            f"the limit of {limits.full_decode:,} pixels ({limits.full_decode_setting}): resize it to fit"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a reader may raise any type on a damaged header
        raise _damaged(f"the {accepted_kind(data) or 'image'}", exc) from None


def _guarded(step: Callable[[], Image.Image], what: str) -> Image.Image:
    """Run a decoding step; whatever a decoder raises (OSError, struct.error, RuntimeError, ...) is an ImageError."""
    try:
        return step()
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"the image is too large to decode safely ({exc}): resize it") from None
    except Exception as exc:  # noqa: BLE001 - hostile bytes can make a decoder raise anything; all mean "damaged"
        log.debug("decoding failed", exc_info=True)
        raise _damaged(what, exc) from None


def _damaged(what: str, exc: BaseException) -> ImageError:
    """The error for a file whose decoder failed, with the decoder's words for whoever investigates."""
    detail = str(exc) or type(exc).__name__
    return ImageError(f"{what} is damaged or truncated (the decoder said: {detail}): save or export the photo again "
                      f"as {accepted_text()}")


def _check_pixels(size: tuple[int, int], limit: int, setting: str, what: str, hint: str = "") -> None:
    """Refuse an image over the pixel limit, before any pixel is decoded."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"the image has no pixels ({width} x {height}): export the photo again")
    if width * height > limit:
        side = math.isqrt(limit)
        square = f" ({side} x {side})" if side * side == limit else ""
        raise ImageTooLargeError(
            f"the image is too large: {width} x {height} = {width * height:,} pixels, over the limit of {limit:,} "
            f"pixels{square}{' for ' + what if what else ''} ({setting}): resize it to fit{hint}"
        )


def _orientation(image: Image.Image) -> Image.Transpose | None:
    """The transposition the EXIF Orientation tag asks for, reading nothing else of the EXIF block (as a
    browser does); None for upright, and for EXIF that cannot be read, which browsers, and so the shop's own
    pages, show as stored."""
    try:
        orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - EXIF readers raise many types on damaged blocks; shown as stored
        log.debug("unreadable EXIF: the picture is used as stored", exc_info=True)
        return None
    return _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None


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
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")  # no copy of a large RGBA image
        canvas = Image.new("RGB", rgba.size, _WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")
