"""The image formats fashionrec accepts, and what it says of every other file: recognised by content, not name."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import Image, features

from fashionrec.errors import ImageError, UnsupportedImageFormatError

ACCEPTED_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg", ".jfif"),  # Pillow reads MPO through its JPEG reader
    "PNG": (".png", ".apng"),
    "WEBP": (".webp",),
    "GIF": (".gif",),
    "AVIF": (".avif",),
}
"""The formats fashionrec decodes (Pillow's format ids), with the file name suffixes the indexer scans."""

MEDIA_TYPES: dict[str, str] = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
                               "AVIF": "image/avif"}
"""The media type each accepted format is uploaded and served as."""


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


FORMAT_NAMES = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF", "AVIF": "AVIF"}


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
    names = [FORMAT_NAMES[fmt] for fmt in decodable_formats()]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def unidentified_error(data: bytes) -> ImageError:
    """The error for bytes no accepted reader recognises: a refused format named, a damaged photo, or no image."""
    what = _what_is(data)
    if what is not None:
        return UnsupportedImageFormatError(_refused_message(what))
    kind = accepted_kind(data)
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
        if head[8:12] in (b"avif", b"avis") and "AVIF" not in decodable_formats():
            return "an AVIF image, which this installation cannot decode (it needs Pillow 11.3 or later)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith((b"<?xml", b"<!doctype svg")) and b"<svg" in text):
        return "an SVG drawing (vector graphics)"
    return None


def accepted_kind(data: bytes) -> str | None:
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
def decodable_formats() -> tuple[str, ...]:
    """The accepted formats this Pillow can read (AVIF only where it was built with libavif)."""
    Image.init()
    return tuple(fmt for fmt in ACCEPTED_FORMATS
                 if fmt in Image.OPEN and (fmt != "AVIF" or features.check("avif")))


def accepted_media_types() -> tuple[str, ...]:
    """The media types of the formats this installation decodes ("image/jpeg", ...), as the API documents uploads."""
    return tuple(MEDIA_TYPES[fmt] for fmt in decodable_formats())


def media_type_of(path: Path) -> str:
    """The media type an image file is served as, told by its suffix ("application/octet-stream" for another)."""
    suffix = path.suffix.lower()
    return next((MEDIA_TYPES[fmt] for fmt, suffixes in ACCEPTED_FORMATS.items() if suffix in suffixes),
                "application/octet-stream")


def stored_suffix(data: bytes) -> str:
    """The file name suffix an accepted image's bytes are stored under (".jpg", ".png", ...), from its content.

    The format is told by the accepted readers' own recognition of the first bytes (what `Image.open` asks each
    reader before it parses anything), so no header is parsed here: a pixel bomb, a damaged header or a size over
    the limits is found by the decode that follows, with its own status (413, 422), never as a crash here.

    Raises:
        UnsupportedImageFormatError: a refused format (SVG, TIFF, PSD, HEIC, ...), named, with the way out.
        ImageError: the bytes are no image in an accepted format (the message lists the accepted ones).
    """
    kind = _recognised_format(data)
    if kind is None:
        raise unidentified_error(data)
    return ACCEPTED_FORMATS[kind][0]


def _recognised_format(data: bytes) -> str | None:
    """The first accepted format whose reader recognises the bytes' start, as `Image.open` tries them; None if
    none does (a reader that answers with a warning, e.g. AVIF without its codec, does not)."""
    Image.init()
    prefix = data[:16]  # what Image.open hands each reader's check
    for kind in decodable_formats():
        _, accepts = Image.OPEN[kind]
        answer = True if accepts is None else accepts(prefix)
        if answer and not isinstance(answer, str):
            return kind
    return None
