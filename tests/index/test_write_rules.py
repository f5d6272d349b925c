"""index/write.py and catalog/writer.py, the rules a live write keeps: a product added with a photo of any size is
found first by that photo; a removed product stays removed when its folder is indexed again (until --restore); a
catalog that moves keeps every image; a catalog on a read-only disk still answers, and refuses writes clearly."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from fashionrec.catalog import Catalog
from fashionrec.index import index_images
from fashionrec.index.write import ProductWrite, put_products, remove_products
from fashionrec.recommend import Recommender
from tests.conftest import copy_catalog, draw_product, write_products


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture
def sample_catalog(sample_dir: Path, tmp_path_factory, lite0) -> Path:
    """300 sample products (60x80 thumbnails), the 17 photographed ones left out."""
    root = tmp_path_factory.mktemp("sample300")
    photographed = {path.stem for path in (sample_dir / "queries_fullres").glob("*.jpg")}
    ids = [p.stem for p in sorted((sample_dir / "images").glob("*.jpg")) if p.stem not in photographed][:300]
    (root / "images").mkdir()
    for product_id in ids:
        shutil.copy(sample_dir / "images" / f"{product_id}.jpg", root / "images" / f"{product_id}.jpg")
    index_images(root / "images", root / "c", model="efficientnet-lite0", progress=False)
    return root / "c"


def test_a_product_written_with_a_large_photo_is_found_first_by_that_photo(sample_catalog: Path, sample_dir: Path,
                                                                          tmp_path: Path, lite0) -> None:
    copy_catalog(sample_catalog, tmp_path / "c")
    photos = sorted((sample_dir / "queries_fullres").glob("*.jpg"))[:3]
    with Image.open(photos[0]) as full:
        assert full.width * full.height >= 1080 * 1440  # a shopper's photo, not a thumbnail
        medium = _jpeg(full.convert("RGB").resize((600, 800)))
    writes = [ProductWrite(f"new-{path.stem}", path.read_bytes()) for path in photos]
    writes.append(ProductWrite("new-medium", medium))
    put_products(tmp_path / "c", writes, lite0)
    recommender = Recommender(Catalog.open(tmp_path / "c"), lite0)
    for write in writes:
        found = recommender.by_image(write.image, k=3).results
        assert found[0].id == write.product_id and found[0].similarity > 0.999, [(m.id, m.similarity) for m in found]


def test_a_removed_product_stays_removed_when_its_folder_is_indexed_again(tmp_path: Path, lite0) -> None:
    write_products(tmp_path / "images", range(1, 11))
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False)
    assert remove_products(tmp_path / "c", ["3", "4"]) == 2
    again = index_images(tmp_path / "images", tmp_path / "c", progress=False)
    assert again.withdrawn == 2 and again.embedded == 0 and "3" not in Catalog.open(tmp_path / "c")
    said = subprocess.run([sys.executable, "-m", "fashionrec.cli", "index", str(tmp_path / "images"), "--catalog",
                           str(tmp_path / "c")], capture_output=True, text=True, timeout=300)
    assert said.returncode == 0 and "Left out 2 products removed with fashionrec remove" in said.stdout, said.stdout
    assert "--restore" in said.stdout
    restored = index_images(tmp_path / "images", tmp_path / "c", restore=True, progress=False)
    assert restored.embedded == 2 and {"3", "4"} <= set(Catalog.open(tmp_path / "c").ids)
    put_products(tmp_path / "c", [ProductWrite("5", _jpeg(draw_product(55)))], lite0)  # a write brings one back too
    remove_products(tmp_path / "c", ["5"])
    put_products(tmp_path / "c", [ProductWrite("5", _jpeg(draw_product(56)))], lite0)
    assert index_images(tmp_path / "images", tmp_path / "c", progress=False).withdrawn == 0


def test_a_moved_catalog_serves_every_image(shop_catalog: Path, tmp_path: Path, lite0) -> None:
    copy_catalog(shop_catalog, tmp_path / "c")
    put_products(tmp_path / "c", [ProductWrite("own-1", _jpeg(draw_product(71))),
                                  ProductWrite("own-2", _jpeg(draw_product(72)))], lite0)
    shutil.move(tmp_path / "c", tmp_path / "moved")
    catalog = Catalog.open(tmp_path / "moved")
    for product_id in catalog.ids:
        assert catalog.image_path(product_id).is_file(), product_id
    assert catalog.image_path("own-1").is_relative_to(tmp_path / "moved")
    own_1, own_2 = catalog.image_path("own-1"), catalog.image_path("own-2")
    assert remove_products(tmp_path / "moved", ["own-1"]) == 1  # writes go on there, leaving no file behind
    assert not own_1.exists() and own_2.is_file()


@pytest.fixture
def read_only_copy(shop_catalog: Path, tmp_path: Path):
    """The shop catalog on a read-only tmpfs (mounting needs root; skipped elsewhere)."""
    disk = tmp_path / "ro"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("a filesystem cannot be mounted here: run as root")
    try:
        copy_catalog(shop_catalog, disk / "c")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        yield disk / "c"
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_read_only_catalog_answers_and_refuses_writes_in_one_line(read_only_copy: Path, lite0) -> None:
    from fashionrec.errors import StorageError

    catalog = Catalog.open(read_only_copy)
    assert Recommender(catalog, lite0).by_id("4", k=3).results
    for command in (["info", "--json"], ["similar", "4", "-k", "2", "--json"]):
        done = subprocess.run([sys.executable, "-m", "fashionrec.cli", *command, "--catalog", str(read_only_copy)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        json.loads(done.stdout)
    with pytest.raises(StorageError, match="read-only"):
        put_products(read_only_copy, [ProductWrite("x", _jpeg(draw_product(1)))], lite0)
    removed = subprocess.run([sys.executable, "-m", "fashionrec.cli", "remove", "4", "--catalog", str(read_only_copy)],
                             capture_output=True, text=True, timeout=300)
    assert removed.returncode == 2 and len(removed.stderr.strip().splitlines()) == 1, removed.stderr
    assert "read-only" in removed.stderr and "4" in Catalog.open(read_only_copy)


def test_index_takes_the_ids_writes_take_and_info_counts_every_skipped_file(tmp_path: Path) -> None:
    from tests.conftest import write_bad_files

    paths = write_products(tmp_path / "images", range(1, 6))
    shutil.copy(paths[0], tmp_path / "images" / "Foto ü.jpg")  # a name PUT and add refuse as an id
    (tmp_path / "images" / "scan.tif").write_bytes(b"II*\x00")  # a refused format
    bad = write_bad_files(tmp_path / "images", paths[1])
    report = index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False)
    skipped = {s.path: s.reason for s in report.skipped}
    assert set(skipped) == {"Foto ü.jpg", "scan.tif", *bad} and "cannot be a product id" in skipped["Foto ü.jpg"]
    info = subprocess.run([sys.executable, "-m", "fashionrec.cli", "info", "--json", "--catalog", str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=300)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["skipped_files"] == len(report.skipped) == 5


def _own_catalog(tmp_path: Path, lite0) -> Path:
    write_products(tmp_path / "photos", range(1, 4))
    (tmp_path / "styles.csv").write_text("id,gender\n1,Men\n2,Women\n3,Men\n")
    index_images(tmp_path / "photos", tmp_path / "c", metadata=tmp_path / "styles.csv", model="efficientnet-lite0",
                 progress=False)
    put_products(tmp_path / "c", [ProductWrite("X", _jpeg(draw_product(5)), {"gender": "old"})], lite0)
    return tmp_path / "c"


def test_a_folder_inside_the_catalog_keeps_its_photos_and_gets_no_phantom_products(tmp_path: Path, lite0) -> None:
    shop = tmp_path / "shop"
    write_products(shop / "images", range(1, 6))  # the user's photos where the catalog keeps its own
    index_images(shop / "images", shop, model="efficientnet-lite0", progress=False)
    put_products(shop, [ProductWrite("own", _jpeg(draw_product(9)))], lite0)
    again = index_images(shop / "images", shop, progress=False)  # an index run collects orphans
    assert again.products == 6 and all((shop / "images" / f"{i}.jpg").is_file() for i in range(1, 6))
    catalog = Catalog.open(shop)
    assert all(catalog.image_path(i).is_file() for i in catalog.ids)
    from fashionrec.errors import CatalogError

    with pytest.raises(CatalogError, match="holds no product photo"):  # the folder holding `shop`: its photos are
        index_images(tmp_path, tmp_path / "outer", model="efficientnet-lite0", progress=False)  # the catalog's


def test_a_write_racing_the_release_of_its_own_photo_keeps_it(tmp_path: Path, lite0, monkeypatch) -> None:
    from fashionrec.catalog import store

    catalog_dir = _own_catalog(tmp_path, lite0)
    real = store.CatalogStore.put_products

    def racing(self, *args, **kwargs):  # another writer removes X (same photo) between Y's placing and its commit
        monkeypatch.setattr(store.CatalogStore, "put_products", real)
        remove_products(catalog_dir, ["X"])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(store.CatalogStore, "put_products", racing)
    put_products(catalog_dir, [ProductWrite("Y", _jpeg(draw_product(5)))], lite0)
    catalog = Catalog.open(catalog_dir)
    assert "X" not in catalog and catalog.image_path("Y").is_file()


def test_an_image_only_write_never_reverts_metadata_committed_meanwhile(tmp_path: Path, lite0, monkeypatch) -> None:
    import contextlib

    from fashionrec.catalog import store
    from fashionrec.index import write

    catalog_dir = _own_catalog(tmp_path, lite0)
    real = store.CatalogStore.put_products

    def racing(self, *args, **kwargs):  # another process's metadata write commits between preparing and committing
        monkeypatch.setattr(store.CatalogStore, "put_products", real)
        put_products(catalog_dir, [ProductWrite("X", _jpeg(draw_product(6)), {"gender": "acknowledged"})], lite0)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(store.CatalogStore, "put_products", racing)
    monkeypatch.setattr(write, "WRITE_SLOT", contextlib.nullcontext())  # the other writer is another process
    put_products(catalog_dir, [ProductWrite("X", _jpeg(draw_product(7)))], lite0)
    assert Catalog.open(catalog_dir).metadata("X") == {"gender": "acknowledged"}


def test_a_committed_removal_succeeds_when_the_catalog_is_busy_right_after(tmp_path: Path, lite0, monkeypatch) -> None:
    import sqlite3

    from fashionrec.catalog import store

    catalog_dir = _own_catalog(tmp_path, lite0)
    monkeypatch.setattr(store, "BUSY_TIMEOUT_S", 0.3)
    other = sqlite3.connect(catalog_dir / "catalog.sqlite", isolation_level=None)
    real = store.CatalogStore.withdraw

    def then_busy(self, ids):
        paths = real(self, ids)  # committed
        other.execute("BEGIN IMMEDIATE")  # another writer takes the catalog before the release
        return paths

    monkeypatch.setattr(store.CatalogStore, "withdraw", then_busy)
    try:
        assert remove_products(catalog_dir, ["X"]) == 1
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert "X" not in Catalog.open(catalog_dir)


def test_a_removal_during_an_index_run_is_not_undone_by_it(tmp_path: Path, lite0, monkeypatch) -> None:
    from fashionrec.catalog import writer

    catalog_dir = _own_catalog(tmp_path, lite0)
    for path in (tmp_path / "photos").glob("*.jpg"):  # changed files: the run embeds them again
        path.write_bytes(_jpeg(draw_product(int(path.stem) + 50)))
    real = writer.CatalogWriter.write_batch

    def removing_first(self, folder, rows, *args, **kwargs):
        if rows:
            remove_products(catalog_dir, ["2"])  # acknowledged while the run is embedding
        return real(self, folder, rows, *args, **kwargs)

    monkeypatch.setattr(writer.CatalogWriter, "write_batch", removing_first)
    index_images(tmp_path / "photos", catalog_dir, progress=False)
    assert "2" not in Catalog.open(catalog_dir)


def test_a_format_4_catalog_keeps_its_own_photos_when_upgraded_and_moved(tmp_path: Path, lite0,
                                                                        monkeypatch) -> None:
    import sqlite3

    catalog_dir = _own_catalog(tmp_path, lite0)
    catalog = Catalog.open(catalog_dir)
    own = catalog.image_path("X")
    shutil.copy(own, catalog_dir / "images" / "X.jpg")  # where format 4 kept it, named by its id
    monkeypatch.chdir(tmp_path)  # format 4 stored the folder as given: here a relative one
    with sqlite3.connect(catalog_dir / "catalog.sqlite") as db:
        db.execute("UPDATE products SET folder = 'c/images', path = 'X.jpg' WHERE id = 'X'")
        db.execute("UPDATE info SET value = '4' WHERE key = 'schema_version'")
    own.unlink()
    upgraded = Catalog.open(tmp_path / "c")  # opened by an absolute path: the spelling differs
    assert upgraded.image_path("X") == catalog_dir / "images" / "X.jpg"
    index_images(tmp_path / "photos", catalog_dir, progress=False)  # collects orphans: X's photo is no orphan
    shutil.move(catalog_dir, tmp_path / "moved")
    assert Catalog.open(tmp_path / "moved").image_path("X").is_file()


def test_collecting_orphans_removes_only_unused_content_addressed_photos(tmp_path: Path, lite0) -> None:
    import hashlib

    from fashionrec.index.write import collect_orphans

    catalog_dir = _own_catalog(tmp_path, lite0)
    data = _jpeg(draw_product(77))
    digest = hashlib.sha256(data).hexdigest()
    orphan = catalog_dir / "images" / digest[:2] / f"{digest}.jpg"  # what a write killed before its commit leaves
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(data)
    mine = catalog_dir / "images" / "notes.jpg"  # a file someone put there: not the catalog's to remove
    mine.write_bytes(data)
    assert collect_orphans(catalog_dir) == 1
    assert not orphan.exists() and mine.exists() and Catalog.open(catalog_dir).image_path("X").is_file()


def test_a_model_rebuild_embeds_the_catalogs_own_products_again(tmp_path: Path, lite0) -> None:
    import sqlite3

    catalog_dir = _own_catalog(tmp_path, lite0)
    with sqlite3.connect(catalog_dir / "catalog.sqlite") as db:  # vectors of an older build of the model
        model_id = db.execute("SELECT value FROM info WHERE key = 'model_id'").fetchone()[0]
        db.execute("UPDATE info SET value = ? WHERE key = 'model_id'", (model_id.rpartition(":")[0] + ":00000000",))
    report = index_images(tmp_path / "photos", catalog_dir, progress=False)
    catalog = Catalog.open(catalog_dir)
    assert report.outdated == 4 and sorted(catalog.ids) == ["1", "2", "3", "X"]
    assert catalog.model_id == model_id and catalog.metadata("X") == {"gender": "old"}
    assert catalog.image_path("X").read_bytes() == _jpeg(draw_product(5))
    stored = catalog.model_vectors[catalog.position("X")]
    assert float(stored @ lite0.embed_image(catalog.image_path("X"))) >= 0.9999
