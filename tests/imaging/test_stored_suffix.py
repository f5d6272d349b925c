"""imaging.formats.stored_suffix: a write's format told from the first bytes, with the decoder's own words for the
rest (issue 21: a pixel bomb crashed here, and a text file was named by an object repr)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from fashionrec.errors import ImageError, UnsupportedImageFormatError
from fashionrec.imaging.formats import stored_suffix
from tests.image_corpus import eps_file, mpo_jpeg, png_bytes, svg_file


def encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("data, suffix", [
    (encoded("JPEG"), ".jpg"), (encoded("PNG"), ".png"), (encoded("WEBP"), ".webp"), (encoded("GIF"), ".gif"),
    (mpo_jpeg(), ".jpg"),
    (png_bytes(20_000, 20_000, 1, 0, [b"\x00" * 2500] * 20_000), ".png"),  # a bomb: its pixels are the decoder's
])
def test_the_suffix_comes_from_the_first_bytes(data: bytes, suffix: str) -> None:
    assert stored_suffix(data) == suffix


@pytest.mark.parametrize("data, error, words", [
    (svg_file(), UnsupportedImageFormatError, "SVG drawing"),
    (encoded("TIFF"), UnsupportedImageFormatError, "TIFF file"),
    (eps_file(), UnsupportedImageFormatError, "EPS"),
    (b"size chart: S M L\n", ImageError, "not an image"),
])
def test_other_files_get_the_decoders_words(data: bytes, error: type, words: str) -> None:
    with pytest.raises(error) as raised:
        stored_suffix(data)
    assert words in str(raised.value) and "JPEG, PNG" in str(raised.value) and "<_io." not in str(raised.value)
