"""Photos of people answered per garment (issue 23): composed photos, packshots, the faces' shapes, and the
VITON-HD pairs (skipped when absent; nothing of that set is kept).

The composed photos: a sample photo of a model in a T-shirt and one of a model in jeans, side by side on a larger
white canvas. Each garment's region must find its own product. The catalog holds the sample photos at 180 x 240 (3x
the sample's thumbnails) so that both halves of a composite keep enough pixels in the catalog's look.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fashionrec.api import create_app
from fashionrec.catalog.catalog import Catalog
from fashionrec.config import load_settings
from fashionrec.errors import FashionrecError
from fashionrec.index.run import index_images
from fashionrec.recommend.recommender import Recommender
from tests.conftest import copy_catalog, draw_product

# (T-shirt on a model, jeans on a model): sample products whose composite the region finder splits (checked below).
PAIRS = (("26279", "28794"), ("27644", "30442"), ("28672", "31334"), ("29017", "33147"), ("3413", "41356"))
OTHERS = 120
SIZE = (180, 240)
COLUMNS = ("gender", "masterCategory", "subCategory", "articleType", "baseColour")


def _big(sample_dir: Path, product_id: str) -> Image.Image:
    return Image.open(sample_dir / "images" / f"{product_id}.jpg").convert("RGB").resize(SIZE, Image.LANCZOS)


def composite(sample_dir: Path, left: str, right: str) -> Image.Image:
    """Two sample products' photos side by side on a white canvas."""
    canvas = Image.new("RGB", (2 * SIZE[0] + 40, SIZE[1] + 40), "white")
    canvas.paste(_big(sample_dir, left), (10, 20))
    canvas.paste(_big(sample_dir, right), (SIZE[0] + 30, 20))
    return canvas


@pytest.fixture(scope="module")
def people_catalog(sample_dir: Path, tmp_path_factory, lite0) -> Path:
    """The pairs' products and OTHERS seeded sample products, at 180 x 240, with their metadata, in lite0."""
    return _people_catalog(sample_dir, tmp_path_factory.mktemp("people"), OTHERS)


