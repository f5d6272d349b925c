"""Open, validate and preprocess images: the one place that touches image bytes.

Everything that reaches a model passes through `open_image` (format check, pixel limit, decode, EXIF
rotation, any colour mode to RGB) and `preprocess` (resize and normalise as the model's `Preprocessing` says),
so an upload, a catalog file and a notebook's PIL image are treated exactly alike.

The rule for image bytes, and why:
- **Formats.** Only what shops publish product photos in is decoded: JPEG (also MPO, the JPEG a camera writes
  with a second picture inside; the first is used), PNG, WebP and GIF (what every browser shows and every shop
  platform serves), and AVIF (what image CDNs now serve, so a photo saved from a shop page is often AVIF; only
  where this Pillow decodes it). Everything else is refused before any decoder sees it, with a message naming
  what the file is and the formats accepted: EPS (Pillow would run Ghostscript on it), PSD, SVG, TIFF and camera
  RAW files, BMP, HEIC, PDF. An animated GIF, WebP, APNG or AVIF gives its first frame (a product spin starts on
  the product's front); the other frames are never decoded. `IMAGE_SUFFIXES`, what the indexer scans, are these
  formats' file name suffixes; a file with the suffix of a refused format is reported, never silently ignored.
- **Pixels.** The header's width x height is checked against a limit before a pixel is decoded. A JPEG decoded
  at reduced scale (`draft`: 1/2 to 1/8 in the decoder, cheap in time and memory) may have more pixels than an
  image decoded in full (every other format, and a JPEG when the model's recipe forbids reduced-scale decoding).
  Catalog files have one limit, `FASHIONREC_MAX_PIXELS`; query photos (uploads) have `PixelLimits.for_uploads`:
  16.8 M pixels (4096 x 4096) decoded in full, 40 M for a JPEG decoded at reduced scale. A 130 kB PNG can
  claim 6300 x 6300 pixels, 170 MB and a second of decoding: as an upload it is refused from its header.
- **Decode slots.** At most `FASHIONREC_DECODE_SLOTS` images (2) decode at once in a process, whichever thread
  asks (`DECODE_SLOTS`), so eight large uploads at once wait for each other instead of exhausting memory. With
  a draft size (what the model needs, doubled), any format comes out of its slot reduced by a whole factor, so
  full-size pixels never leave it.
- **Any failure while reading one image is an `ImageError`** (or its kinds `UnsupportedImageFormatError`,
  `ImageTooLargeError`), whatever a decoder raised, with what to do about it. Only the EXIF Orientation tag is
  read, the way browsers do: a damaged EXIF block elsewhere costs nothing (Pillow's `exif_transpose` would fail
  on it), and EXIF that cannot be read at all leaves the picture as stored, as a browser shows it.
- Colours are taken as stored (no ICC conversion), as the catalog's own images were.
"""

from __future__ import annotations

import io
import logging
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar, Union

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from fashionrec.config import Settings, load_settings
from fashionrec.errors import ImageError, ImageTooLargeError, UnsupportedImageFormatError

log = logging.getLogger(__name__)

T = TypeVar("T")
ImageSource = Union[str, os.PathLike, bytes, Image.Image]
"""What fashionrec accepts as an image: a file path, the file's bytes, or a PIL image."""

ACCEPTED_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg", ".jfif"),  # Pillow reads MPO through its JPEG reader
    "PNG": (".png", ".apng"),
    "WEBP": (".webp",),
    "GIF": (".gif",),
    "AVIF": (".avif",),
}
"""The formats fashionrec decodes (Pillow's format ids), with the file name suffixes the indexer scans."""

IMAGE_SUFFIXES = frozenset(suffix for suffixes in ACCEPTED_FORMATS.values() for suffix in suffixes)

_REFUSED_SUFFIXES: dict[str, str] = {
    ".tif": "a TIFF file", ".tiff": "a TIFF file", ".bmp": "a BMP bitmap", ".eps": "an EPS (PostScript) file",
    ".ps": "a PostScript file", ".ai": "an Adobe Illustrator file", ".psd": "a Photoshop document (PSD)",
    ".psb": "a Photoshop document (PSB)", ".svg": "an SVG drawing", ".svgz": "an SVG drawing",
    ".heic": "a HEIC photo", ".heif": "a HEIF photo", ".jp2": "a JPEG 2000 file", ".dng": "a camera RAW file",
    ".cr2": "a camera RAW file", ".cr3": "a camera RAW file", ".nef": "a camera RAW file",
    ".arw": "a camera RAW file",
}
"""Suffixes of image and drawing formats fashionrec refuses: the indexer reports such files, with the way out."""

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%!PS", "an EPS (PostScript) file"),
    (b"\xc5\xd0\xd3\xc6", "an EPS (PostScript) file"),
    (b"8BPS", "a Photoshop document (PSD)"),
    (b"II*\x00", "a TIFF file (or a camera RAW file)"),
    (b"MM\x00*", "a TIFF file (or a camera RAW file)"),
    (b"%PDF", "a PDF document"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 file"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 file"),
    (b"BM", "a BMP bitmap"),
    (b"\x00\x00\x01\x00", "an icon (ICO)"),
)
"""How refused formats start, to say what a refused file is."""

_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_ACCEPTED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
)
_FORMAT_NAMES = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF", "AVIF": "AVIF"}
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
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


