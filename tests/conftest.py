"""Shared fixtures: an isolated model cache, drawn test images, the real sample (skipped when absent)."""

from __future__ import annotations

import shutil

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

# Every test (and every CLI subprocess) uses a fresh cache and never downloads anything.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="fashionrec-tests-"))
os.environ["FASHIONREC_CACHE"] = str(_SESSION_DIR / "cache")
os.environ["KERAS_HOME"] = str(_SESSION_DIR / "keras")
os.environ["FASHIONREC_ALLOW_DOWNLOAD"] = "0"
os.environ.setdefault("KERAS_BACKEND", "torch")

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-product-images"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The shared real sample (7,254 Myntra product photos + styles.csv)."""
    if not (SAMPLE_DIR / "images").is_dir():
        pytest.skip(f"the shared sample data is absent (expected at {SAMPLE_DIR})")
    return SAMPLE_DIR


def draw_product(seed: int, size: tuple[int, int] = (60, 80)) -> Image.Image:
    """A made-up 'product photo': a coloured shape on white, different for every seed."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    w, h = size
    box = [int(rng.integers(0, w // 3)), int(rng.integers(0, h // 3)),
           int(rng.integers(2 * w // 3, w)), int(rng.integers(2 * h // 3, h))]
    shape = seed % 3
    if shape == 0:
        draw.ellipse(box, fill=colour)
    elif shape == 1:
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])], fill=colour)
    return image


def drawn_colour(seed: int) -> np.ndarray:
    """The colour `draw_product(seed)` paints its shape with (the first draw of its seeded rng), as floats."""
    return np.random.default_rng(seed).integers(0, 256, 3).astype(float)


def hex_rgb(text: str) -> np.ndarray:
    """'#a31f2b' -> [163, 31, 43] as floats."""
    return np.array([int(text[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


def write_products(folder: Path, ids: range | list[int], size: tuple[int, int] = (60, 80)) -> list[Path]:
    """Write drawn product JPEGs named <id>.jpg into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for product_id in ids:
        path = folder / f"{product_id}.jpg"
        draw_product(product_id, size).save(path, quality=90)
        paths.append(path)
    return paths



def write_bad_files(folder: Path, truncate_from: Path) -> list[str]:
    """The bad files a real folder holds, named .jpg: empty, not an image, and a truncated copy of a JPEG."""
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not a photo")
    (folder / "cut.jpg").write_bytes(truncate_from.read_bytes()[:200])
    return ["cut.jpg", "empty.jpg", "text.jpg"]

@pytest.fixture(scope="session")
def lite0():
    """The small real backbone (ImageNet EfficientNet-Lite0), exported once per session."""
    from fashionrec.models.embed import load_model

    return load_model("efficientnet-lite0")


@pytest.fixture(scope="session")
def keras_resnet50_h5(tmp_path_factory) -> Path:
    """Keras-generated ResNet50 weights written in the legacy layout of Keras' ImageNet file."""
    from tests.models.keras_reference import build_reference, write_legacy_h5

    path = tmp_path_factory.mktemp("keras") / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    write_legacy_h5(build_reference(seed=0), path)
    return path


SHOP_COLOURS = ("Red", "Blue", "Black", "White")


def shop_metadata(product_id: int) -> dict[str, str]:
    """Made-up metadata of drawn product `product_id` (what `shop_catalog` indexes)."""
    return {"gender": "Men" if product_id % 2 else "Women",
            "articleType": "Shoes" if product_id % 3 == 0 else "Tshirts",
            "baseColour": SHOP_COLOURS[product_id % 4],
            "productDisplayName": f"Drawn product {product_id}"}


@pytest.fixture(scope="session")
def shop_catalog(tmp_path_factory, lite0) -> Path:
    """A 40-product catalog of drawn images with styles.csv-like metadata, indexed with EfficientNet-Lite0."""
    from fashionrec.index.run import index_images

    root = tmp_path_factory.mktemp("shop")
    write_products(root / "images", range(1, 41))
    columns = list(shop_metadata(1))
    lines = [",".join(["id", *columns])] + [",".join([str(i), *shop_metadata(i).values()]) for i in range(1, 41)]
    (root / "styles.csv").write_text("\n".join(lines) + "\n")
    index_images(root / "images", root / "catalog", metadata=root / "styles.csv", model="efficientnet-lite0",
                 progress=False)
    return root / "catalog"


@pytest.fixture(scope="session")
def copies_catalog(tmp_path_factory, lite0) -> Path:
    """40 drawn products (shop metadata) plus 3 byte-identical copies under other ids."""
    import shutil

    from fashionrec.index.run import index_images

    root = tmp_path_factory.mktemp("copies")
    write_products(root / "images", range(1, 41))
    for original, copy in ((1, 101), (2, 102), (2, 103)):
        shutil.copy(root / "images" / f"{original}.jpg", root / "images" / f"{copy}.jpg")
    rows = {**{i: shop_metadata(i) for i in range(1, 41)}, 101: shop_metadata(1), 102: shop_metadata(2),
            103: shop_metadata(2)}
    lines = ["id,gender,articleType,baseColour,productDisplayName"] + [
        ",".join([str(i), *m.values()]) for i, m in rows.items()]
    (root / "styles.csv").write_text("\n".join(lines) + "\n")
    index_images(root / "images", root / "c", metadata=root / "styles.csv", model="efficientnet-lite0", progress=False)
    return root / "c"


def free_port() -> int:
    """A TCP port nobody listens on right now (for servers the tests start)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def copy_catalog(source: Path, target: Path) -> Path:
    """A copy of a catalog another part of the session may be reading: SQLite's -shm and a reader's (empty) -wal
    vanish when that reader closes, between the listing and the copy; those are skipped (a session catalog is only
    read once built, so its -wal holds nothing the main file lacks)."""
    shutil.copytree(source, target, copy_function=_copy_unless_gone)
    return target


def _copy_unless_gone(source: str, target: str) -> None:
    try:
        shutil.copy2(source, target)
    except FileNotFoundError:
        if not source.endswith(("-shm", "-wal")):
            raise
