"""The bad-input corpus the suite builds itself: every file a shop folder or an upload form really gets.

Each builder is deterministic (seeded where it picks bytes), needs nothing on disk and no network, and
returns the file's bytes. `bad_inputs()` lists them with what fashionrec must do with each: decode it
(and how it must look), or refuse it with which error, which words in the message and which HTTP status.
"""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib
from dataclasses import dataclass

from PIL import Image, ImageOps

from fashionrec.errors import ImageError, ImageTooLargeError, UnsupportedImageFormatError

RED, BLUE = (220, 20, 20), (20, 20, 220)


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    """`image` saved in `fmt` (Pillow's writer), as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def upright_picture(size: tuple[int, int] = (30, 40)) -> Image.Image:
    """A picture whose orientation shows: red top half, blue bottom half."""
    image = Image.new("RGB", size, BLUE)
    image.paste(RED, (0, 0, size[0], size[1] // 2))
    return image


def rotated_jpeg(picture: Image.Image, orientation: int = 6) -> bytes:
    """A JPEG storing `picture` turned, with the EXIF Orientation that turns it back (as a phone writes it).

    Orientation 6 means "rotate 90 degrees clockwise to display", so the pixels are stored turned 90 degrees
    counter-clockwise. A few other tags make the EXIF block look like a camera's.
    """
    undo = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "Shop Camera Co."  # Make
    exif[0x0110] = "Model 7"  # Model
    exif[0x0132] = "2024:05:01 10:00:00"  # DateTime
    exif.get_ifd(0x8769)[0x829A] = 0.01  # Exif IFD: ExposureTime (a rational)
    return encoded(picture.transpose(undo), "JPEG", quality=95, exif=exif.tobytes())


def corrupt_exif_jpeg(seed: int = 0, max_tries: int = 20_000) -> bytes:
    """`rotated_jpeg(upright_picture())` with bytes of its EXIF block overwritten until Pillow's
    `ImageOps.exif_transpose` raises (it rewrites the whole block and chokes on a damaged tag), while the
    Orientation tag itself still reads 6. The image data is untouched. Seeded: the same bytes every run.
    """
    clean = rotated_jpeg(upright_picture())
    start = clean.index(b"Exif\x00\x00") + 6  # the TIFF structure inside the APP1 segment
    end = start - 8 + int.from_bytes(clean[start - 8 : start - 6], "big")  # the segment's length field
    rng = random.Random(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about every damaged tag it meets on the way
        return _first_breaking_exif(clean, start, end, rng, max_tries, seed)


def _first_breaking_exif(clean: bytes, start: int, end: int, rng: random.Random, max_tries: int, seed: int) -> bytes:
    """The search of `corrupt_exif_jpeg`: corrupt bytes in [start, end) until exif_transpose raises."""
    for _ in range(max_tries):
        data = bytearray(clean)
        for _ in range(rng.randrange(1, 5)):
            data[rng.randrange(start + 8, end)] = rng.randrange(256)
        candidate = bytes(data)
        try:
            with Image.open(io.BytesIO(candidate)) as image:
                image.load()
                if image.getexif().get(0x0112) != 6:
                    continue
                ImageOps.exif_transpose(image)
        except Exception:  # noqa: BLE001 - what we are looking for: the reader fine, exif_transpose not
            return candidate
    raise AssertionError(f"no corruption of seed {seed} made exif_transpose fail in {max_tries} tries")


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: list[bytes],
              extra_chunks: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A PNG written by hand (any bit depth Pillow cannot write): `rows` are the raw scanlines, unfiltered."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + row for row in rows))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + b"".join(chunk(k, d) for k, d in extra_chunks)
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def png_bomb(side: int = 6300) -> bytes:
    """A valid side x side black RGB PNG of about 130 kB (6300: 170 MB and a second to decode in full)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * (3 * side)
    pixels = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def sixteen_bit_rgb_png() -> bytes:
    """A 2x1 48-bit RGB PNG: (65535, 0, 32896) then (0, 65535, 0)."""
    return png_bytes(2, 1, 16, 2, [struct.pack(">6H", 65535, 0, 32896, 0, 65535, 0)])


def sixteen_bit_grey_png() -> bytes:
    """A 2x1 16-bit greyscale PNG: black then white."""
    return png_bytes(2, 1, 16, 0, [struct.pack(">2H", 0, 65535)])


def palette_alpha_png() -> bytes:
    """A 2x1 palette PNG with a tRNS chunk: index 0 red at alpha 0, index 1 red at alpha 128."""
    palette = bytes([255, 0, 0, 255, 0, 0])
    return png_bytes(2, 1, 8, 3, [bytes([0, 1])], extra_chunks=((b"PLTE", palette), (b"tRNS", bytes([0, 128]))))


def garbage_exif_png() -> bytes:
    """A 4x4 red PNG whose eXIf chunk is not EXIF at all (Pillow's getexif raises SyntaxError on it)."""
    rows = [bytes([220, 20, 20] * 4)] * 4
    return png_bytes(4, 4, 8, 2, rows, extra_chunks=((b"eXIf", b"garbage, not a TIFF header"),))


