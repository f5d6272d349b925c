"""index/ (plan, read, engine, run): indexing, incremental updates, bad files, model identity, and kill -9 resume."""

from __future__ import annotations

import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from fashionrec.index.plan import natural_key
from fashionrec.imaging.colour import COLOUR_DIM
from fashionrec.config import load_settings
from fashionrec.recommend.recommender import Recommender
from fashionrec.errors import CatalogError, ModelMismatchError
from PIL import Image, ImageOps

from tests.conftest import draw_product, write_bad_files, write_products
from tests.image_corpus import bad_inputs

MODEL = "efficientnet-lite0"


def _index(images: Path, catalog: Path, **kwargs):
    return index_images(images, catalog, model=kwargs.pop("model", MODEL), progress=False, **kwargs)


def _metadata(path: Path, ids: list[int]) -> Path:
    lines = ["id,gender,articleType,productDisplayName"]
    lines += [f"{i},{'Men' if i % 2 else 'Women'},{'Tshirts' if i % 3 else 'Shoes'},Item {i}, with comma" for i in ids]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_index_a_folder_with_metadata(tmp_path: Path, lite0) -> None:
    write_products(tmp_path / "images", range(1, 13))
    report = _index(tmp_path / "images", tmp_path / "c", metadata=_metadata(tmp_path / "s.csv", list(range(1, 11)) + [99]))
    assert (report.embedded, report.products, report.skipped) == (12, 12, ())
    assert (report.images_without_metadata, report.metadata_without_image) == (2, 1)
    catalog = Catalog.open(tmp_path / "c")
    assert catalog.model_name == MODEL and catalog.dim == 1712 and len(catalog) == 12
    assert catalog.metadata("4") == {"gender": "Women", "articleType": "Tshirts", "productDisplayName": "Item 4, with comma"}
    assert catalog.metadata("12") == {}
    np.testing.assert_array_equal(catalog.model_vectors[catalog.position("5")],
                                  lite0.embed_image(tmp_path / "images" / "5.jpg"))
    assert catalog.has_colour and catalog.colour_missing == 0  # computed in the same pass


def test_rerun_is_incremental(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_products(images, range(1, 9))
    _index(images, tmp_path / "c")
    before = Catalog.open(tmp_path / "c")
    assert before.vectors.shape == (8, 1712 + COLOUR_DIM)  # read now: a catalog reads its vectors on first use
    before_model = before.model_vectors
    assert _index(images, tmp_path / "c").embedded == 0

    write_products(images, [20, 21])  # added
    (images / "1.jpg").unlink()  # removed
    os.utime(images / "2.jpg", ns=(1, 1))  # touched, same content
    draw_product(999).save(images / "3.jpg")  # same name, new content
    report = _index(images, tmp_path / "c")  # without --prune a vanished file's product is kept, and counted
    assert (report.embedded, report.removed, report.gone_kept, report.unchanged, report.products) == (3, 0, 1, 6, 10)
    pruned = _index(images, tmp_path / "c", prune=True)
    assert (pruned.embedded, pruned.removed, pruned.gone_kept, pruned.products) == (0, 1, 0, 9)
    after = Catalog.open(tmp_path / "c")
    assert "1" not in after and "20" in after
    np.testing.assert_array_equal(after.model_vectors[after.position("2")], before_model[before.position("2")])
    assert not np.array_equal(after.model_vectors[after.position("3")], before_model[before.position("3")])
    assert _index(images, tmp_path / "c").embedded == 0
    unread = Catalog.open(tmp_path / "c")
    write_products(images, [30])
    _index(images, tmp_path / "c")
    with pytest.raises(CatalogError, match="changed since it was opened"):
        unread.vectors  # its products are gone from the store: it says so rather than mixing two catalogs


def test_an_empty_or_unreadable_folder_changes_nothing(tmp_path: Path) -> None:
    """Issue 13: indexing an empty folder into a catalog removed every product; now it is refused in one line."""
    write_products(tmp_path / "images", range(1, 6))
    _index(tmp_path / "images", tmp_path / "c")
    generation = Catalog.generation_of(tmp_path / "c")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match="holds no product photo .* nothing was changed"):
        _index(tmp_path / "empty", tmp_path / "c", prune=True)
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    write_bad_files(unreadable, truncate_from=tmp_path / "images" / "1.jpg")
    with pytest.raises(CatalogError, match="has no photo fashionrec can read .* nothing was changed; e.g. "):
        _index(unreadable, tmp_path / "c", prune=True)
    with pytest.raises(CatalogError, match="does not exist or is not a folder"):
        _index(tmp_path / "images" / "1.jpg", tmp_path / "c")  # a file, not a folder
    catalog = Catalog.open(tmp_path / "c")
    assert len(catalog) == 5 and Catalog.generation_of(tmp_path / "c") == generation and catalog.skipped == []
    assert Recommender(catalog).by_id("1", k=4).results  # it still answers with every earlier product

    with pytest.raises(CatalogError, match="holds no product photo"):
        _index(tmp_path / "empty", tmp_path / "new")
    assert not (tmp_path / "new").exists()  # no catalog is created for nothing


