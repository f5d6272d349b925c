"""images.py: decoding any mode, EXIF rotation, refusing bad files, and preprocessing by spec."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.errors import ImageError
from fashionrec.images import Preprocessing, load_model_input, open_image, preprocess, resize

BIG = 10**9


def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no data: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "CMYK", "P", "I;16", "1"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    image = Image.new("RGB", (30, 20), (200, 50, 10)).convert(mode)
    opened = open_image(image, BIG)
    assert opened.mode == "RGB" and opened.size == (30, 20)


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert open_image(_encoded(image, "PNG"), BIG).getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency_is_flattened_on_white() -> None:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    data = _encoded(image, "PNG", transparency=0)
    assert open_image(data, BIG).getpixel((1, 1)) == (255, 255, 255)


def test_sixteen_bit_greyscale_keeps_its_contrast() -> None:
    image = Image.fromarray(np.array([[0, 65535]], dtype=np.uint16))
    assert image.mode.startswith("I")
    opened = open_image(image, BIG)
    assert opened.getpixel((0, 0)) == (0, 0, 0) and opened.getpixel((1, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), "white")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    opened = open_image(_encoded(image, "JPEG", exif=exif), BIG)
    assert opened.size == (20, 40)


def test_path_bytes_and_pil_give_the_same_image(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path)
    arrays = [np.asarray(open_image(source, BIG)) for source in (path, str(path), path.read_bytes(), Image.open(path))]
    assert all(np.array_equal(arrays[0], other) for other in arrays[1:])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is a text file, not a photo", "not an image"),
        (_encoded(Image.new("RGB", (64, 64), "red"), "JPEG")[:300], "truncated"),
        (_png_header_only(100_000, 100_000), "too large"),
    ],
    ids=["zero-bytes", "not-an-image", "truncated", "decompression-bomb"],
)
def test_bad_input_gets_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        open_image(data, max_pixels=40_000_000)


def test_pixel_limit_is_checked_before_decoding() -> None:
    with pytest.raises(ImageError, match="over the limit of 100"):
        open_image(_encoded(Image.new("RGB", (20, 20)), "PNG"), max_pixels=100)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "nope.jpg", BIG)
    with pytest.raises(ImageError, match="is a folder"):
        open_image(tmp_path, BIG)


@pytest.mark.parametrize("policy", ["stretch", "pad", "crop"])
def test_every_resize_policy_gives_the_square_input(policy: str) -> None:
    prep = Preprocessing(size=32, resize=policy)
    assert resize(Image.new("RGB", (60, 80), "red"), prep).size == (32, 32)


def test_pad_keeps_the_aspect_ratio_on_white() -> None:
    out = resize(Image.new("RGB", (60, 80), (255, 0, 0)), Preprocessing(size=80, resize="pad"))
    assert out.getpixel((0, 40)) == (255, 255, 255)  # left margin
    assert out.getpixel((40, 40)) == (255, 0, 0)


def test_caffe_mode_is_bgr_minus_the_means() -> None:
    prep = Preprocessing(size=2, mode="caffe", mean=(103.939, 116.779, 123.68), resample="nearest")
    x = preprocess(Image.new("RGB", (2, 2), (10, 20, 30)), prep)
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)


def test_scale_mode_normalises_each_channel() -> None:
    prep = Preprocessing(size=2, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))
    x = preprocess(Image.new("RGB", (2, 2), (255, 127, 0)), prep)
    np.testing.assert_allclose(x[:, 1, 1], [1.0, 0.0, -127 / 128], rtol=1e-6)


def test_large_jpeg_draft_decodes_faster_but_same_shape() -> None:
    data = _encoded(Image.new("RGB", (2000, 2000), "blue"), "JPEG")
    prep = Preprocessing(size=64)
    assert load_model_input(data, prep, BIG).shape == (3, 64, 64)
    assert open_image(data, BIG, draft_size=128).size[0] < 2000
