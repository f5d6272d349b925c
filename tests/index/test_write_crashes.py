"""Live writes killed with SIGKILL at random instants, and writes refused by a full disk: after each, every product
is wholly old or wholly new (its stored hash and vector are those of the file it points at), and no file is left
without a row once orphans are collected."""

from __future__ import annotations

import hashlib
import io
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog import Catalog
from fashionrec.catalog.writer import CatalogWriter
from fashionrec.index.write import ProductWrite, put_products
from tests.conftest import copy_catalog, draw_product

PRODUCTS = 100
KILLS = 20


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    draw_product(seed).save(buffer, "PNG")
    return buffer.getvalue()


def _batch(first_seed: int) -> list[ProductWrite]:
    return [ProductWrite(f"w{i}", _png(first_seed + i), {"gender": f"batch{first_seed}"}) for i in range(PRODUCTS)]


def check_whole(catalog_dir: Path, embedder, ids: list[str]) -> set[str]:
    """Every product's file is there, with the stored hash, and the stored vector is its embedding; returns the
    batches (metadata tags) the products come from."""
    catalog = Catalog.open(catalog_dir)
    rows = [catalog.position(product_id) for product_id in ids]
    paths = [catalog.image_path_at(row) for row in rows]
    for row, path in zip(rows, paths):
        assert path.is_file(), f"{catalog.ids[row]} points at a missing file {path}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == catalog.content_hashes[row]
    stored = catalog.model_vectors[rows]
    fresh = embedder.embed_images(paths)
    assert float(np.min(np.sum(stored * fresh, axis=1))) >= 0.9999
    return {catalog.metadata_at(row).get("gender") for row in rows}


def _no_orphans(catalog_dir: Path) -> None:
    with CatalogWriter(catalog_dir) as writer:
        writer.collect_orphans(temporary_age=0)
    catalog = Catalog.open(catalog_dir)
    used = {catalog.image_path_at(row).resolve() for row in range(len(catalog))}
    own = {path.resolve() for path in (catalog_dir / "images").rglob("*") if path.is_file()}
    assert own <= used, f"files without a row: {sorted(own - used)[:5]}"


@pytest.fixture
def written(shop_catalog: Path, tmp_path: Path, lite0) -> Path:
    copy_catalog(shop_catalog, tmp_path / "c")
    put_products(tmp_path / "c", _batch(5000), lite0)
    return tmp_path / "c"


WRITER = """
import io, sys
from fashionrec.index.write import ProductWrite, put_products
from fashionrec.models.embed import load_model
from tests.index.test_write_crashes import _batch
embedder = load_model("efficientnet-lite0")
print("ready", flush=True)
put_products(sys.argv[1], _batch(int(sys.argv[2])), embedder)
print("done", flush=True)
"""


def _writer(written: Path, seed: int) -> subprocess.Popen:
    """A process that loads the model, says "ready", writes the batch of `seed` and says "done"."""
    root = Path(__file__).resolve().parents[2]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(written), str(seed)], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert writer.stdout.readline().strip() == "ready"  # the model is loaded: the write is what gets killed
    return writer


def test_kill_9_during_a_replacing_batch_leaves_every_product_wholly_old_or_new(written: Path, lite0) -> None:
    ids = [f"w{i}" for i in range(PRODUCTS)]
    timed = _writer(written, 5500)  # one whole write, timed, so the kills cover it on a fast or a loaded machine
    started = time.monotonic()
    assert timed.stdout.readline().strip() == "done"
    duration = time.monotonic() - started
    timed.wait()
    rng = random.Random(9)
    instants = sorted([0.0, 1.5 * duration] + [rng.uniform(0.0, 1.2 * duration) for _ in range(KILLS - 2)])
    outcomes = set()
    for kill, instant in enumerate(instants):
        writer = _writer(written, 6000 + 1000 * kill)
        time.sleep(instant)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        batches = check_whole(written, lite0, ids)
        assert len(batches) == 1, f"kill {kill} at {instant:.2f} s: products from several writes: {batches}"
        outcomes |= batches
    assert len(outcomes) > 1, "no kill came after a commit: the instants do not cover the write"
    _no_orphans(written)


ADD = [sys.executable, "-m", "fashionrec.cli", "add"]


def test_kill_9_during_fashionrec_add_leaves_the_product_wholly_old_or_new(written: Path, lite0,
                                                                           tmp_path: Path) -> None:
    rng = random.Random(10)
    for kill in range(KILLS):
        photo = tmp_path / f"photo{kill}.png"
        photo.write_bytes(_png(9000 + kill))
        adder = subprocess.Popen([*ADD, "w7", str(photo), "--metadata", f'{{"gender": "add{kill}"}}', "--catalog",
                                  str(written)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 3.0))  # the CLI starts, loads the model, writes
        adder.send_signal(signal.SIGKILL)
        adder.wait()
        (tag,) = check_whole(written, lite0, ["w7"])
        image = Catalog.open(written).image_path("w7").read_bytes()
        assert tag == "batch5000" and image == _png(5007) or tag.startswith("add") and \
            image == _png(9000 + int(tag[3:])), f"kill {kill}: metadata {tag} and image disagree"
    _no_orphans(written)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MB tmpfs (mounting needs root; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"a small filesystem cannot be mounted here ({done.stderr.strip()}): run as root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave: int) -> None:
    """Fill the disk but `leave` bytes."""
    free = shutil.disk_usage(disk).free
    with open(disk / "filler", "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))


def test_a_full_disk_refuses_a_write_clearly_and_loses_nothing(shop_catalog: Path, small_disk: Path, lite0) -> None:
    from fashionrec.errors import StorageError

    catalog_dir = small_disk / "c"
    copy_catalog(shop_catalog, catalog_dir)
    put_products(catalog_dir, [ProductWrite("x", _png(1), {"gender": "before"})], lite0)
    big = io.BytesIO()
    rng = np.random.default_rng(0)  # noise does not compress: a PNG of ~1 MB
    from PIL import Image
    Image.fromarray(rng.integers(0, 255, (600, 560, 3), dtype=np.uint8)).save(big, "PNG")
    _fill(small_disk, 40_000)
    with pytest.raises(StorageError, match="full"):
        put_products(catalog_dir, [ProductWrite("x", big.getvalue(), {"gender": "after"})], lite0)
    (small_disk / "filler").unlink()
    assert check_whole(catalog_dir, lite0, ["x"]) == {"before"}
    assert len(Catalog.open(catalog_dir)) == 41
    _no_orphans(catalog_dir)


def test_a_full_disk_stops_an_index_run_with_one_clear_line(tmp_path: Path, small_disk: Path, lite0) -> None:
    from tests.conftest import write_products

    write_products(tmp_path / "images", range(1, 61))
    catalog_dir = small_disk / "c"
    first = subprocess.run([sys.executable, "-m", "fashionrec.cli", "index", str(tmp_path / "images"), "--catalog",
                            str(catalog_dir), "--model", "efficientnet-lite0", "--limit", "20"],
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    _fill(small_disk, 8_000)
    full = subprocess.run([sys.executable, "-m", "fashionrec.cli", "index", str(tmp_path / "images"), "--catalog",
                           str(catalog_dir)], capture_output=True, text=True, timeout=300)
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr
    assert "full" in full.stderr and len(full.stderr.strip().splitlines()) <= 2, full.stderr
    (small_disk / "filler").unlink()
    assert len(Catalog.open(catalog_dir)) >= 20  # what was committed stays, whole
    check_whole(catalog_dir, lite0, Catalog.open(catalog_dir).ids)