def test_a_catalog_takes_products_from_several_folders_and_prunes_only_the_folder_indexed(tmp_path: Path) -> None:
    """Issue 13: indexing a second folder removed the first folder's products."""
    write_products(tmp_path / "shoes", range(1, 5))
    write_products(tmp_path / "shirts", range(10, 13))
    _index(tmp_path / "shoes", tmp_path / "c")
    second = _index(tmp_path / "shirts", tmp_path / "c", prune=True)
    assert (second.embedded, second.removed, second.products) == (3, 0, 7)
    catalog = Catalog.open(tmp_path / "c")
    assert catalog.image_path("1") == (tmp_path / "shoes" / "1.jpg").resolve()
    assert catalog.image_path("10") == (tmp_path / "shirts" / "10.jpg").resolve()
    assert set(catalog.folders) == {(tmp_path / "shoes").resolve(), (tmp_path / "shirts").resolve()}

    (tmp_path / "shirts" / "10.jpg").unlink()
    (tmp_path / "shoes" / "1.jpg").unlink()
    kept = _index(tmp_path / "shirts", tmp_path / "c")
    assert (kept.removed, kept.gone_kept, kept.products) == (0, 1, 7)
    pruned = _index(tmp_path / "shirts", tmp_path / "c", prune=True)
    assert (pruned.removed, pruned.products) == (1, 6) and "1" in Catalog.open(tmp_path / "c")  # shoes untouched

    draw_product(99).save(tmp_path / "shirts" / "2.jpg")  # an id the shoes folder holds, another picture: a conflict
    clash = _index(tmp_path / "shirts", tmp_path / "c")
    assert [s.path for s in clash.skipped] == ["2.jpg"] and "already in the catalog from" in clash.skipped[0].reason
    assert "another picture" in clash.skipped[0].reason
    assert Catalog.open(tmp_path / "c").image_path("2") == (tmp_path / "shoes" / "2.jpg").resolve()
    (tmp_path / "shoes" / "3.jpg").replace(tmp_path / "shirts" / "3.jpg")  # a file moved: the product follows it
    moved = _index(tmp_path / "shirts", tmp_path / "c")
    assert moved.embedded == 0 and moved.unchanged == 3  # 11, 12 and 3 (same content: no embedding)
    assert Catalog.open(tmp_path / "c").image_path("3") == (tmp_path / "shirts" / "3.jpg").resolve()