def animated_gif() -> bytes:
    """A two-frame GIF: the first frame red, the second blue."""
    frames = [Image.new("RGB", (20, 20), RED), Image.new("RGB", (20, 20), BLUE)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def mpo_jpeg() -> bytes:
    """A camera's multi-picture JPEG (MPO): the first picture red, the second blue."""
    pictures = [Image.new("RGB", (24, 24), RED), Image.new("RGB", (24, 24), BLUE)]
    return encoded(pictures[0], "MPO", save_all=True, append_images=pictures[1:], quality=95)


def cmyk_jpeg() -> bytes:
    """A red picture as a CMYK JPEG (what print workflows export)."""
    return encoded(Image.new("RGB", (24, 24), RED).convert("CMYK"), "JPEG", quality=95)


def eps_file() -> bytes:
    """A minimal EPS: Pillow would hand it to Ghostscript to render."""
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\n"
            b"newpath 0 0 moveto 10 0 lineto 10 10 lineto closepath fill\nshowpage\n%%EOF\n")


def psd_file(width: int = 4, height: int = 4) -> bytes:
    """A minimal valid Photoshop document: 3-channel 8-bit RGB, raw image data, no layers."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, image resources, layer and mask info
    return header + sections + struct.pack(">H", 0) + bytes([200]) * (3 * width * height)


def svg_file() -> bytes:
    """A small SVG drawing (vector graphics: no pixels to decode)."""
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" '
            b'height="10"><rect width="10" height="10" fill="red"/></svg>\n')


def truncated_jpeg() -> bytes:
    """The first 1,500 bytes of a 300x400 JPEG: the header is whole, the picture is cut."""
    noise = Image.effect_noise((300, 400), 64).convert("RGB")
    return encoded(noise, "JPEG", quality=90)[:1500]


def damaged_avif(seed: int = 8) -> bytes | None:
    """An AVIF with bytes overwritten until Pillow's AVIF reader raises RuntimeError (a decoder's own
    exception type); None when this Pillow cannot write AVIF."""
    try:
        clean = encoded(Image.new("RGBA", (24, 16), (200, 30, 30, 128)), "AVIF")
    except (KeyError, OSError):
        return None
    rng = random.Random(seed)
    for _ in range(5_000):
        data = bytearray(clean)
        for _ in range(rng.randrange(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            with Image.open(io.BytesIO(bytes(data)), formats=["AVIF"]) as image:
                image.load()
        except RuntimeError:
            return bytes(data)
        except Exception:  # noqa: BLE001 - another failure: keep looking for the RuntimeError one
            continue
    return None


@dataclass(frozen=True)
class BadInput:
    """One file of the corpus and what fashionrec must do with it.

    `error` None: it must decode (its look is checked in tests/imaging/test_images.py). Otherwise the error class,
    a fragment of its message, and the HTTP status of the API's answer. `catalog_error` is what the indexer
    records when it differs from an upload's (the catalog's pixel limit is higher).
    """

    name: str
    data: bytes
    error: type[ImageError] | None = None
    message: str = ""
    status: int = 200
    catalog_error: type[ImageError] | None | str = "same"

    @property
    def indexed(self) -> bool:
        """Whether `fashionrec index` must take it as a product."""
        error = self.error if self.catalog_error == "same" else self.catalog_error
        return error is None


def bad_inputs() -> list[BadInput]:
    """The corpus, in a fixed order."""
    corpus = [
        BadInput("corrupt_exif.jpg", corrupt_exif_jpeg()),
        BadInput("rotated.jpg", rotated_jpeg(upright_picture())),
        BadInput("truncated.jpg", truncated_jpeg(), ImageError, "truncated", 422),
        BadInput("zero.jpg", b"", ImageError, "empty", 422),
        BadInput("bomb.png", png_bomb(), ImageTooLargeError, "4096 x 4096", 413, catalog_error=None),
        BadInput("drawing.eps", eps_file(), UnsupportedImageFormatError, "EPS", 415),
        BadInput("layers.psd", psd_file(), UnsupportedImageFormatError, "Photoshop", 415),
        BadInput("photo_really_psd.jpg", psd_file(), UnsupportedImageFormatError, "Photoshop", 415),
        BadInput("logo.svg", svg_file(), UnsupportedImageFormatError, "SVG", 415),
        BadInput("animated.gif", animated_gif()),
        BadInput("cmyk.jpg", cmyk_jpeg()),
        BadInput("camera_mpo.jpg", mpo_jpeg()),
        BadInput("deep.png", sixteen_bit_rgb_png()),
        BadInput("grey16.png", sixteen_bit_grey_png()),
        BadInput("palette_alpha.png", palette_alpha_png()),
        BadInput("garbage_exif.png", garbage_exif_png()),
    ]
    avif = damaged_avif()
    if avif is not None:
        corpus.append(BadInput("damaged.avif", avif, ImageError, "damaged", 422))
    return corpus
