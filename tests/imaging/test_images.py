"""imaging/ (formats, decode, preprocess, look): decoding any mode, EXIF rotation, refusing bad files, and preprocessing by spec."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.config import load_settings
from fashionrec.errors import ImageError, ImageTooLargeError, UnsupportedImageFormatError
from fashionrec.imaging.formats import ACCEPTED_FORMATS, IMAGE_SUFFIXES, is_image_file, refused_file_reason
from fashionrec.imaging.decode import DECODE_SLOTS, PixelLimits, open_image
from fashionrec.imaging.preprocess import Preprocessing, load_model_input, preprocess, resize
from tests.image_corpus import (
    BLUE,
    RED,
    BadInput,
    bad_inputs,
    corrupt_exif_jpeg,
    encoded,
    png_bomb,
    rotated_jpeg,
    upright_picture,
)

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


def _nearest(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize in numpy: output pixel i samples input pixel floor((i + 0.5) * in / out)."""
    rows = np.floor((np.arange(height) + 0.5) * pixels.shape[0] / height).astype(int)
    columns = np.floor((np.arange(width) + 0.5) * pixels.shape[1] / width).astype(int)
    return pixels[rows][:, columns]


def _policy_by_hand(pixels: np.ndarray, policy: str, side: int) -> np.ndarray:
    """What each policy means, in numpy on a 60 x 80 (w x h) picture and a 32-pixel square."""
    if policy == "stretch":
        return _nearest(pixels, side, side)
    if policy == "pad":  # the long side to 32 (80 -> 32, 60 -> 24), centred on white: 4 white columns each side
        canvas = np.full((side, side, 3), 255, np.uint8)
        canvas[:, 4:28] = _nearest(pixels, 24, 32)
        return canvas
    return _nearest(pixels, 32, 43)[5:37]  # crop: the short side to 32 (60 -> 32, 80 -> 42.7 -> 43), the centre


@pytest.mark.parametrize("policy", ["stretch", "pad", "crop"])
def test_every_resize_policy_gives_the_square_input(policy: str) -> None:
    prep = Preprocessing(size=32, resize=policy)
    assert resize(Image.new("RGB", (60, 80), "red"), prep).size == (32, 32)
    noise = np.random.default_rng(0).integers(0, 256, (80, 60, 3), dtype=np.uint8)  # any misplaced pixel shows
    out = resize(Image.fromarray(noise), Preprocessing(size=32, resize=policy, resample="nearest"))
    np.testing.assert_array_equal(np.asarray(out), _policy_by_hand(noise, policy, 32))


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
    picture = Image.new("RGB", (2000, 2000), "blue")
    picture.paste((220, 20, 20), (0, 0, 1000, 1000))  # red top-left quarter: where each pixel lands shows
    data = _encoded(picture, "JPEG")
    prep = Preprocessing(size=64)
    model_input = load_model_input(data, prep, BIG)
    assert model_input.shape == (3, 64, 64)
    drafted = open_image(data, BIG, draft_size=128)
    assert drafted.size[0] < 2000
    # By hand: the JPEG decoder's own 1/8 scale (the largest keeping both sides >= 128: 250 x 250) ...
    with Image.open(io.BytesIO(data)) as by_hand:
        by_hand.draft("RGB", (128, 128))
        reference = by_hand.convert("RGB")
    assert drafted.size == reference.size == (250, 250)
    np.testing.assert_array_equal(np.asarray(drafted), np.asarray(reference))
    # ... is the full decode averaged over 8 x 8 blocks, in numpy (JPEG's rounding aside, larger at the red edge).
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)
    difference = np.abs(np.asarray(drafted, np.float64) - full.reshape(250, 8, 250, 8, 3).mean(axis=(1, 3)))
    assert difference.mean() < 0.5 and np.quantile(difference, 0.99) <= 4 and difference.max() <= 20
    # The model input: that draft stretched to 64 x 64 (bilinear), CHW, (pixel - 0) / 1.
    expected = np.asarray(reference.resize((64, 64), Image.Resampling.BILINEAR), np.float32).transpose(2, 0, 1)
    np.testing.assert_array_equal(model_input, expected)
    assert np.abs(model_input[:, 10, 10] - (220, 20, 20)).max() <= 12  # red quarter, top-left
    assert np.abs(model_input[:, 50, 50] - (0, 0, 255)).max() <= 12  # blue elsewhere


# --- Bad input: every file a shop folder or an upload form gets (tests/image_corpus.py) -------------------------

UPLOADS = PixelLimits.for_uploads(load_settings())
CORPUS = bad_inputs()


def _close(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 30) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, expected))


def _is_upright(image: Image.Image) -> bool:
    """The `upright_picture` look: 30x40, red on top, blue below."""
    return (image.size == (30, 40) and _close(image.getpixel((15, 5)), RED)
            and _close(image.getpixel((15, 35)), BLUE))


