"""index/write.py: single products in and out while the shop serves; the search space stays put."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from fashionrec.index.write import ProductIdError, ProductWrite, check_product_id, put_products, remove_products
from fashionrec.config import load_settings
from fashionrec.errors import FashionrecError, ImageError, ProductNotFoundError
from fashionrec.recommend.recommender import Recommender
from tests.conftest import copy_catalog, draw_product, write_products


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    draw_product(seed).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def shop(shop_catalog: Path, tmp_path: Path) -> Path:
    """A private copy of the 40-product shop catalog (its images stay where they were indexed from)."""
    copy_catalog(shop_catalog, tmp_path / "c")
    return tmp_path / "c"


def test_add_replace_and_remove_products(shop: Path, lite0) -> None:
    generation = Catalog.generation_of(shop)
    added = put_products(shop, [ProductWrite("new-1", png(101), {"gender": "Men", "articleType": "Shoes"}),
                                ProductWrite("new-2", draw_product(102))], lite0)
    assert [w.created for w in added] == [True, True]
    digest = hashlib.sha256(png(101)).hexdigest()  # kept by the catalog, named by its content
    assert added[0].image == shop / "images" / digest[:2] / f"{digest}.png" and added[0].image.is_file()
    catalog = Catalog.open(shop)
    assert len(catalog) == 42 and catalog.generation == generation + 1
    assert catalog.metadata("new-1") == {"gender": "Men", "articleType": "Shoes"} and catalog.metadata("new-2") == {}
    np.testing.assert_allclose(catalog.model_vectors[catalog.position("new-1")], lite0.embed_image(png(101)), atol=1e-6)
    assert Recommender(catalog, lite0).by_image(png(101), k=1).results[0].id == "new-1"

    jpeg = io.BytesIO()
    draw_product(103).save(jpeg, "JPEG", quality=95)
    again = put_products(shop, [ProductWrite("new-1", jpeg.getvalue())], lite0)[0]  # replaced, as a JPEG
    assert not again.created and again.metadata == {"gender": "Men", "articleType": "Shoes"}  # metadata kept
    assert again.image.name == f"{hashlib.sha256(jpeg.getvalue()).hexdigest()}.jpg" and not added[0].image.exists()
    replaced = Catalog.open(shop)
    assert len(replaced) == 42 and replaced.image_path("new-1") == again.image

    assert remove_products(shop, ["new-1", "3"]) == 2
    after = Catalog.open(shop)
    assert len(after) == 40 and "new-1" not in after and "3" not in after
    assert not again.image.exists() and Catalog.open(shop).image_path("4").is_file()  # an indexed image stays
    with pytest.raises(ProductNotFoundError):
        remove_products(shop, ["new-2", "nope"])
    assert "new-2" in Catalog.open(shop)  # all or none


def test_a_bad_item_writes_nothing(shop: Path, lite0) -> None:
    before = Catalog.open(shop)
    for items, error, message in [
        ([ProductWrite("ok", png(1)), ProductWrite("bad", b"not an image")], ImageError, "product 'bad'"),
        ([ProductWrite("../etc/passwd", png(1))], ProductIdError, "cannot be used"),
        ([ProductWrite("a", png(1)), ProductWrite("a", png(2))], ProductIdError, "given twice"),
        ([ProductWrite("ok", png(1), {"colour": "red"})], FashionrecError, "columns the catalog does not have"),
        ([ProductWrite("ok", png(1), {"gender": 3})], FashionrecError, "text or null"),
    ]:
        with pytest.raises(error, match=message):
            put_products(shop, items, lite0)
    after = Catalog.open(shop)
    assert after.generation == before.generation and after.ids == before.ids
    assert not (shop / "images").exists() or not any((shop / "images").iterdir())


@pytest.mark.parametrize("product_id", ["", ".hidden", "a/b", "a b", "x" * 129, "é", "..", "-x"])
def test_ids_that_could_not_be_file_names_are_refused(product_id: str) -> None:
    with pytest.raises(ProductIdError, match="letters, digits"):
        check_product_id(product_id)
    assert check_product_id("15970") == "15970" and check_product_id("Shirt_2.blue-XL") == "Shirt_2.blue-XL"


def test_added_products_keep_the_search_space_and_its_tuning(tmp_path: Path, lite0, monkeypatch) -> None:
    """Issue 14: any change of products refitted the whitening (every search vector changed) and dropped the
    tuning. Now the space stays put: 100 products added later are whitened by it, unchanged."""
    from fashionrec.catalog.tuning import Tuning, TuningPart
    from fashionrec.catalog.space import save_tuning

    monkeypatch.setenv("FASHIONREC_WHITEN_DIM", "8")
    monkeypatch.setenv("FASHIONREC_REFIT_DRIFT", "1000")  # here: never refit by drift
    write_products(tmp_path / "images", range(1, 101))  # 100 products: whitened
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False)
    catalog = Catalog.open(tmp_path / "c")
    save_tuning(catalog, Tuning("a", "b", (TuningPart("lda", np.eye(8, 2, dtype=np.float32), 1.0),),
                                catalog.space.digest))
    tuned = Catalog.open(tmp_path / "c")
    tuned_vectors = tuned.vectors  # read now: the catalog moves on below
    put_products(tmp_path / "c", [ProductWrite(f"n{i}", draw_product(1000 + i)) for i in range(100)], lite0)
    write_products(tmp_path / "more", range(200, 210))
    index_images(tmp_path / "more", tmp_path / "c", progress=False)  # an index run keeps it too
    after = Catalog.open(tmp_path / "c")
    assert len(after) == 210 and after.keys.space == tuned.keys.space and after.tuning is not None
    rows = [after.position(i) for i in tuned.ids]
    np.testing.assert_allclose(after.vectors[rows], tuned_vectors, atol=1e-6)  # unchanged products: the same vectors
    assert after.drift == pytest.approx(110 / 100)
    refitted = index_images(tmp_path / "more", tmp_path / "c", progress=False,
                            settings=replace(load_settings(), refit_drift=0.5))  # past the drift limit: refit
    assert refitted.space.refitted and "drifted" in refitted.space.reason and refitted.space.tuning_dropped
    assert Catalog.open(tmp_path / "c").drift == 0.0
