"""recommend/: by image and by id, filters, never the product itself, query matching, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from fashionrec.errors import CatalogError, FashionrecError, FilterError, ModelMismatchError, ProductNotFoundError
from fashionrec.imaging.look import match_catalog_look
from fashionrec.recommend.recommender import Recommender
from fashionrec.recommend.filters import parse_filters
from tests.conftest import draw_product, drawn_colour, hex_rgb, write_products


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rec")
    write_products(root / "images", range(1, 31))
    lines = ["id,gender,articleType"] + [f"{i},{'Men' if i % 2 else 'Women'},{'Shoes' if i % 3 == 0 else 'Tshirts'}"
                                         for i in range(1, 31)]
    (root / "styles.csv").write_text("\n".join(lines) + "\n")
    index_images(root / "images", root / "c", metadata=root / "styles.csv", model="efficientnet-lite0", progress=False)
    return root / "c"


@pytest.fixture(scope="module")
def recommender(catalog_dir: Path, lite0) -> Recommender:
    return Recommender(Catalog.open(catalog_dir), lite0)


def test_a_catalog_photo_finds_itself_first(recommender: Recommender, catalog_dir: Path) -> None:
    photo = Catalog.open(catalog_dir).image_path("7")
    for source in (photo, photo.read_bytes(), Image.open(photo)):
        result = recommender.by_image(source, k=5)
        assert result.results[0].id == "7" and result.results[0].similarity > 0.999 and len(result.results) == 5


def test_by_id_never_returns_the_product_itself(recommender: Recommender) -> None:
    for product_id in ("1", "2", "15"):
        ids = [m.id for m in recommender.by_id(product_id, k=29).results]
        assert product_id not in ids and len(ids) == 29


def test_filters_and_or_and_case(recommender: Recommender) -> None:
    results = recommender.by_id("1", k=30, where={"gender": "men", "articleType": ["Shoes"]}).results
    assert results and all(m.metadata["gender"] == "Men" and m.metadata["articleType"] == "Shoes" for m in results)
    assert {m.id for m in results} == {"3", "9", "15", "21", "27"}
    either = recommender.by_id("1", k=30, where=parse_filters(["gender=Men", "gender=Women"])).results
    assert len(either) == 29


def test_json_shape(recommender: Recommender, catalog_dir: Path) -> None:
    from fashionrec.config import load_settings
    from tests.reference import catalog_arrays, more_like

    default = load_settings().colour_weight
    data = recommender.by_id("4", k=2).to_dict()
    assert data["model"] == "efficientnet-lite0" and len(data["results"]) == 2
    assert set(data["results"][0]) == {"id", "similarity", "cosine", "image", "metadata", "colours"} and isinstance(data["results"][0]["id"], str)
    assert data["colour_weight"] == default and data["notice"] is None
    want = more_like(catalog_arrays(recommender.catalog), "4", default, k=2)  # brute force
    assert [r["id"] for r in data["results"]] == want.ids
    assert [r["similarity"] for r in data["results"]] == pytest.approx(want.similarities, abs=1e-5)
    images = catalog_dir.parent / "images"
    for result in data["results"]:
        number = int(result["id"])
        assert result["metadata"] == {"gender": "Men" if number % 2 else "Women",  # as the fixture's styles.csv
                                      "articleType": "Shoes" if number % 3 == 0 else "Tshirts"}
        assert Path(result["image"]).resolve() == (images / f"{number}.jpg").resolve()
        # The drawn product is one colour on white: its dominant colour is that paint (JPEG and averaging aside).
        assert np.abs(hex_rgb(result["colours"][0]["rgb"]) - drawn_colour(number)).max() <= 16, result["colours"]
        assert 0.5 < result["colours"][0]["share"] <= 1


def test_errors_are_clear(recommender: Recommender) -> None:
    with pytest.raises(ProductNotFoundError, match="'404' is not in the catalog"):
        recommender.by_id("404")
    with pytest.raises(FilterError, match="unknown filter column 'size'.*gender, articleType"):
        recommender.by_id("1", where={"size": "M"})
    with pytest.raises(FashionrecError, match="k must be"):
        recommender.by_id("1", k=0)
    with pytest.raises(FilterError, match="column=value"):
        parse_filters(["gender"])


def test_an_empty_catalog_says_so(tmp_path: Path, lite0) -> None:
    from fashionrec.catalog.store import CatalogStore

    write_products(tmp_path / "images", [1])
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False)
    with CatalogStore(tmp_path / "c") as store:  # its last product removed (an index run never empties a catalog)
        store.remove(["1"])
    with pytest.raises(CatalogError, match="is empty"):
        Recommender(Catalog.open(tmp_path / "c"), lite0).by_image(draw_product(1))


def test_the_catalog_model_must_match(catalog_dir: Path) -> None:
    from fashionrec.models.embed import load_model

    with pytest.raises(ModelMismatchError, match="cannot be compared"):
        Recommender(Catalog.open(catalog_dir), load_model("efficientnet-lite2"))


def test_large_queries_are_brought_to_the_catalog_look(recommender: Recommender) -> None:
    big = draw_product(7).resize((600, 800))
    matched = match_catalog_look(big, (60, 80))
    assert matched.size == (60, 80) and matched.mode == "RGB"
    assert match_catalog_look(draw_product(7), (60, 80)).size == (60, 80)  # small photos pass unchanged
    assert recommender.query_image(big).size == (60, 80)
    assert recommender.by_image(big, k=1).results[0].id == "7"


def test_duplicate_images_come_back_once_unless_asked(copies_catalog: Path, lite0) -> None:
    recommender = Recommender(Catalog.open(copies_catalog), lite0)
    more = [m.id for m in recommender.by_id("1", k=42).results]
    assert "101" not in more and len(more) == 43 - 4  # itself, its copy 101, and two of 2/102/103 left out
    assert len({"2", "102", "103"} & set(more)) == 1
    assert "101" in [m.id for m in recommender.by_id("1", k=5, show_duplicates=True).results]
    photo = Catalog.open(copies_catalog).image_path("2")
    first = [m.id for m in recommender.by_image(photo, k=3).results]
    assert first[0] in {"2", "102", "103"} and not {"2", "102", "103"} & set(first[1:])
    every = [m.id for m in recommender.by_image(photo, k=3, show_duplicates=True).results]
    assert set(every) == {"2", "102", "103"}


def test_filters_that_match_nothing_give_no_results(recommender: Recommender) -> None:
    for show_duplicates in (False, True):
        assert recommender.by_id("1", k=5, where={"gender": "Nobody"}, show_duplicates=show_duplicates).results == []
        photo = recommender.catalog.image_path("1")
        assert recommender.by_image(photo, k=5, where={"gender": "Nobody"}, show_duplicates=show_duplicates).results == []


@pytest.mark.parametrize("show_duplicates", [False, True])
def test_similar_all_and_by_id_equal_brute_force_for_every_product(copies_catalog: Path, lite0,
                                                                   show_duplicates: bool) -> None:
    """Both "more like this" paths (they share the ranking code) against an exhaustive numpy ranking written in
    tests/reference.py: [shape; gains x colour] . [shape; colour] within the shape shortlist (20 of these 43
    products; k 25 goes past it, in shape order), ties by row, never the product itself, and unless
    `show_duplicates` no copy of its image and one product per image content (hashed here from the files)."""
    from fashionrec.config import load_settings
    from fashionrec.recommend.similar_all import similar_all
    from tests.reference import catalog_arrays, more_like

    catalog = Catalog.open(copies_catalog)
    arrays = catalog_arrays(catalog)
    looks = arrays.shape @ arrays.shape.T  # so exact copies are the only duplicates: no two drawings are near copies
    distinct = np.array([[a != b for b in arrays.file_hashes] for a in arrays.file_hashes])
    assert catalog.has_colour and looks[distinct].max() < load_settings().duplicate_cosine
    assert len(set(arrays.file_hashes)) == 40  # 43 files, 3 of them copies
    recommender = Recommender(catalog, lite0)
    default = load_settings().colour_weight
    K = 25
    for weight, raw in ((None, default), (0.0, 0.0), (1.0, 1.0)):
        table = similar_all(catalog, k=K, show_duplicates=show_duplicates, colour_weight=weight)
        assert table.ids == arrays.ids
        for product_id, similar, similarities in zip(table.ids, table.similar, table.similarities):
            want = more_like(arrays, product_id, raw, k=K, show_duplicates=show_duplicates)
            assert similar == want.ids, (product_id, weight)
            # The figures to within one pair of the 780 (a score 1e-5 from a pair's, the tie tolerance, may round
            # either way in float32 or float64 among these 25 x 43 x 3 figures).
            assert similarities == pytest.approx(want.similarities, abs=1.5 / 780)
            got = recommender.by_id(product_id, k=K, show_duplicates=show_duplicates, colour_weight=weight).results
            assert [m.id for m in got] == want.ids, (product_id, weight)
            assert [m.similarity for m in got] == pytest.approx(want.similarities, abs=1.5 / 780)
            assert [m.similarity for m in got] == pytest.approx(similarities, abs=1e-6)  # the two paths: the same
        assert len(list(table.rows())) == K * len(catalog)
    if not show_duplicates:  # the reference itself knows the copies: 1 and 101 never answer each other
        assert "101" not in more_like(arrays, "1", 0.0, k=42).ids


def test_the_hnsw_index_gives_the_exact_answers_on_a_small_catalog(copies_catalog: Path, lite0) -> None:
    pytest.importorskip("faiss", reason="approximate search needs faiss (pip install -e '.[ann]')")
    catalog = Catalog.open(copies_catalog)
    exact = Recommender(catalog, lite0, search="exact")
    approximate = Recommender(catalog, lite0, search="hnsw")
    assert (exact.search_in_use, approximate.search_in_use) == ("exact", "hnsw")
    assert list((copies_catalog / "derived").glob("hnsw-*.faiss"))
    assert catalog.has_colour
    for weight in (0.0, 0.5, 1.0):  # one index, any colour weight (issue 15)
        for product_id in ("1", "7", "30"):
            for where in (None, {"gender": "Men"}):
                want = exact.by_id(product_id, k=8, where=where, colour_weight=weight).results
                got = approximate.by_id(product_id, k=8, where=where, colour_weight=weight).results
                assert [m.id for m in got] == [m.id for m in want]
                assert [m.similarity for m in got] == pytest.approx([m.similarity for m in want], abs=1e-5)
        photo = catalog.image_path("12")
        assert ([m.id for m in approximate.by_image(photo, k=5, colour_weight=weight).results]
                == [m.id for m in exact.by_image(photo, k=5, colour_weight=weight).results])
        assert approximate.by_image(photo, k=3, colour_weight=weight).results[0].id == "12"


def test_a_stale_hnsw_file_is_never_opened_and_superseded_ones_are_removed(tmp_path: Path, lite0) -> None:
    """Issue 13: the FAISS file was named by a fingerprint that left out the search space, so a file of other
    vectors could be opened; now it is named by the search vectors it indexes, and old files are removed."""
    pytest.importorskip("faiss", reason="approximate search needs faiss (pip install -e '.[ann]')")
    from dataclasses import replace as with_fields

    from fashionrec.config import load_settings

    settings = with_fields(load_settings(), whiten_dim=8)
    write_products(tmp_path / "images", range(1, 101))  # 100 products: whitened
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False, settings=settings)
    graphs = lambda: sorted(p.name for p in (tmp_path / "c" / "derived").glob("hnsw-*"))  # noqa: E731
    first = Catalog.open(tmp_path / "c")
    Recommender(first, lite0, search="hnsw")
    assert graphs() == [f"hnsw-{first.keys.search}.faiss"]
    write_products(tmp_path / "images", [101])  # new products: new search vectors, another file
    index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=settings)
    second = Catalog.open(tmp_path / "c")
    assert second.keys.search != first.keys.search
    hnsw, exact = Recommender(second, lite0, search="hnsw"), Recommender(second, lite0, search="exact")
    assert graphs() == [f"hnsw-{second.keys.search}.faiss"]  # built for these vectors; the old one removed
    assert [m.id for m in hnsw.by_id("101", k=5).results] == [m.id for m in exact.by_id("101", k=5).results]
    index_images(tmp_path / "images", tmp_path / "c", progress=False, settings=with_fields(settings, whiten_dim=4))
    third = Catalog.open(tmp_path / "c")  # same products, another space: another file again
    assert third.keys.products == second.keys.products and third.keys.search != second.keys.search


def test_auto_index_is_exact_below_the_threshold_and_bad_names_are_refused(copies_catalog: Path, lite0) -> None:
    assert Recommender(Catalog.open(copies_catalog), lite0).search_in_use == "exact"
    with pytest.raises(FashionrecError, match="auto, exact, ivf"):
        Recommender(Catalog.open(copies_catalog), lite0, search="annoy")


def test_a_recommender_follows_the_catalog_snapshot_by_snapshot(tmp_path: Path, lite0) -> None:
    """Issue 14: a serving process answered from the catalog it opened; new products stayed invisible until a
    restart. Now refresh() swaps to the latest committed snapshot, reading only what changed, and a query in
    flight keeps the snapshot it started on."""
    import io

    from fashionrec.index.write import ProductWrite, put_products, remove_products

    write_products(tmp_path / "images", range(1, 21))
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False)
    recommender = Recommender(Catalog.open(tmp_path / "c"), lite0, search="exact")
    old = recommender.catalog
    assert recommender.refresh() is False  # nothing committed since
    photo = io.BytesIO()
    draw_product(500).save(photo, "PNG")
    put_products(tmp_path / "c", [ProductWrite("500", photo.getvalue())], lite0)
    remove_products(tmp_path / "c", ["7"])
    assert "500" not in recommender.catalog  # not yet
    assert recommender.refresh() is True
    new = recommender.catalog
    assert "500" in new and "7" not in new and new.generation > old.generation
    assert recommender.by_image(photo.getvalue(), k=1).results[0].id == "500"
    assert all(m.id != "7" for m in recommender.by_id("8", k=19).results)
    fresh = Catalog.open(tmp_path / "c")  # the incremental snapshot equals one read from scratch
    np.testing.assert_allclose(new.vectors, fresh.vectors, atol=1e-6)
    assert "7" in old and old.vectors.shape[0] == 20  # the old snapshot is untouched (queries in flight)


def test_following_in_the_background_picks_up_an_index_run(tmp_path: Path, lite0) -> None:
    import time

    write_products(tmp_path / "images", range(1, 11))
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False)
    recommender = Recommender(Catalog.open(tmp_path / "c"), lite0)
    recommender.follow(0.1)
    try:
        write_products(tmp_path / "more", range(30, 35))
        index_images(tmp_path / "more", tmp_path / "c", progress=False)
        deadline = time.monotonic() + 5
        while "34" not in recommender.catalog and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "34" in recommender.catalog and recommender.by_id("34", k=3).results
    finally:
        recommender.close()


def test_a_refresh_ending_after_close_swaps_nothing_in_and_closes_what_it_opened(tmp_path: Path, lite0,
                                                                               monkeypatch) -> None:
    """Issue 24: a refresh that outlived close()'s wait for the follower swapped in a backend nobody closed."""
    write_products(tmp_path / "images", range(1, 11))
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False)
    recommender = Recommender(Catalog.open(tmp_path / "c"), lite0)
    served, opened, closed = recommender._backend, [], []
    real = Recommender._next_backend

    def slow(self, catalog, view):  # close() is called while the new snapshot's backend is being made
        backend = real(self, catalog, view)
        backend.close = lambda: closed.append(backend)
        opened.append(backend)
        self._stop.set()
        return backend

    monkeypatch.setattr(Recommender, "_next_backend", slow)
    write_products(tmp_path / "more", range(30, 33))
    index_images(tmp_path / "more", tmp_path / "c", progress=False)
    assert recommender.refresh() is False
    assert recommender._backend is served and "31" not in recommender.catalog and closed == opened != []
    assert recommender.refresh() is False and len(opened) == 1  # closed: nothing is opened any more