def test_a_corrupt_exif_block_still_opens_upright() -> None:
    """Pillow's exif_transpose raises on this file (it rewrites the damaged block); fashionrec only needs the
    Orientation tag, which still reads, so the intact picture is used, upright."""
    data = corrupt_exif_jpeg(seed=0)
    with Image.open(io.BytesIO(data)) as image, pytest.raises(Exception):
        from PIL import ImageOps
        ImageOps.exif_transpose(image)  # the failure the file reproduces (struct.error, TypeError, ...)
    assert _is_upright(open_image(data, BIG))
    assert _is_upright(open_image(corrupt_exif_jpeg(seed=1), BIG))


@pytest.mark.parametrize("orientation", range(2, 9))
def test_every_exif_orientation_comes_out_upright(orientation: int) -> None:
    opened = open_image(rotated_jpeg(upright_picture(), orientation), BIG)
    assert _is_upright(opened)
    assert _is_upright(open_image(opened, BIG))  # an upright image is not turned a second time


LOOKS = {
    "corrupt_exif.jpg": _is_upright,
    "rotated.jpg": _is_upright,
    "animated.gif": lambda image: image.size == (20, 20) and _close(image.getpixel((10, 10)), RED, 2),  # frame 1
    "cmyk.jpg": lambda image: _close(image.getpixel((12, 12)), RED),
    "camera_mpo.jpg": lambda image: _close(image.getpixel((12, 12)), RED),  # the first picture
    "deep.png": lambda image: image.getpixel((0, 0)) == (255, 0, 128) and image.getpixel((1, 0)) == (0, 255, 0),
    "grey16.png": lambda image: image.getpixel((0, 0)) == (0, 0, 0) and image.getpixel((1, 0)) == (255, 255, 255),
    # alpha 0 is white; alpha 128 is red half over white
    "palette_alpha.png": lambda image: (image.getpixel((0, 0)) == (255, 255, 255)
                                        and _close(image.getpixel((1, 0)), (255, 127, 127), 2)),
    "garbage_exif.png": lambda image: image.size == (4, 4) and image.getpixel((0, 0)) == (220, 20, 20),
}


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_every_bad_input_decodes_right_or_gets_a_message_with_the_way_out(case: BadInput) -> None:
    if case.error is None:
        opened = open_image(case.data, UPLOADS, draft_size=448)
        assert opened.mode == "RGB" and LOOKS[case.name](opened), case.name
        return
    with pytest.raises(case.error, match=case.message) as raised:
        open_image(case.data, UPLOADS, draft_size=448)
    message = str(raised.value)
    assert "JPEG, PNG, WebP" in message or "FASHIONREC_MAX_UPLOAD_PIXELS" in message or "again" in message, message
    assert "Pillow" not in message.split("(")[0], message  # a library's name is never the whole story


def test_a_file_path_is_named_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "layers.psd"
    path.write_bytes(next(case.data for case in CORPUS if case.name == "layers.psd"))
    with pytest.raises(UnsupportedImageFormatError, match=r"layers\.psd.*Photoshop.*JPEG, PNG, WebP"):
        open_image(path, BIG)


