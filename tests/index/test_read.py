"""index/read.py: a query photo decodes no larger than the catalog's look needs (`decode_query`), and answers as the
photo decoded in full does (the reference: every pixel of the shopper's photo)."""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from fashionrec.catalog import Catalog
from fashionrec.imaging.decode import PixelLimits, open_image
from fashionrec.imaging.preprocess import Preprocessing
from fashionrec.index import index_images
from fashionrec.index.read import decode_query, query_draft_size
from fashionrec.recommend import Recommender
from fashionrec.recommend.view import View
from tests.conftest import draw_product

PREP = Preprocessing(size=260)


def _jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    draw_product(3, size).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_a_query_decodes_as_small_as_the_look_needs_and_never_larger_than_the_model_draft() -> None:
    photo = _jpeg((1800, 2400))
    limits = PixelLimits.uniform(40_000_000)
    assert query_draft_size(PREP, (60, 80)) == 160 and query_draft_size(PREP, None) == PREP.draft_size == 520
    assert query_draft_size(PREP, (1080, 1440)) == 520  # a catalog of large photos: the model's own draft
    assert query_draft_size(replace(PREP, allow_draft=False), (60, 80)) is None  # a recipe matched pixel for pixel
    small = decode_query(photo, limits, PREP, (60, 80))
    assert small.size == (225, 300) and small.info["full_size"] == (1800, 2400)  # 1/8: both sides >= 2 x 80
    assert decode_query(photo, limits, PREP, None).size == (900, 1200)  # the model's draft: both sides >= 520
    assert open_image(photo, limits).size == (1800, 2400)


@pytest.fixture(scope="module")
def photographed_catalog(sample_dir: Path, tmp_path_factory, lite0) -> Path:
    """The 17 photographed products among 283 others of the sample (its 60x80 thumbnails: the look)."""
    root = tmp_path_factory.mktemp("photographed")
    photographed = sorted(path.stem for path in (sample_dir / "queries_fullres").glob("*.jpg"))
    others = [p.stem for p in sorted((sample_dir / "images").glob("*.jpg")) if p.stem not in photographed][::25][:283]
    (root / "images").mkdir()
    for product_id in photographed + others:
        shutil.copy(sample_dir / "images" / f"{product_id}.jpg", root / "images" / f"{product_id}.jpg")
    index_images(root / "images", root / "c", metadata=sample_dir / "styles.csv", model="efficientnet-lite0",
                 progress=False)
    return root / "c"


def test_query_answers_are_those_of_the_photo_decoded_in_full(photographed_catalog: Path, sample_dir: Path, lite0,
                                                              monkeypatch) -> None:
    """The reduced decode changes a photo's pixels a little, as the model's own draft did: each photo still finds its
    own product first, and its top 5 are nearly all those of the photo decoded in full (measured on the whole sample:
    241 of 255 at the three colour weights, as many as the model's 1/2 draft kept)."""
    recommender = Recommender(Catalog.open(photographed_catalog), lite0)
    photos = sorted((sample_dir / "queries_fullres").glob("*.jpg"))
    queries = [(path, weight) for path in photos for weight in (0.0, None, 1.0)]
    fast = {query: [m.id for m in recommender.by_image(query[0], colour_weight=query[1]).results] for query in queries}
    monkeypatch.setattr(View, "_decode", lambda self, image: open_image(image, self._query_limits))  # every pixel
    full = {query: [m.id for m in recommender.by_image(query[0], colour_weight=query[1]).results] for query in queries}
    for path, weight in queries:
        assert fast[(path, weight)][0] == full[(path, weight)][0] == path.stem, (path.stem, weight)
    kept = sum(len(set(fast[query]) & set(full[query])) for query in queries)
    assert kept >= 0.9 * 5 * len(queries), f"{kept} of {5 * len(queries)} answers kept"
