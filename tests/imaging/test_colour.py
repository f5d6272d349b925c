"""The colour descriptor (issue 15): the product's own pixels, CIELAB, robust to light, swatches; and the colour
weight end to end on a catalog of drawn products."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance

from fashionrec.imaging import colour
from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from fashionrec.config import load_settings
from fashionrec.errors import FashionrecError
from fashionrec.recommend.recommender import Recommender
from tests.conftest import write_products

RED, NAVY, GREEN = (200, 30, 40), (20, 30, 110), (40, 150, 60)


def garment(fill: tuple[int, int, int], shape: str = "shirt", size: tuple[int, int] = (60, 80),
            background: tuple[int, int, int] = (255, 255, 255), shadow: bool = False) -> Image.Image:
    """A drawn product photo: a garment of one colour on a studio background, optionally with a grey shadow."""
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    w, h = size
    if shadow:
        grey = tuple(max(0, c - 25) for c in background)
        draw.ellipse([w * 0.15, h * 0.8, w * 0.95, h * 0.97], fill=grey)
    if shape == "shirt":
        draw.polygon([(w * .2, h * .15), (w * .8, h * .15), (w * .75, h * .85), (w * .25, h * .85)], fill=fill)
    else:
        draw.ellipse([w * .2, h * .3, w * .8, h * .7], fill=fill)
    return image


def hex_rgb(text: str) -> np.ndarray:
    return np.array([int(text[i:i + 2], 16) for i in (1, 3, 5)])


def test_the_histogram_is_of_the_product_alone_and_its_swatches_name_its_colour() -> None:
    described = colour.describe(garment(RED, shadow=True))
    assert described.histogram.shape == (colour.HISTOGRAM_DIM,)
    assert described.histogram.sum() == pytest.approx(1.0, abs=1e-5)
    top = described.swatches[0]
    assert np.abs(hex_rgb(top.rgb) - np.array(RED)).max() <= 12 and top.share > 0.9  # no white, no shadow
    # The background's colour, whatever it is, is left out: the same red on grey has the same histogram.
    on_grey = colour.describe(garment(RED, background=(225, 225, 230), shadow=True))
    assert np.abs(on_grey.histogram - described.histogram).sum() < 0.1
    assert all(np.abs(hex_rgb(s.rgb) - 225).max() > 30 for s in on_grey.swatches)


def test_a_product_that_fills_the_frame_still_has_its_colour() -> None:
    described = colour.describe(Image.new("RGB", (60, 80), NAVY))
    assert described.histogram.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.abs(hex_rgb(described.swatches[0].rgb) - np.array(NAVY)).max() <= 12


def test_the_colour_vector_is_robust_to_light_and_tells_colours_apart() -> None:
    red = colour.colour_vectors(colour.describe(garment(RED)).histogram)
    brighter = colour.colour_vectors(colour.describe(ImageEnhance.Brightness(garment(RED)).enhance(1.15)).histogram)
    warmer = garment(RED).point(lambda v: v)  # the same photo under warmer light: red up, blue down a little
    r, g, b = warmer.split()
    warmer = Image.merge("RGB", (r.point(lambda v: min(255, v + 10)), g, b.point(lambda v: max(0, v - 10))))
    warm = colour.colour_vectors(colour.describe(warmer).histogram)
    navy = colour.colour_vectors(colour.describe(garment(NAVY)).histogram)
    green = colour.colour_vectors(colour.describe(garment(GREEN, shape="bag")).histogram)
    red_bag = colour.colour_vectors(colour.describe(garment(RED, shape="bag")).histogram)
    assert red.shape == (colour.COLOUR_DIM,) and np.linalg.norm(red) == pytest.approx(1.0, abs=1e-5)
    assert float(red @ brighter) > 0.9 and float(red @ warm) > 0.9
    # The same colour in another cut stays close; another colour in the same cut does not (the layout part shares
    # the cut's silhouette, so the other colour is not at zero).
    assert float(red @ red_bag) > 0.8 > 0.6 > max(float(red @ navy), float(red @ green))
    whole = slice(colour.LAYOUT_DIM, None)  # the whole product's colour, cut aside: the same red is the same
    assert float(red[whole] @ red_bag[whole]) / (1 - colour.LAYOUT_SHARE) > 0.95


def test_an_unknown_colour_is_a_zero_vector() -> None:
    vectors = colour.colour_vectors(np.zeros((2, colour.HISTOGRAM_DIM), np.float32))
    assert vectors.shape == (2, colour.COLOUR_DIM) and not vectors.any()


def test_cielab_round_trips_to_hex() -> None:
    for rgb in (RED, NAVY, GREEN, (255, 255, 255), (0, 0, 0)):
        lab = colour.srgb_to_lab(np.array(rgb, np.float32) / 255)
        assert np.abs(hex_rgb(colour.lab_to_hex(lab)) - np.array(rgb)).max() <= 1
    # The reference white and a known value (sRGB red: L 53.24, a 80.09, b 67.20).
    assert colour.srgb_to_lab(np.ones(3, np.float32)) == pytest.approx([100, 0, 0], abs=0.01)
    assert colour.srgb_to_lab(np.array([1, 0, 0], np.float32)) == pytest.approx([53.24, 80.09, 67.20], abs=0.02)


def test_the_colour_alone_finds_the_real_samples_base_colour(sample_dir: Path) -> None:
    """On 400 seeded real products, the colour vector alone ranks by baseColour far above chance."""
    import csv

    with open(sample_dir / "styles.csv", newline="", encoding="utf-8") as handle:
        colours = {row["id"]: row["baseColour"] for row in csv.DictReader(handle) if row.get("baseColour")}
    paths = sorted(p for p in (sample_dir / "images").glob("*.jpg") if p.stem in colours)
    chosen = [paths[i] for i in np.random.default_rng(15).choice(len(paths), 400, replace=False)]
    labels = np.array([colours[p.stem] for p in chosen])
    vectors = colour.colour_vectors(np.stack([colour.describe(Image.open(p)).histogram for p in chosen]))
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    top = np.argsort(-scores, axis=1)[:, :5]
    precision = float((labels[top] == labels[:, None]).mean())
    chance = float(sum((labels == value).mean() ** 2 for value in set(labels)))
    assert precision > max(0.3, 2 * chance), (precision, chance)


def write_garments(folder: Path) -> dict[str, str]:
    """Ten products: shirts and bags in red, navy and green, with a small pattern so no two are alike."""
    folder.mkdir(parents=True)
    fills = {}
    for index in range(12):
        fill = (RED, NAVY, GREEN)[index % 3]
        shape = "shirt" if index % 2 else "bag"
        image = garment(tuple(max(0, min(255, c + 4 * (index // 3))) for c in fill), shape)
        ImageDraw.Draw(image).line([(20, 20 + index * 3), (40, 30 + index * 3)], fill=(250, 250, 250), width=1)
        image.save(folder / f"{index + 1}.png")
        fills[str(index + 1)] = ("red", "navy", "green")[index % 3]
    return fills


@pytest.fixture(scope="module")
def garment_catalog(tmp_path_factory, lite0) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("garments")
    fills = write_garments(root / "images")
    index_images(root / "images", root / "c", model="efficientnet-lite0", progress=False)
    return root / "c", fills


def test_colour_weight_one_puts_the_same_colour_first_and_zero_ranks_by_shape(garment_catalog, lite0) -> None:
    catalog_dir, fills = garment_catalog
    catalog = Catalog.open(catalog_dir)
    assert catalog.has_colour and catalog.colour_missing == 0 and catalog.search_dim == catalog.shape_dim + colour.COLOUR_DIM
    recommender = Recommender(catalog, lite0, search="exact")
    agree = {}
    for weight in (0.0, 1.0):
        same = [fills[m.id] == fills[product_id]
                for product_id in fills for m in recommender.by_id(product_id, k=3, colour_weight=weight).results]
        agree[weight] = float(np.mean(same))
    assert agree[1.0] == 1.0 and agree[1.0] > agree[0.0]
    found = recommender.by_image(catalog.image_path("2"), k=3, colour_weight=1.0)
    assert found.results[0].id == "2" and found.results[0].similarity == pytest.approx(1.0, abs=1e-3)
    assert found.colour_weight == 1.0 and found.to_dict()["results"][0]["colours"][0]["share"] > 0.8
    assert np.abs(hex_rgb(found.results[0].colours[0]["rgb"]) - np.array(NAVY)).max() <= 16
    with pytest.raises(FashionrecError, match="colour weight must be a number from 0"):
        recommender.by_id("1", colour_weight=1.5)


def test_a_catalog_indexed_before_colour_gets_it_without_the_cnn(tmp_path: Path) -> None:
    """A format-3 catalog (no colour columns) is upgraded in place; the next index run computes every product's
    colour from its file, embeds nothing, and the search vectors change name."""
    import sqlite3

    write_garments(tmp_path / "images")
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False)
    with_colour = Catalog.open(tmp_path / "c")
    expected = with_colour.vectors  # read now: the catalog moves on below
    with sqlite3.connect(tmp_path / "c" / "catalog.sqlite") as db:  # what fashionrec wrote before issue 15
        for column in ("colour", "swatches", "colour_version"):
            db.execute(f"ALTER TABLE products DROP COLUMN {column}")
        db.execute("UPDATE info SET value = '3' WHERE key = 'schema_version'")
    before = Catalog.open(tmp_path / "c")
    assert not before.has_colour and before.colour_missing == 12 and before.search_dim == before.shape_dim
    assert Recommender(before, search="exact").by_id("1", k=2, colour_weight=1.0).results  # shape only, no error
    report = index_images(tmp_path / "images", tmp_path / "c", progress=False)
    after = Catalog.open(tmp_path / "c")
    assert report.embedded == 0 and report.coloured == 12 and after.has_colour and after.colour_missing == 0
    assert after.keys.search not in (before.keys.search,) and after.keys.search == with_colour.keys.search
    np.testing.assert_allclose(after.vectors, expected, atol=1e-6)
    assert json.dumps(after.swatches_at(0)) == json.dumps(with_colour.swatches_at(0))


def test_a_new_colour_version_is_backfilled_without_refitting_the_whitening_and_a_follower_rereads_it(
        tmp_path: Path) -> None:
    """A colour backfill changes search vectors, not model vectors: the whitening (and so the search space, a
    tuning, Milvus' copy of the other products) stays put, and a snapshot following the old one re-reads exactly
    the products whose colour changed."""
    import sqlite3

    settings = replace(load_settings(), whiten_dim=8)  # 100 products: whitened
    write_products(tmp_path / "images", range(1, 101))
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False, settings=settings)
    fresh = Catalog.open(tmp_path / "c")
    expected = fresh.vectors
    with sqlite3.connect(tmp_path / "c" / "catalog.sqlite") as db:  # half the catalog holds an older colour
        db.execute("UPDATE products SET colour_version = ? WHERE CAST(id AS INTEGER) <= 20", (colour.COLOUR_VERSION - 1,))
    older = Catalog.open(tmp_path / "c")
    assert older.colour_missing == 20 and older.vectors.shape == expected.shape
    report = index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=settings)
    after = Catalog.open(tmp_path / "c")
    assert report.embedded == 0 and not report.space.refitted and after.keys.space == fresh.keys.space
    assert after.colour_missing == 0 and after.keys.search == fresh.keys.search != older.keys.search
    assert after.follow_from(older)
    np.testing.assert_allclose(after.vectors, expected, atol=1e-6)