def test_eps_never_reaches_ghostscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow renders EPS by running Ghostscript; a `gs` on the PATH that leaves a mark proves it never runs."""
    from PIL import EpsImagePlugin

    marker = tmp_path / "ghostscript-ran"
    fake_gs = tmp_path / "bin" / "gs"
    fake_gs.parent.mkdir()
    fake_gs.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    fake_gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_gs.parent}:/usr/bin:/bin")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # forget an earlier lookup: find our gs
    eps = next(case.data for case in CORPUS if case.name == "drawing.eps")
    with pytest.raises(UnsupportedImageFormatError, match="EPS"):
        open_image(eps, BIG)
    assert not marker.exists()


def test_uploads_have_a_pixel_limit_far_below_the_bomb_limit() -> None:
    assert UPLOADS.full_decode == 4096 * 4096 < Image.MAX_IMAGE_PIXELS // 5
    with pytest.raises(ImageTooLargeError) as raised:
        open_image(png_bomb(6300), UPLOADS, draft_size=448)
    message = str(raised.value)
    assert "6300 x 6300" in message and "16,777,216" in message and "FASHIONREC_MAX_UPLOAD_PIXELS" in message
    assert "JPEG" in message  # the way out: JPEGs may be larger (reduced-scale decoding)


def test_a_large_jpeg_decodes_at_reduced_scale_within_its_own_limit() -> None:
    big = encoded(Image.new("RGB", (5000, 4000), "blue"), "JPEG")  # 20 M pixels: over the full-decode limit
    assert UPLOADS.full_decode < 5000 * 4000 <= UPLOADS.jpeg_draft
    opened = open_image(big, UPLOADS, draft_size=448)
    assert 448 <= min(opened.size) and opened.width < 5000 / 4  # decoded at 1/8: cheap
    with pytest.raises(ImageTooLargeError, match="FASHIONREC_MAX_UPLOAD_PIXELS"):
        open_image(big, UPLOADS)  # no reduced-scale decode allowed (the ResNet50 recipe): the full-decode limit


def test_a_large_png_comes_back_reduced_and_upright_when_a_draft_size_is_given() -> None:
    """The full-size pixels of any format are dropped inside the decode slot, not carried to the caller."""
    stored = upright_picture((800, 1000)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(stored, "PNG", exif=exif.tobytes())
    opened = open_image(data, BIG, draft_size=100)
    assert opened.size == (100, 125)  # 1/8 per side: the largest whole factor keeping both sides >= 100
    assert _close(opened.getpixel((50, 10)), RED, 2) and _close(opened.getpixel((50, 115)), BLUE, 2)
    assert np.array_equal(np.asarray(open_image(Image.open(io.BytesIO(data)), BIG, draft_size=100)),
                          np.asarray(opened))  # a PIL image gets the same treatment
    assert open_image(data, BIG).size == (800, 1000)  # no draft size: full size


def test_upload_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASHIONREC_MAX_UPLOAD_PIXELS", "100")
    monkeypatch.setenv("FASHIONREC_MAX_UPLOAD_JPEG_PIXELS", "1000")
    limits = PixelLimits.for_uploads(load_settings())
    with pytest.raises(ImageTooLargeError, match=r"over the limit of 100 .*FASHIONREC_MAX_UPLOAD_PIXELS"):
        open_image(encoded(Image.new("RGB", (20, 20)), "PNG"), limits)
    with pytest.raises(ImageTooLargeError, match="FASHIONREC_MAX_UPLOAD_JPEG_PIXELS"):
        open_image(encoded(Image.new("RGB", (40, 40)), "JPEG"), limits, draft_size=8)
    assert open_image(encoded(Image.new("RGB", (30, 30)), "JPEG"), limits, draft_size=8).size[0] >= 8
    monkeypatch.setenv("FASHIONREC_MAX_UPLOAD_PIXELS", "many")
    with pytest.raises(ValueError, match="FASHIONREC_MAX_UPLOAD_PIXELS must be a whole number"):
        load_settings()


def test_the_scanned_suffixes_are_the_accepted_formats() -> None:
    pillow_suffixes = Image.registered_extensions()
    assert IMAGE_SUFFIXES and all(pillow_suffixes[suffix] in ACCEPTED_FORMATS for suffix in IMAGE_SUFFIXES)
    assert all(any(pillow_suffixes.get(s) == fmt for s in IMAGE_SUFFIXES) for fmt in ACCEPTED_FORMATS)
    for name in ("a.jpg", "b.JPEG", "c.png", "d.webp", "e.gif", "f.avif"):
        assert is_image_file(Path(name)) and refused_file_reason(Path(name)) is None
    for name in ("a.tif", "b.bmp", "c.eps", "d.psd", "e.svg", "f.heic"):
        assert not is_image_file(Path(name))
        reason = refused_file_reason(Path(name))
        assert reason is not None and "JPEG, PNG, WebP" in reason
    assert refused_file_reason(Path("notes.txt")) is None


def test_concurrent_decodes_are_bounded_by_the_process_slots() -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = encoded(Image.effect_noise((1500, 1500), 40).convert("RGB"), "PNG")
    DECODE_SLOTS.reset_peak()
    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(lambda _: open_image(data, BIG).size, range(8)))
    assert sizes == [(1500, 1500)] * 8
    assert DECODE_SLOTS.size == load_settings().decode_slots == 2
    assert DECODE_SLOTS.peak == DECODE_SLOTS.size  # used, and never more at once


# --- The same corpus through the Python API: Recommender.by_image --------------------------------------------


@pytest.fixture(scope="module")
def shop_recommender(shop_catalog: Path, lite0):
    from fashionrec.catalog.catalog import Catalog
    from fashionrec.recommend.recommender import Recommender

    return Recommender(Catalog.open(shop_catalog), lite0)


def test_by_image_takes_every_usable_file_and_refuses_the_rest_clearly(shop_recommender, tmp_path: Path) -> None:
    for case in CORPUS:
        path = tmp_path / case.name
        path.write_bytes(case.data)
        if case.error is None:
            assert len(shop_recommender.by_image(path, k=5).results) == 5, case.name
            continue
        with pytest.raises(case.error, match=case.message) as raised:
            shop_recommender.by_image(case.data, k=5)
        assert case.name not in str(raised.value)  # bytes have no name
        with pytest.raises(case.error, match=case.message) as raised:
            shop_recommender.by_image(path, k=5)
        assert case.name in str(raised.value)  # a path is named
    catalog = shop_recommender.catalog
    for product_id in catalog.ids:  # the catalog still answers with every product
        assert shop_recommender.by_image(catalog.image_path(product_id), k=1).results[0].id == product_id