def test_bad_files_are_skipped_with_reasons_and_never_stop_the_run(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_products(images, range(1, 6))
    write_bad_files(images, images / "1.jpg")
    (images / "notes.txt").write_text("ignored: not an image suffix")
    report = _index(images, tmp_path / "c", batch_size=2)
    assert report.products == 5
    reasons = {s.path: s.reason for s in report.skipped}
    assert set(reasons) == {"empty.jpg", "text.jpg", "cut.jpg"}
    assert "empty" in reasons["empty.jpg"] and "not an image" in reasons["text.jpg"] and "truncated" in reasons["cut.jpg"]

    again = _index(images, tmp_path / "c")  # not retried, still reported
    assert again.embedded == 0 and {s.path for s in again.skipped} == set(reasons)
    draw_product(7).save(images / "text.jpg")  # fixed by the shop
    fixed = _index(images, tmp_path / "c")
    assert fixed.embedded == 1 and "text" in Catalog.open(tmp_path / "c")
    assert {s.path for s in fixed.skipped} == {"empty.jpg", "cut.jpg"}


def test_a_folder_of_bad_inputs_indexes_every_usable_photo_and_names_every_other(tmp_path: Path, lite0) -> None:
    """Issue 13: five photos and one JPEG with a damaged EXIF block indexed 0 products and ended in a traceback,
    on every rerun. Now each file of the bad-input corpus is indexed or skipped with its path and reason."""
    images = tmp_path / "images"
    write_products(images, range(1, 6))
    corpus = bad_inputs()
    for case in corpus:
        (images / case.name).write_bytes(case.data)
    report = _index(images, tmp_path / "c", batch_size=4)

    reasons = {s.path: s.reason for s in report.skipped}
    assert set(reasons) == {case.name for case in corpus if not case.indexed}
    for case in corpus:
        if not case.indexed:
            assert re.search(case.message, reasons[case.name]), (case.name, reasons[case.name])
            assert "JPEG, PNG, WebP" in reasons[case.name] or "again" in reasons[case.name]
    catalog = Catalog.open(tmp_path / "c")
    indexed = {Path(case.name).stem for case in corpus if case.indexed}
    assert {"corrupt_exif", "bomb", "animated", "cmyk"} <= indexed  # the bomb is under the catalog's 40 M pixels
    assert set(catalog.ids) == {"1", "2", "3", "4", "5"} | indexed and report.products == len(catalog.ids)

    # The damaged-EXIF photo is embedded as its intact twin, which Pillow itself turns upright.
    twin = ImageOps.exif_transpose(Image.open(io.BytesIO((images / "rotated.jpg").read_bytes())))
    np.testing.assert_array_equal(catalog.model_vectors[catalog.position("corrupt_exif")], lite0.embed_image(twin))

    again = _index(images, tmp_path / "c")  # a rerun: nothing to embed, the same files reported
    assert again.embedded == 0 and {s.path for s in again.skipped} == set(reasons) and again.products == report.products
    recommender = Recommender(Catalog.open(tmp_path / "c"), lite0)
    for product_id in ("1", "2", "3", "4", "5"):  # the catalog answers with every earlier product
        assert recommender.by_image(images / f"{product_id}.jpg", k=1).results[0].id == product_id


def test_files_of_refused_formats_are_reported_not_ignored(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_products(images, [1])
    draw_product(2).save(images / "2.tif")  # a real TIFF: refused by suffix, before any decoder
    draw_product(3).save(images / "3.bmp")
    (images / "notes.txt").write_text("not an image: not reported")
    report = _index(images, tmp_path / "c")
    assert [s.path for s in report.skipped] == ["2.tif", "3.bmp"] and report.products == 1
    assert "TIFF" in report.skipped[0].reason and "JPEG, PNG, WebP" in report.skipped[0].reason


def test_one_catalog_holds_one_model(tmp_path: Path) -> None:
    write_products(tmp_path / "images", range(3))
    _index(tmp_path / "images", tmp_path / "c")
    with pytest.raises(ModelMismatchError, match="holds efficientnet-lite0 vectors and cannot take efficientnet-lite2"):
        _index(tmp_path / "images", tmp_path / "c", model="efficientnet-lite2")
    assert _index(tmp_path / "images", tmp_path / "c", model=None).model == MODEL  # a rerun keeps the catalog's model


def test_a_catalog_of_an_older_model_build_is_refused_then_embedded_again(tmp_path: Path, lite0) -> None:
    """A catalog embedded by export version 1 (ReLU6 swapped for Swish) must never be searched or mixed."""
    from fashionrec.cli import main

    write_products(tmp_path / "images", range(4))
    first = _index(tmp_path / "images", tmp_path / "c")
    name, weights, _ = first.model_id.split(":")
    older = f"{name}:{weights}:0ld0ld00"  # what an older fashionrec recorded: another fingerprint
    with sqlite3.connect(tmp_path / "c" / "catalog.sqlite") as db:
        db.execute("UPDATE info SET value = ? WHERE key = 'model_id'", (older,))
    with pytest.raises(ModelMismatchError, match="older build of efficientnet-lite0.*fashionrec index"):
        Catalog.open(tmp_path / "c")
    assert main(["similar", "0", "--catalog", str(tmp_path / "c")]) == 2
    again = _index(tmp_path / "images", tmp_path / "c", model=None)
    assert (again.outdated, again.embedded, again.products, again.model_id) == (4, 4, 4, first.model_id)
    assert Catalog.open(tmp_path / "c").model_id == first.model_id


def test_duplicate_ids_and_subfolders(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_products(images, [1])
    write_products(images / "shoes", [2])
    draw_product(5).save(images / "shoes" / "1.png")
    report = _index(images, tmp_path / "c")
    assert report.products == 2
    assert [s.path for s in report.skipped] == ["shoes/1.png"] and "already used by 1.jpg" in report.skipped[0].reason
    assert Catalog.open(tmp_path / "c").image_path("2") == (images / "shoes" / "2.jpg").resolve()


def test_limit_takes_the_first_ids_in_natural_order(tmp_path: Path) -> None:
    write_products(tmp_path / "images", range(1, 21))
    _index(tmp_path / "images", tmp_path / "c", limit=5)
    assert Catalog.open(tmp_path / "c").ids == ["1", "2", "3", "4", "5"]
    assert sorted(["10.jpg", "9.jpg", "a2.jpg", "a10.jpg"], key=natural_key) == ["9.jpg", "10.jpg", "a2.jpg", "a10.jpg"]


def test_missing_images_folder(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        _index(tmp_path / "nope", tmp_path / "c")


def _count(catalog: Path) -> int:
    db = catalog / "catalog.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute("SELECT COUNT(*) FROM products").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_9_then_rerun_gives_the_uninterrupted_catalog(tmp_path: Path, lite0) -> None:
    images = tmp_path / "images"
    write_products(images, range(400))
    command = [sys.executable, "-m", "fashionrec.cli", "index", str(images), "--catalog", str(tmp_path / "killed"),
               "--model", MODEL, "--batch-size", "16", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _count(tmp_path / "killed") < 32 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "indexing ended before it could be killed: " + process.stderr.read().decode()
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _count(tmp_path / "killed")
    assert 0 < killed_at < 400

    subprocess.run(command, check=True, capture_output=True)
    _index(images, tmp_path / "whole", batch_size=32)  # another batching, uninterrupted
    resumed, whole = Catalog.open(tmp_path / "killed"), Catalog.open(tmp_path / "whole")
    assert len(resumed) == len(whole) == 400 and resumed.ids == whole.ids
    assert np.array_equal(resumed.vectors, whole.vectors), "vectors must be identical, bit for bit"


def test_ten_kills_at_random_points_each_leave_a_catalog_that_opens_and_resumes(tmp_path: Path, lite0) -> None:
    """Issue 13: `kill -9` of `index` at ten points (while the model loads, between and inside batches, while the
    whitening is fitted and published): after each, the catalog opens (or, killed before its first commit, says it
    was never indexed) and the next run resumes; the end result equals an uninterrupted run, bit for bit."""
    images = tmp_path / "images"
    write_products(images, range(200))
    env = dict(os.environ, FASHIONREC_WHITEN_DIM="8")  # 200 products: a whitening is fitted when each run ends
    command = [sys.executable, "-m", "fashionrec.cli", "index", str(images), "--catalog", str(tmp_path / "killed"),
               "--model", MODEL, "--batch-size", "8", "--no-progress"]
    rng = np.random.default_rng(13)
    # Product counts to kill at (random, rising), then two kills by time alone: at start-up and during the finish.
    points: list[tuple[str, float]] = [("count", float(c)) for c in np.sort(rng.choice(np.arange(8, 192), 8, False))]
    points = [("seconds", 0.3)] + points + [("finish", 0.0)]
    outcomes = []
    for kind, value in points:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 120
        if kind == "seconds":
            time.sleep(value)
        elif kind == "count":
            while _count(tmp_path / "killed") < value and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        else:  # all products written: the run is fitting and publishing the search space
            while _count(tmp_path / "killed") < 200 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        count = _count(tmp_path / "killed")
        try:
            opened = len(Catalog.open(tmp_path / "killed"))
        except CatalogError as exc:
            assert count == 0 and ("never indexed" in str(exc) or "not a fashionrec catalog" in str(exc)), exc
            opened = 0
        assert opened == count
        outcomes.append((kind, value, count))
    print("kills (kind, target, products after the kill):", outcomes)
    assert len(outcomes) == 10 and sum(0 < count < 200 for _, _, count in outcomes) >= 6, outcomes
    subprocess.run(command, check=True, capture_output=True, env=env)
    settings = replace(load_settings(), whiten_dim=8)
    index_images(images, tmp_path / "whole", model=MODEL, batch_size=32, progress=False, settings=settings)
    resumed, whole = Catalog.open(tmp_path / "killed"), Catalog.open(tmp_path / "whole")
    assert resumed.ids == whole.ids and len(resumed) == 200 and resumed.keys.products == whole.keys.products
    assert np.array_equal(resumed.vectors, whole.vectors), "vectors must be identical, bit for bit"