def is_image_file(path: Path) -> bool:
    """True for a file name fashionrec treats as a product photo (by suffix, case-insensitive)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def refused_file_reason(path: Path) -> str | None:
    """Why a file with the suffix of a refused image format (.tif, .psd, .eps, .heic, ...) is not indexed, with
    the way out; None for accepted suffixes and for files that are no image at all (notes.txt)."""
    what = _REFUSED_SUFFIXES.get(path.suffix.lower())
    return None if what is None or path.name.startswith(".") else _refused_message(what)


def accepted_text() -> str:
    """The formats this installation decodes, as a message says them."""
    names = [_FORMAT_NAMES[fmt] for fmt in _decodable_formats()]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


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
    name = _FORMAT_NAMES.get(image.format or "", image.format or "image")
    reduced = bool(draft_size) and image.format in ("JPEG", "MPO")  # the decoder itself scales it down
    if reduced:
        _check_pixels(image.size, limits.jpeg_draft, limits.jpeg_draft_setting, "a JPEG")
    else:
        bigger_as_jpeg = bool(draft_size) and limits.jpeg_draft > limits.full_decode
        hint = (f", or send it as a JPEG (up to {limits.jpeg_draft:,} pixels)"
                if bigger_as_jpeg and name != "JPEG" else "")
        what = f"a {name} decoded in full" if name == "JPEG" else f"a {name} image"
        _check_pixels(image.size, limits.full_decode, limits.full_decode_setting, what, hint)

    def decode() -> Image.Image:
        if reduced:
            image.draft("RGB", (draft_size, draft_size))
        image.load()  # an animation: its first frame only
        return _finish(image, draft_size)

    return DECODE_SLOTS.run(lambda: _guarded(decode, f"the {name}"))  # full-size pixels exist only in a slot


def _finish(image: Image.Image, draft_size: int | None) -> Image.Image:
    """A decoded image to what `open_image` returns: RGB, reduced by a whole factor keeping both sides >=
    `draft_size` (as the JPEG decoder's draft does; a no-op on a JPEG it already scaled), upright."""
    transposition = _orientation(image)  # read first: converting may drop the EXIF block
    rgb = _to_rgb(image)
    factor = min(rgb.width, rgb.height) // draft_size if draft_size else 1
    if factor >= 2:
        rgb = rgb.reduce(factor)  # a box filter, like the JPEG decoder's DCT scaling
    upright = rgb.transpose(transposition) if transposition is not None else rgb
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "Raw profile type exif"):  # never turned a second time
        upright.info.pop(key, None)
    return upright


def _open_header(data: bytes, limits: PixelLimits) -> Image.Image:
    """Read the header (size, format) with only the accepted formats' readers; nothing is decoded yet."""
    try:
        return Image.open(io.BytesIO(data), formats=_decodable_formats())
    except UnidentifiedImageError:
        raise _unidentified(data) from None
    except Image.DecompressionBombError:
        raise ImageTooLargeError(
            f"the image is too large: its header claims over {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels, over "
            f"the limit of {limits.full_decode:,} pixels ({limits.full_decode_setting}): resize it to fit"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a reader may raise any type on a damaged header
        raise _damaged(f"the {_accepted_kind(data) or 'image'}", exc) from None


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


def _unidentified(data: bytes) -> ImageError:
    """The error for bytes no accepted reader recognises: a refused format named, a damaged photo, or no image."""
    what = _what_is(data)
    if what is not None:
        return UnsupportedImageFormatError(_refused_message(what))
    kind = _accepted_kind(data)
    if kind is not None:
        return ImageError(f"the file starts like a {kind} but is damaged or truncated: save or export the photo "
                          f"again as {accepted_text()}")
    return ImageError(f"not an image: the file is none of the accepted formats ({accepted_text()}); save the photo "
                      "in one of them")


def _refused_message(what: str) -> str:
    """What a refused format is, and the way out."""
    return f"{what} is not accepted: fashionrec reads photos as {accepted_text()}; export or save it as one of them"


def _what_is(data: bytes) -> str | None:
    """Name a refused format from the file's first bytes, if it is a known one."""
    head = data[:512]
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            return what
    if head[4:8] == b"ftyp":
        if head[8:12] in _HEIF_BRANDS:
            return "a HEIC/HEIF photo (the iPhone's own format)"
        if head[8:12] in (b"avif", b"avis") and "AVIF" not in _decodable_formats():
            return "an AVIF image, which this installation cannot decode (it needs Pillow 11.3 or later)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith((b"<?xml", b"<!doctype svg")) and b"<svg" in text):
        return "an SVG drawing (vector graphics)"
    return None


def _accepted_kind(data: bytes) -> str | None:
    """Which accepted format the bytes start like, if any (to call a file that fails a damaged photo)."""
    for signature, kind in _ACCEPTED_SIGNATURES:
        if data.startswith(signature):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "AVIF"
    return None


@lru_cache(maxsize=1)
def _decodable_formats() -> tuple[str, ...]:
    """The accepted formats this Pillow can read (AVIF only where it was built with libavif)."""
    Image.init()
    return tuple(fmt for fmt in ACCEPTED_FORMATS
                 if fmt in Image.OPEN and (fmt != "AVIF" or features.check("avif")))


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


def typical_size(paths: list[os.PathLike | str], sample: int = 256) -> tuple[int, int] | None:
    """Median (width, height) of up to `sample` images spread over `paths`, read from headers only."""
    step = max(1, len(paths) // sample)
    sizes = []
    for path in paths[::step][:sample]:
        try:
            with Image.open(path, formats=_decodable_formats()) as image:
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


def stored_suffix(data: bytes) -> str:
    """The file name suffix an accepted image's bytes are stored under (".jpg", ".png", ...), from its content.

    Raises:
        ImageError: the bytes are not an image in an accepted format.
    """
    try:
        with Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS)) as image:
            kind = "JPEG" if image.format == "MPO" else image.format
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"not an image in an accepted format ({accepted_text()}): {exc}") from None
    return ACCEPTED_FORMATS[kind][0]
