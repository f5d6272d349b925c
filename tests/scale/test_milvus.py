"""scale/milvus.py: push a catalog into Milvus Lite (a real Milvus, in-process) and search it: the same answers
as exact search with a FLAT index, filters included, values escaped, incremental pushes, refused mismatches."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from fashionrec.errors import CatalogError, FashionrecError, FilterError, ModelMismatchError
from fashionrec.recommend.recommender import Recommender
from tests.conftest import write_products

pytest.importorskip("pymilvus", reason="Milvus search needs pymilvus: pip install -e '.[scale]'")
pytest.importorskip("milvus_lite", reason="the tests run Milvus Lite: pip install -e '.[scale]'")

from fashionrec.scale.milvus import MilvusIndex, MilvusTarget, parse_target, push  # noqa: E402
from fashionrec.scale.milvus.schema import filter_expression, milvus_string  # noqa: E402


def lite(tmp_path: Path, name: str = "m.db") -> str:
    return f"milvus-lite://{tmp_path / name}"


def ids(recommendations) -> list[str]:
    return [match.id for match in recommendations.results]


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("FASHIONREC_MILVUS_TOKEN", raising=False)
    monkeypatch.delenv("FASHIONREC_MILVUS_TOKEN_FILE", raising=False)
    return monkeypatch


def test_addresses_parse_and_bad_ones_are_refused(no_credentials: pytest.MonkeyPatch) -> None:
    assert parse_target("milvus://db.internal:19530/shop") == MilvusTarget("http://db.internal:19530", "shop")
    assert parse_target("milvus-lite:///srv/x/catalog.db") == MilvusTarget("/srv/x/catalog.db", "fashionrec")
    assert parse_target("milvus-lite://rel/c.db?collection=shop_2").collection == "shop_2"
    for bad, message in (("http://db:19530/x", "starts with milvus://, milvuss://"), ("milvus:///x", "needs a host"),
                         ("milvus-lite:///srv/catalog", "names a .db file"),
                         ("milvus://db/bad-name", "not a Milvus collection name")):
        with pytest.raises(FashionrecError, match=message):
            parse_target(bad)


def test_milvuss_addresses_use_tls(no_credentials: pytest.MonkeyPatch) -> None:
    assert parse_target("milvuss://db.internal/shop") == MilvusTarget("https://db.internal:19530", "shop")
    assert parse_target("MILVUSS://db.internal:443/shop").uri == "https://db.internal:443"
    assert not parse_target("milvuss://db.internal/shop").lite
    with pytest.raises(FashionrecError, match="needs a host"):
        parse_target("milvuss:///shop")


@pytest.mark.parametrize("address", ["milvus://u:s3cret@db/shop", "milvuss://u:s3cr%40t@db/shop",
                                     "milvus://u@db/shop"])
def test_credentials_in_the_address_are_refused_without_repeating_them(no_credentials: pytest.MonkeyPatch,
                                                                       address: str) -> None:
    with pytest.raises(FashionrecError, match="FASHIONREC_MILVUS_TOKEN") as refused:
        parse_target(address)
    message = str(refused.value)
    assert "s3cr" not in message and "u@" not in message and "milvus://db/shop" in message.replace("milvuss", "milvus")


def test_credentials_come_from_the_environment_or_a_file(no_credentials: pytest.MonkeyPatch, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch = no_credentials
    monkeypatch.setenv("FASHIONREC_MILVUS_TOKEN", "reader:p@ss:word")
    target = parse_target("milvuss://db.internal/shop")
    assert target == MilvusTarget("https://db.internal:19530", "shop", "reader:p@ss:word")
    assert "p@ss" not in repr(target) and "p@ss" not in str(target)
    assert parse_target("milvus-lite:///srv/catalog.db").token == ""  # a local file takes no credentials

    token_file = tmp_path / "milvus-token"
    token_file.write_text("api-key-0123\n")
    token_file.chmod(0o600)
    monkeypatch.delenv("FASHIONREC_MILVUS_TOKEN")
    monkeypatch.setenv("FASHIONREC_MILVUS_TOKEN_FILE", str(token_file))
    with caplog.at_level("WARNING", logger="fashionrec.scale.milvus"):
        assert parse_target("milvuss://db.internal/shop").token == "api-key-0123"
    assert caplog.records == []

    token_file.chmod(0o644)
    with caplog.at_level("WARNING", logger="fashionrec.scale.milvus"):
        parse_target("milvuss://db.internal/shop")
    assert "other users can read" in caplog.text and "chmod 600" in caplog.text and "api-key" not in caplog.text

    caplog.clear()
    with caplog.at_level("WARNING", logger="fashionrec.scale.milvus"):
        parse_target("milvus://db.internal/shop")  # credentials over plain gRPC to another machine
    assert "unencrypted" in caplog.text and "milvuss://" in caplog.text

    monkeypatch.setenv("FASHIONREC_MILVUS_TOKEN", "reader:other")
    with pytest.raises(FashionrecError, match="set only one of FASHIONREC_MILVUS_TOKEN and FASHIONREC_MILVUS_TOKEN_FILE"):
        parse_target("milvuss://db.internal/shop")
    monkeypatch.delenv("FASHIONREC_MILVUS_TOKEN")
    for content, message in ((None, "does not exist"), ("\n", "is empty")):
        token_file.unlink(missing_ok=True)
        if content is not None:
            token_file.write_text(content)
        with pytest.raises(FashionrecError, match=message) as refused:
            parse_target("milvuss://db.internal/shop")
        assert str(token_file) in str(refused.value)


def test_the_cli_refuses_a_password_in_the_address(shop_catalog: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FASHIONREC_MILVUS_TOKEN")}
    for args in (["push", "--catalog", str(shop_catalog), "--to", "milvus://admin:hunter2@db.internal/shop"],
                 ["similar", "1", "--catalog", str(shop_catalog), "--search", "milvus://admin:hunter2@db.internal/shop"]):
        done = subprocess.run([sys.executable, "-m", "fashionrec.cli", *args], capture_output=True, text=True,
                              timeout=300, env=env)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "FASHIONREC_MILVUS_TOKEN" in done.stderr and "hunter2" not in done.stderr


def test_filter_values_become_escaped_literals_never_expression() -> None:
    assert milvus_string('Navy "Blue"') == r'"Navy \"Blue\""'
    assert milvus_string("back\\slash") == r'"back\\slash"'
    assert milvus_string('" or id != "') == r'"\" or id != \""'
    with pytest.raises(FilterError, match="control characters"):
        milvus_string("a\nb")
    fields = {"gender": "gender", "baseColour": "baseColour"}
    assert (filter_expression({"gender": ("men", "boys"), "baseColour": ("red",)}, ["7"], fields)
            == 'gender in ["men", "boys"] and baseColour in ["red"] and id not in ["7"]')
    assert filter_expression({}, [], fields) == ""
    with pytest.raises(FilterError, match="not pushed to Milvus"):
        filter_expression({"season": ("summer",)}, [], fields)


def test_a_flat_collection_answers_exactly_like_exact_search(shop_catalog: Path, lite0, tmp_path: Path) -> None:
    catalog = Catalog.open(shop_catalog)
    report = push(catalog, lite(tmp_path))
    assert (report.added, report.updated, report.removed, report.products, report.index_type) == (40, 0, 0, 40, "FLAT")
    exact = Recommender(catalog, lite0, search="exact")
    served = Catalog.open(shop_catalog)
    milvus = Recommender(served, lite0, search=lite(tmp_path))
    assert milvus.search_in_use == "milvus"
    for where, weight in ((None, 0.0), (None, 1.0), ({"gender": "men"}, None), ({"gender": "men"}, 0.6),
                          ({"articleType": ["Shoes", "TSHIRTS"], "gender": "Women"}, None),
                          ({"baseColour": "no such colour"}, None)):
        ask = dict(k=6, where=where, colour_weight=weight)
        for product_id in ("1", "12", "33"):
            want, got = exact.by_id(product_id, **ask), milvus.by_id(product_id, **ask)
            assert ids(got) == ids(want)
            assert [m.distance for m in got.results] == pytest.approx([m.distance for m in want.results], abs=1e-6)
            assert [m.similarity for m in got.results] == pytest.approx([m.similarity for m in want.results], abs=1e-5)
            assert [m.colours for m in got.results] == [m.colours for m in want.results]
        photo = catalog.image_path("20")
        assert ids(milvus.by_image(photo, **ask)) == ids(exact.by_image(photo, **ask))
    with pytest.raises(FilterError, match="unknown filter column"):
        milvus.by_id("1", where={"season": "Summer"})
    assert not served.vectors_loaded  # every vector came from Milvus
    milvus._backend.close()


def test_a_filter_value_can_never_inject_an_expression(tmp_path: Path, lite0) -> None:
    images = tmp_path / "images"
    write_products(images, range(1, 13))
    colours = ['Navy "Blue"', "back\\slash", "O'Neil", "Rosé"]
    lines = ["id,gender,baseColour"] + [f'{i},{"Men" if i % 2 else "Women"},"{colours[i % 4].replace(chr(34), 2 * chr(34))}"'
                                          for i in range(1, 13)]
    (tmp_path / "styles.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    index_images(images, tmp_path / "c", metadata=tmp_path / "styles.csv", model="efficientnet-lite0", progress=False)
    catalog = Catalog.open(tmp_path / "c")
    assert catalog.metadata("1")["baseColour"] == "back\\slash"
    push(catalog, lite(tmp_path))
    exact, milvus = Recommender(catalog, lite0, search="exact"), Recommender(catalog, lite0, search=lite(tmp_path))
    for colour in colours + ['" or id != "', "' or 1==1 or '", 'x"] or id != "["', "ROSÉ"]:
        want = exact.by_id("2", k=12, where={"baseColour": colour})
        got = milvus.by_id("2", k=12, where={"baseColour": colour})
        assert ids(got) == ids(want)
        assert all(m.metadata["baseColour"].lower() == colour.lower() for m in got.results)
    assert len(milvus.by_id("2", k=12, where={"baseColour": '" or id != "'}).results) == 0
    milvus._backend.close()


def test_pushes_are_incremental_and_a_stale_or_foreign_collection_is_refused(tmp_path: Path, lite0) -> None:
    images = tmp_path / "images"
    write_products(images, range(1, 21))
    index_images(images, tmp_path / "c", model="efficientnet-lite0", progress=False)
    address = lite(tmp_path)
    assert push(Catalog.open(tmp_path / "c"), address).added == 20
    again = push(Catalog.open(tmp_path / "c"), address)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 20)

    write_products(images, [21, 22])
    (images / "5.jpg").unlink()
    index_images(images, tmp_path / "c", prune=True, progress=False)
    changed = Catalog.open(tmp_path / "c")
    with pytest.raises(CatalogError, match="older or unfinished copy of the catalog"):
        MilvusIndex.open(address, changed)
    report = push(changed, address)
    assert (report.added, report.updated, report.removed, report.unchanged, report.products) == (2, 0, 1, 19, 21)
    milvus = Recommender(changed, lite0, search=address)
    assert ids(milvus.by_id("21", k=20)) == ids(Recommender(changed, lite0, search="exact").by_id("21", k=20))
    milvus._backend._client.alter_collection_properties("fashionrec", {"fashionrec.fingerprint": ""})  # a push cut off
    milvus._backend.close()
    with pytest.raises(CatalogError, match="unfinished"):
        MilvusIndex.open(address, changed)
    assert push(changed, address).unchanged == 21  # the rerun finds everything sent, and completes
    MilvusIndex.open(address, changed).close()

    # Issue 13: the fingerprint left out the metadata and the search space; a copy stale in either was accepted.
    styles = tmp_path / "styles.csv"
    styles.write_text("id,baseColour\n" + "".join(f"{i},Blue\n" for i in range(1, 23)))
    index_images(images, tmp_path / "c", metadata=styles, progress=False)
    assert push(Catalog.open(tmp_path / "c"), address, recreate=True).added == 21
    styles.write_text("id,baseColour\n" + "".join(f"{i},{'Red' if i == 3 else 'Blue'}\n" for i in range(1, 23)))
    index_images(images, tmp_path / "c", metadata=styles, progress=False)
    relabelled = Catalog.open(tmp_path / "c")  # one product's colour changed, no vector did
    with pytest.raises(CatalogError, match="older or unfinished copy"):
        MilvusIndex.open(address, relabelled)
    assert push(relabelled, address).updated == 1
    MilvusIndex.open(address, relabelled).close()

    write_products(tmp_path / "other", range(1, 6))
    index_images(tmp_path / "other", tmp_path / "lite2", model="efficientnet-lite2", progress=False)
    other = Catalog.open(tmp_path / "lite2")
    with pytest.raises(ModelMismatchError, match="push --recreate"):
        push(other, address)
    with pytest.raises(CatalogError, match="no collection 'elsewhere'"):
        MilvusIndex.open(address + "?collection=elsewhere", other)
    assert push(other, address, recreate=True).added == 5


def test_hnsw_and_ivf_collections_find_the_exact_neighbours_here(copies_catalog: Path, lite0, tmp_path: Path) -> None:
    catalog = Catalog.open(copies_catalog)
    exact = Recommender(catalog, lite0, search="exact")
    for index in ("HNSW", "IVF_FLAT"):
        address = lite(tmp_path, f"{index.lower()}.db")
        assert push(catalog, address, index_type=index).index_type == index
        milvus = Recommender(catalog, lite0, search=address)
        hits = total = 0
        for product_id in catalog.ids[:20]:
            want = set(ids(exact.by_id(product_id, k=10, show_duplicates=True)))
            hits += len(want & set(ids(milvus.by_id(product_id, k=10, show_duplicates=True))))
            total += len(want)
        assert hits / total >= 0.95
        milvus._backend.close()


def test_cli_push_then_recommend_from_milvus_lite(shop_catalog: Path, tmp_path: Path) -> None:
    address = lite(tmp_path)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fashionrec.cli", *args], capture_output=True, text=True,
                              timeout=300)

    pushed = cli("push", "--catalog", str(shop_catalog), "--to", address, "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["added"] == 40
    photo = str(Catalog.open(shop_catalog).image_path("9"))
    answers = [cli("recommend", photo, "--catalog", str(shop_catalog), "--where", "gender=men", "--json",
                   "--search", search) for search in ("exact", address)]
    assert all(done.returncode == 0 for done in answers), answers[1].stderr
    assert [m["id"] for m in json.loads(answers[1].stdout)["results"]] == [
        m["id"] for m in json.loads(answers[0].stdout)["results"]]
    missing = cli("similar", "9", "--catalog", str(shop_catalog), "--search", lite(tmp_path, "none.db"))
    assert missing.returncode == 2 and "run fashionrec push" in missing.stderr


def test_the_rest_api_answers_from_milvus(shop_catalog: Path, lite0, tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the REST API needs the web extra")
    from fastapi.testclient import TestClient

    from fashionrec.api import create_app

    catalog = Catalog.open(shop_catalog)
    push(catalog, lite(tmp_path))
    milvus = Recommender(catalog, lite0, search=lite(tmp_path))
    with TestClient(create_app(milvus)) as client:
        similar = client.get("/products/4/similar", params={"k": 4, "gender": "Women"})
        upload = client.post("/recommend", files={"file": catalog.image_path("4").read_bytes()}, params={"k": 3})
    assert similar.status_code == 200 and upload.status_code == 200
    exact = Recommender(catalog, lite0, search="exact")
    assert [m["id"] for m in similar.json()["results"]] == ids(exact.by_id("4", k=4, where={"gender": "Women"}))
    assert [m["id"] for m in upload.json()["results"]] == ids(exact.by_image(catalog.image_path("4"), k=3))
    milvus._backend.close()  # the last connection frees the Milvus Lite file for other programs
    other = subprocess.run([sys.executable, "-m", "fashionrec.cli", "similar", "4", "--catalog", str(shop_catalog),
                            "--search", lite(tmp_path), "--json"], capture_output=True, text=True, timeout=300)
    assert other.returncode == 0, other.stderr


def test_the_17_real_photos_get_the_exact_top_5_from_milvus_lite(sample_dir: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    queries = sorted((sample_dir / "queries_fullres").glob("*.jpg"))
    wanted = {path.stem for path in queries}
    others = [p for p in sorted((sample_dir / "images").glob("*.jpg")) if p.stem not in wanted][:283]
    for path in [sample_dir / "images" / f"{stem}.jpg" for stem in sorted(wanted)] + others:
        shutil.copy(path, images)
    index_images(images, tmp_path / "c", metadata=sample_dir / "styles.csv", progress=False)  # the default model
    catalog = Catalog.open(tmp_path / "c")
    push(catalog, lite(tmp_path))
    exact = Recommender(catalog, search="exact")
    served = Catalog.open(tmp_path / "c")
    milvus = Recommender(served, exact.embedder, search=lite(tmp_path))
    for photo in queries:
        product = catalog.metadata(photo.stem)
        for where in (None, {"gender": product["gender"]},
                      {"masterCategory": [product["masterCategory"], "Footwear"], "season": product["season"]}):
            assert ids(milvus.by_image(photo, k=5, where=where)) == ids(exact.by_image(photo, k=5, where=where)), (
                photo.name, where)
        assert ids(milvus.by_id(photo.stem, k=5)) == ids(exact.by_id(photo.stem, k=5))
    assert not served.vectors_loaded
    milvus._backend.close()


def test_added_products_are_all_a_push_sends_and_a_following_server_pushes_them(tmp_path: Path, lite0) -> None:
    """Issue 14: a change of products refitted the whitening, so a push re-sent every vector. Now 100 added products
    are 100 rows sent (counted); a server following the catalog sends them itself, then answers them."""
    from fashionrec.index.write import ProductWrite, put_products, remove_products
    from tests.conftest import draw_product

    write_products(tmp_path / "images", range(1, 21))
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False)
    address = lite(tmp_path)
    assert push(Catalog.open(tmp_path / "c"), address).added == 20
    put_products(tmp_path / "c", [ProductWrite(f"n{i}", draw_product(3000 + i)) for i in range(100)], lite0)
    report = push(Catalog.open(tmp_path / "c"), address)
    assert (report.added, report.updated, report.removed, report.unchanged) == (100, 0, 0, 20)

    served = Recommender(Catalog.open(tmp_path / "c"), lite0, search=address)
    try:
        put_products(tmp_path / "c", [ProductWrite("late", draw_product(4000))], lite0)
        remove_products(tmp_path / "c", ["n5"])
        assert served.refresh() is True  # pushed the two changes, then swapped
        assert served.catalog.vectors_loaded is False  # a Milvus-served process still never reads the vectors
        assert "late" in served.catalog and served.by_id("late", k=3).results
        assert all(m.id != "n5" for m in served.by_id("n6", k=50).results)
        exact = Recommender(Catalog.open(tmp_path / "c"), lite0, search="exact")
        assert ids(served.by_id("late", k=10)) == ids(exact.by_id("late", k=10))
    finally:
        served.close()
    again = push(Catalog.open(tmp_path / "c"), address)
    assert (again.added, again.updated, again.removed) == (0, 0, 0)