def _people_catalog(sample_dir: Path, root: Path, others: int) -> Path:
    with open(sample_dir / "styles.csv", newline="", encoding="utf-8") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    have = sorted(p.stem for p in (sample_dir / "images").glob("*.jpg"))
    ids = sorted({i for pair in PAIRS for i in pair} | set(np.random.default_rng(0).choice(have, others).tolist()))
    (root / "images").mkdir()
    for product_id in ids:
        _big(sample_dir, product_id).save(root / "images" / f"{product_id}.jpg", quality=90)
    with open(root / "styles.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *COLUMNS])
        writer.writerows([product_id, *(rows.get(product_id, {}).get(c, "") for c in COLUMNS)] for product_id in ids)
    index_images(root / "images", root / "catalog", metadata=root / "styles.csv", model="efficientnet-lite0",
                 progress=False)
    return root / "catalog"


@pytest.fixture(scope="module")
def recommender(people_catalog: Path, lite0) -> Recommender:
    return Recommender(Catalog.open(people_catalog), embedder=lite0, search="exact")


def test_each_garment_of_a_composed_photo_finds_its_own_product(recommender: Recommender, sample_dir: Path) -> None:
    found = 0
    for top, bottom in PAIRS:
        answer = recommender.by_image(composite(sample_dir, top, bottom), k=5)
        by_kind = {region.kind: [m.id for m in region.results] for region in answer.regions}
        assert answer.region == answer.regions[0].kind and answer.results == answer.regions[0].results
        found += top in by_kind.get("top", []) and bottom in by_kind.get("bottom", [])
        for region in answer.regions:  # boxes inside the photo; answers of the region's kind (the catalog says kinds)
            x0, y0, x1, y1 = region.box
            assert 0 <= x0 < x1 <= 2 * SIZE[0] + 40 and 0 <= y0 < y1 <= SIZE[1] + 40
        for match in answer.regions[0].results if answer.regions[0].kind in ("top", "bottom") else []:
            assert match.metadata["subCategory"] == {"top": "Topwear", "bottom": "Bottomwear"}[answer.regions[0].kind]
    assert found >= 4, f"both garments found in only {found} of {len(PAIRS)} composed photos"


def test_a_small_catalog_on_raw_vectors_still_answers_per_garment(sample_dir: Path, tmp_path: Path, lite0) -> None:
    """Under 100 products the catalog is not whitened and every cosine runs high: a composite must not pass for the
    shop's own photo there (it did, at the whitened space's same-photo threshold)."""
    small = Recommender(Catalog.open(_people_catalog(sample_dir, tmp_path, 30)), embedder=lite0, search="exact")
    assert small.catalog.whitening is None
    found = [bool(small.by_image(composite(sample_dir, *pair)).regions) for pair in PAIRS]
    assert sum(found) >= 4, found
    own = small.by_image(_big(sample_dir, PAIRS[0][0]))
    assert own.regions == () and own.results[0].id == PAIRS[0][0]


def test_the_region_asked_for_gives_the_results(recommender: Recommender, sample_dir: Path) -> None:
    photo = composite(sample_dir, *PAIRS[0])
    default = recommender.by_image(photo, k=5)
    assert len(default.regions) >= 2 and "bag" not in [r.kind for r in default.regions]
    other = next(r for r in default.regions if r.kind != default.region)
    chosen = recommender.by_image(photo, k=5, region=other.kind)
    assert chosen.region == other.kind and [m.id for m in chosen.results] == [m.id for m in other.results]
    missing = recommender.by_image(photo, k=5, region="bag")
    assert missing.region == default.region and "no bag found" in missing.notice
    with pytest.raises(FashionrecError, match="unknown region"):
        recommender.by_image(photo, region="hat")
    whole = recommender.by_image(photo, k=5, region="top", regions=False)  # the whole photo wins, and says so
    assert whole.regions == () and "the whole photo was asked for" in whole.notice


def test_the_kind_never_overrules_the_shoppers_filters(recommender: Recommender, sample_dir: Path) -> None:
    """A top found, the shopper asking for jeans: the top's answers are jeans (their filter), not nothing."""
    photo = composite(sample_dir, *PAIRS[0])
    answer = recommender.by_image(photo, k=5, where={"articleType": "Jeans"}, region="top")
    assert answer.results and all(m.metadata["articleType"] == "Jeans" for m in answer.results)


def test_a_packshot_and_the_shops_own_photo_are_answered_whole(recommender: Recommender, sample_dir: Path,
                                                               tmp_path: Path) -> None:
    drawn = draw_product(3, (240, 320))  # a product alone on white: no skin
    for photo in (drawn, _big(sample_dir, PAIRS[0][0])):  # ... and a catalog product's own photo (a person in it)
        on, off = recommender.by_image(photo, k=8), recommender.by_image(photo, k=8, regions=False)
        assert on.regions == () and on.region is None
        assert [(m.id, m.similarity) for m in on.results] == [(m.id, m.similarity) for m in off.results]
    # The shop's own photo stays whole when the shopper's filter leaves its product out of the answers.
    own = recommender.by_image(_big(sample_dir, PAIRS[0][0]), k=5, where={"articleType": "Jeans"})
    assert own.regions == () and own.results and {m.metadata["articleType"] for m in own.results} == {"Jeans"}


def test_the_api_and_the_json_give_the_regions(recommender: Recommender, sample_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "person.jpg"
    composite(sample_dir, *PAIRS[0]).save(path, quality=92)
    expected = recommender.by_image(path, k=3, region="bottom").to_dict()
    client = TestClient(create_app(recommender, load_settings()))
    answer = client.post("/recommend?k=3&region=bottom", files={"file": ("person.jpg", path.read_bytes(),
                                                                          "image/jpeg")})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["region"] == "bottom" == expected["region"]
    assert [r["kind"] for r in body["regions"]] == [r["kind"] for r in expected["regions"]]
    assert [r["box"] for r in body["regions"]] == [r["box"] for r in expected["regions"]]
    assert [m["id"] for m in body["results"]] == [m["id"] for m in expected["results"]]
    assert client.post("/recommend?region=hat", files={"file": ("p.jpg", path.read_bytes(), "image/jpeg")}
                       ).status_code == 422
    some_id = recommender.catalog.ids[0]
    refused = client.get(f"/products/{some_id}/similar?region=top")
    assert refused.status_code == 400 and "region and whole apply to a photo" in refused.json()["detail"]
    whole = client.post("/recommend?k=3&whole=true", files={"file": ("person.jpg", path.read_bytes(), "image/jpeg")})
    assert whole.json()["regions"] == [] and [m["id"] for m in whole.json()["results"]] == [
        m.id for m in recommender.by_image(path, k=3, regions=False).results]
    both = client.post("/recommend?region=top&whole=true", files={"file": ("p.jpg", path.read_bytes(), "image/jpeg")})
    assert both.status_code == 200 and both.json()["regions"] == [] and "whole photo" in both.json()["notice"]


def test_the_cli_prints_one_block_per_garment(people_catalog: Path, sample_dir: Path, tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "person.jpg"
    composite(sample_dir, *PAIRS[0]).save(path, quality=92)
    shown = subprocess.run([sys.executable, "-m", "fashionrec.cli", "recommend", str(path), "--catalog",
                            str(people_catalog), "-k", "2"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "top at [" in shown.stdout and "bottom at [" in shown.stdout


VITON = Path(__file__).resolve().parents[3] / "shared" / "data" / "onmodel-viton-hd"


def test_the_viton_hd_photos_find_the_worn_top(people_catalog: Path, tmp_path: Path) -> None:
    """The 23 person photos, their products written into a copy of the catalog (deleted with tmp_path): the top the
    shopper taps finds its product far more often than the whole photo does."""
    if not (VITON / "person").is_dir():
        pytest.skip(f"the VITON-HD pairs are absent (expected at {VITON})")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        from onmodel import add_pairs, ranks
    finally:
        sys.path.pop(0)

    copy = tmp_path / "catalog"
    copy_catalog(people_catalog, copy)
    names = add_pairs(copy, VITON)
    recommender = Recommender(Catalog.open(copy), search="exact")
    whole = ranks(recommender, VITON, names, lambda rec, image: [[m.id for m in rec.by_image(
        image, k=20, regions=False).results]])
    main = ranks(recommender, VITON, names, lambda rec, image: [[m.id for m in rec.by_image(image, k=20).results]])
    tapped = ranks(recommender, VITON, names, lambda rec, image: [[m.id for m in rec.by_image(
        image, k=20, region="top").results]])
    top5 = [sum(r is not None and r <= 5 for r in found) for found in (whole, main, tapped)]
    # Measured here (lite0, 125 distractors): whole 15, main 10, tapped 22 of 23. The acceptance figures (lite2,
    # the 7,254 sample products as distractors) are benchmarks/onmodel.py's: whole 2, main 13, tapped 17.
    assert top5[2] >= 18 and top5[2] > top5[0] + 3 and top5[1] >= 8, f"R@5 whole/main/tapped: {top5}"


def test_boxes_are_in_the_uploaded_photos_own_pixels(recommender: Recommender, sample_dir: Path) -> None:
    """A large JPEG is decoded reduced; its boxes still come in its own pixels (6x those of the small photo)."""
    small = composite(sample_dir, *PAIRS[0])
    large = small.resize((small.width * 6, small.height * 6), Image.LANCZOS)
    data = io.BytesIO()
    large.save(data, "JPEG", quality=92)
    boxes = {r.kind: r.box for r in recommender.by_image(data.getvalue()).regions}
    small_boxes = {r.kind: r.box for r in recommender.by_image(small).regions}
    assert boxes.keys() == small_boxes.keys()
    for kind, box in boxes.items():
        assert _overlap(box, tuple(6 * v for v in small_boxes[kind])) >= 0.5, (kind, box, small_boxes[kind])
        assert box[2] <= large.width and box[3] <= large.height


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Intersection over union of two boxes."""
    inner = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inner / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inner)


def test_garments_are_cut_from_the_models_draft_when_the_query_decodes_smaller(recommender: Recommender,
                                                                               sample_dir: Path, monkeypatch) -> None:
    """A catalog of small images (a 60x80 look) has a query decode at 1/8 (`index.read.decode_query`); its garments
    are cut from the photo at the model's draft instead (1/2 here), the boxes found on the small decode scaled onto
    it, so that each crop is still much larger than the look and brought to it, as a whole photo is."""
    from fashionrec.recommend.view import _scaled_box

    view = recommender._view
    large = composite(sample_dir, *PAIRS[0]).resize((2400, 1680), Image.LANCZOS)
    data = io.BytesIO()
    large.save(data, "JPEG", quality=92)
    assert view._crop_source(data.getvalue(), view._decode(data.getvalue())).size == view._decode(data.getvalue()).size
    monkeypatch.setattr(view, "_query_size", (60, 80))
    photo = view._decode(data.getvalue())
    source = view._crop_source(data.getvalue(), photo)
    assert photo.size == (300, 210) and source.size == (1200, 840)
    box = (30, 20, 150, 200)  # a garment found on the small decode: 120 x 180 of its pixels
    assert _scaled_box(box, photo.size, source.size) == (120, 80, 600, 800)
    assert _scaled_box((250, 150, 300, 210), photo.size, source.size) == (1000, 600, 1200, 840)  # edges stay inside
