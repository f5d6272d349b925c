"""api/: every endpoint and every error, through FastAPI's TestClient, plus one real `fashionrec serve`."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fashionrec.api import app_from_settings, create_app
from fashionrec.catalog.catalog import Catalog
from fashionrec.config import load_settings
from fashionrec.errors import CatalogError
from fashionrec.imaging.decode import DECODE_SLOTS
from fashionrec.launch import stop, wait_until_up
from fashionrec.recommend.answers import SIMILARITY_MEANING
from fashionrec.recommend.recommender import Recommender
from tests.conftest import copy_catalog, draw_product, free_port
from tests.image_corpus import BadInput, bad_inputs, png_bomb
from tests.reference import catalog_arrays, more_like

DEFAULT_COLOUR = load_settings().colour_weight

UPLOAD_LIMIT = 300_000


@pytest.fixture(scope="module")
def recommender(shop_catalog: Path, lite0) -> Recommender:
    return Recommender(Catalog.open(shop_catalog), lite0)


@pytest.fixture(scope="module")
def client(recommender: Recommender) -> TestClient:
    settings = replace(load_settings(), max_upload_bytes=UPLOAD_LIMIT, max_k=30)
    return TestClient(create_app(recommender, settings))


def jpeg(product_id: int, size: tuple[int, int] = (60, 80)) -> bytes:
    buffer = io.BytesIO()
    draw_product(product_id, size).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def upload(data: bytes, name: str = "photo.jpg") -> dict:
    return {"file": (name, data, "image/jpeg")}


def test_health_names_the_model_and_the_catalog(client: TestClient, recommender: Recommender) -> None:
    body = client.get("/health").json()
    assert body == {"status": "ok", "model": "efficientnet-lite0", "model_id": recommender.catalog.model_id,
                    "dim": 1712, "products": 40, "generation": recommender.catalog.generation}


def test_recommend_returns_the_cli_shape_with_image_urls(client: TestClient, recommender: Recommender,
                                                         shop_catalog: Path) -> None:
    photo = Catalog.open(shop_catalog).image_path("7").read_bytes()
    response = client.post("/recommend", files=upload(photo))
    assert response.status_code == 200
    body = response.json()
    expected = recommender.by_image(photo, k=5).to_dict()
    assert body["model"] == expected["model"] == "efficientnet-lite0"
    assert [m["id"] for m in body["results"]] == [m["id"] for m in expected["results"]]
    assert body["results"][0]["id"] == "7" and len(body["results"]) == 5
    assert body["notice"] is None
    for got, want in zip(body["results"], expected["results"]):
        assert set(got) == {"id", "similarity", "cosine", "image", "metadata", "colours"}
        assert got["similarity"] == pytest.approx(want["similarity"], abs=1e-6) and got["metadata"] == want["metadata"]
        assert got["colours"] == want["colours"] and 1 <= len(got["colours"]) <= 3
        assert all(re.fullmatch("#[0-9a-f]{6}", c["rgb"]) and 0 < c["share"] <= 1 for c in got["colours"])
        assert got["image"] == f"/products/{got['id']}/image"
    assert body["results"][0]["similarity"] > 0.99 > body["results"][-1]["similarity"]
    image = client.get(body["results"][1]["image"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content == Catalog.open(shop_catalog).image_path(body["results"][1]["id"]).read_bytes()


def test_png_and_webp_uploads_work(client: TestClient) -> None:
    for image_format, mime in (("PNG", "image/png"), ("WEBP", "image/webp")):
        buffer = io.BytesIO()
        draw_product(12).save(buffer, image_format)
        response = client.post("/recommend?k=1", files={"file": (f"p.{image_format.lower()}", buffer.getvalue(), mime)})
        assert response.status_code == 200 and response.json()["results"][0]["id"] == "12"


def test_k_and_filters_as_query_parameters(client: TestClient) -> None:
    body = client.post("/recommend?k=30&gender=men&articleType=Shoes", files=upload(jpeg(3))).json()
    assert {m["id"] for m in body["results"]} == {"3", "9", "15", "21", "27", "33", "39"}
    either = client.post("/recommend?k=30&baseColour=Red&baseColour=blue", files=upload(jpeg(3))).json()
    assert {m["metadata"]["baseColour"] for m in either["results"]} == {"Red", "Blue"} and len(either["results"]) == 20
    assert len(client.post("/recommend?k=3", files=upload(jpeg(3))).json()["results"]) == 3


def test_similar_never_returns_the_product_and_matches_the_library(client: TestClient,
                                                                   recommender: Recommender) -> None:
    body = client.get("/products/5/similar?k=4&gender=Men").json()
    expected = recommender.by_id("5", k=4, where={"gender": "Men"})
    assert [m["id"] for m in body["results"]] == [m.id for m in expected.results]
    assert "5" not in [m["id"] for m in body["results"]] and len(body["results"]) == 4
    # Brute force (tests/reference.py): the stored model vectors and colour parts, ranked by numpy in the test, the
    # similarity the share of the catalog's sample pairs scoring lower.
    arrays = catalog_arrays(recommender.catalog)
    want = more_like(arrays, "5", DEFAULT_COLOUR, k=4, where={"gender": ["Men"]})
    assert [m["id"] for m in body["results"]] == want.ids
    assert [m["similarity"] for m in body["results"]] == pytest.approx(want.similarities, abs=1e-5)
    shape_only = client.get("/products/5/similar?k=4&gender=Men&colour_weight=0").json()["results"]
    men = [row for row, m in enumerate(arrays.metadata) if m["gender"] == "Men" and arrays.ids[row] != "5"]
    cosines = arrays.shape[men] @ arrays.shape[arrays.ids.index("5")]  # plain shape cosines, nearest first
    nearest = sorted(range(len(men)), key=lambda i: -cosines[i])[:4]
    assert [m["id"] for m in shape_only] == [arrays.ids[men[i]] for i in nearest]
    assert [m["cosine"] for m in shape_only] == pytest.approx([cosines[i] for i in nearest], abs=1e-5)
    want = more_like(arrays, "5", 0.0, k=4, where={"gender": ["Men"]})  # the figure: against the pair sample
    assert [m["similarity"] for m in shape_only] == pytest.approx(want.similarities, abs=1e-5)
    assert all(m["metadata"]["gender"] == "Men" for m in body["results"])


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


def test_colour_weight_is_the_shoppers_choice_and_matches_the_library(client: TestClient,
                                                                     recommender: Recommender) -> None:
    """Issue 15: `colour_weight` 0-1 on both searches; at 1 the results' dominant colours are nearer the query's."""
    distance = {0.0: [], 1.0: []}
    for product_id in ("5", "7", "12"):
        own = client.get(f"/products/{product_id}").json()
        for weight in distance:
            body = client.get(f"/products/{product_id}/similar?k=5&colour_weight={weight}").json()
            expected = recommender.by_id(product_id, k=5, colour_weight=weight)
            assert body["colour_weight"] == weight and [m["id"] for m in body["results"]] == [m.id for m in expected.results]
            assert [m["colours"] for m in body["results"]] == [m.colours for m in expected.results]
            query = _rgb(recommender.catalog.swatches_at(recommender.catalog.position(product_id))[0]["rgb"])
            distance[weight] += [np.linalg.norm(query - _rgb(m["colours"][0]["rgb"])) for m in body["results"]]
        assert own["id"] == product_id
    # Colour re-ranks the 20 nearest in shape (of 40), so the kind holds; still clearly nearer in colour.
    assert np.mean(distance[1.0]) < 0.8 * np.mean(distance[0.0])
    photo = jpeg(7)
    for weight in (0, 0.5, 1):
        body = client.post(f"/recommend?k=3&colour_weight={weight}", files=upload(photo)).json()
        expected = recommender.by_image(photo, k=3, colour_weight=weight)
        assert [m["id"] for m in body["results"]] == [m.id for m in expected.results] and body["results"][0]["id"] == "7"
    for bad in ("1.5", "-0.1", "red", "nan"):
        response = client.get(f"/products/5/similar?colour_weight={bad}")
        assert response.status_code == 422 and "colour_weight" in response.text, (bad, response.text)


def test_product_metadata(client: TestClient) -> None:
    assert client.get("/products/4").json() == {
        "id": "4", "image": "/products/4/image",
        "metadata": {"gender": "Women", "articleType": "Tshirts", "baseColour": "Red",
                     "productDisplayName": "Drawn product 4"}}


def test_filters_lists_the_facets(client: TestClient) -> None:
    facets = client.get("/filters").json()
    assert facets["gender"] == ["Men", "Women"] and facets["baseColour"] == ["Black", "Blue", "Red", "White"]
    assert "productDisplayName" not in facets


@pytest.mark.parametrize("path", ["/products/nope", "/products/nope/image", "/products/nope/similar"])
def test_unknown_ids_are_404_without_server_paths(client: TestClient, path: str, shop_catalog: Path) -> None:
    response = client.get(path)
    assert response.status_code == 404 and "nope" in response.json()["detail"]
    assert str(shop_catalog) not in response.text


@pytest.mark.parametrize("path", ["/products/..%2F..%2F..%2Fetc%2Fpasswd/image", "/products/%2e%2e/image",
                                  "/products/..%5C..%5Cstyles.csv/image", "/products/%2Fetc%2Fpasswd/image"])
def test_an_image_is_found_by_id_only(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404 and b"root:" not in response.content


def test_an_image_gone_from_disk_is_404(tmp_path: Path, lite0) -> None:
    from tests.conftest import write_products
    from fashionrec.index.run import index_images

    write_products(tmp_path / "images", range(1, 4))
    index_images(tmp_path / "images", tmp_path / "c", model="efficientnet-lite0", progress=False)
    client = TestClient(create_app(Recommender(Catalog.open(tmp_path / "c"), lite0)))
    (tmp_path / "images" / "2.jpg").unlink()
    response = client.get("/products/2/image")
    assert response.status_code == 404 and "no longer" in response.json()["detail"]


def test_uploads_over_the_limit_are_413(client: TestClient) -> None:
    big = jpeg(1) + b"\0" * UPLOAD_LIMIT
    declared = client.post("/recommend", files=upload(big))
    assert declared.status_code == 413 and "0.3 MB" in declared.json()["detail"]

    just_over = jpeg(1) + b"\0" * (UPLOAD_LIMIT - len(jpeg(1)) + 1)  # within the multipart slack, over the file limit
    assert client.post("/recommend", files=upload(just_over)).status_code == 413

    def chunks():  # no Content-Length: the body is counted as it arrives
        for _ in range(20):
            yield b"x" * 50_000

    chunked = client.post("/recommend", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert chunked.status_code == 413 and "detail" in chunked.json()


def _png_bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buffer, "PNG")  # 64 M pixels in a few kB
    return buffer.getvalue()


@pytest.mark.parametrize("data, message, status", [
    (b"not an image at all", "not an image", 422),
    (jpeg(1, (300, 400))[:1500], "truncated", 422),
    (_png_bomb(), "pixels", 413),
    (b"", "empty", 422),
])
def test_unusable_images_get_a_json_error(client: TestClient, data: bytes, message: str, status: int) -> None:
    response = client.post("/recommend", files=upload(data))
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


CORPUS = bad_inputs()


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_every_bad_upload_gets_its_status_and_a_message_naming_the_file(client: TestClient, case: BadInput) -> None:
    response = client.post("/recommend", files={"file": (case.name, case.data, "application/octet-stream")})
    if case.error is None:
        assert response.status_code == 200, response.text
        assert len(response.json()["results"]) == 5
        return
    assert response.status_code == case.status, response.text
    detail = response.json()["detail"]
    assert case.name in detail and re.search(case.message, detail), detail
    assert "Traceback" not in detail and str(Path.cwd()) not in detail


def test_after_every_bad_upload_the_api_still_answers_with_every_product(client: TestClient) -> None:
    for case in CORPUS:
        client.post("/recommend", files={"file": (case.name, case.data, "application/octet-stream")})
    assert client.get("/health").json()["products"] == 40
    for product_id in range(1, 41):
        answer = client.post("/recommend?k=1", files=upload(jpeg(product_id))).json()
        assert answer["results"][0]["id"] == str(product_id)


def test_eight_bombs_at_once_are_refused_from_their_headers(client: TestClient) -> None:
    bomb = png_bomb(6300)
    DECODE_SLOTS.reset_peak()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: client.post("/recommend", files=upload(bomb, f"bomb{i}.png")), range(8)))
    assert [answer.status_code for answer in answers] == [413] * 8
    assert all("16,777,216 pixels (4096 x 4096)" in answer.json()["detail"] for answer in answers)
    assert "FASHIONREC_MAX_UPLOAD_PIXELS" in answers[0].json()["detail"]
    assert DECODE_SLOTS.peak == 0  # none was decoded


K_DETAIL = "the query parameter 'k' must be a whole number from 1 to 30 (this server's FASHIONREC_MAX_K), got '{}'"
UNKNOWN_DETAIL = ("unknown query parameter '{}': use k, show_duplicates, colour_weight, region and whole (photos) or a "
                  "filter column (gender, articleType, baseColour, productDisplayName)")  # the shop's styles.csv columns


@pytest.mark.parametrize("query, status, detail", [
    ("k=0", 422, K_DETAIL.format("0")), ("k=31", 422, K_DETAIL.format("31")), ("k=two", 422, K_DETAIL.format("two")),
    ("colour=Red", 400, UNKNOWN_DETAIL.format("colour")), ("k=5&unknown=1", 400, UNKNOWN_DETAIL.format("unknown"))])
def test_bad_query_parameters(client: TestClient, query: str, status: int, detail: str) -> None:
    response = client.post(f"/recommend?{query}", files=upload(jpeg(1)))
    assert response.status_code == status and response.json()["detail"] == detail  # max_k is 30 in `client`
    similar = client.get(f"/products/1/similar?{query}")
    assert similar.status_code == status and similar.json()["detail"] == response.json()["detail"]


def test_a_missing_file_field_is_422(client: TestClient) -> None:
    assert client.post("/recommend").status_code == 422
    assert client.post("/recommend", files={"photo": ("a.jpg", jpeg(1), "image/jpeg")}).status_code == 422


def _no_file(client: TestClient, path: str):
    return client.post(path, files={"photo": ("a.jpg", jpeg(1), "image/jpeg")})


@pytest.mark.parametrize("ask, status, detail", [
    (lambda c: c.post("/recommend?k=0", files=upload(jpeg(1))), 422,
     "the query parameter 'k' must be a whole number from 1 to 30 (this server's FASHIONREC_MAX_K), got '0'"),
    (lambda c: c.get("/products/1/similar?k=31"), 422,
     "the query parameter 'k' must be a whole number from 1 to 30 (this server's FASHIONREC_MAX_K), got '31'"),
    (lambda c: c.get("/products/1/similar?k=two&show_duplicates=maybe"), 422,
     "the query parameter 'k' must be a whole number from 1 to 30 (this server's FASHIONREC_MAX_K), got 'two'; "
     "the query parameter 'show_duplicates' must be true or false, got 'maybe'"),
    (lambda c: _no_file(c, "/recommend"), 422,
     "the form field 'file' is missing: send the photo as multipart/form-data in a field named file"),
    (lambda c: c.get("/product/1"), 404,
     "there is no GET /product/1 in this API: its routes are GET /health, GET /filters, POST /recommend, "
     "GET /products/{product_id}, GET /products/{product_id}/image, GET /products/{product_id}/similar, "
     "PUT /products/{product_id}, DELETE /products/{product_id}, POST /products:batch (see /docs)"),
    (lambda c: c.get("/recommend"), 405, "GET is not allowed on /recommend: use POST"),
    (lambda c: c.post("/products/1"), 405, "POST is not allowed on /products/1: use GET, PUT or DELETE"),
])
def test_every_error_is_one_readable_detail(client: TestClient, ask, status: int, detail: str) -> None:
    response = ask(client)
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["detail"] == detail
    if status == 422:  # FastAPI's own list stays for programs, under "errors"
        assert set(body) == {"detail", "errors"} and all("loc" in error and "msg" in error for error in body["errors"])
    else:
        assert set(body) == {"detail"}


@pytest.mark.parametrize("method, path, allow", [
    ("OPTIONS", "/products/1", "GET, PUT, DELETE"), ("PATCH", "/products/1", "GET, PUT, DELETE"),
    ("POST", "/products/1/similar", "GET"), ("GET", "/recommend", "POST"), ("GET", "/products:batch", "POST"),
])
def test_a_405_allows_every_method_of_the_path(client: TestClient, method: str, path: str, allow: str) -> None:
    response = client.request(method, path)  # Starlette's own Allow names only the methods of one route
    assert response.status_code == 405 and response.headers["allow"] == allow


def test_a_405_below_a_mount_prefix_allows_the_methods_of_its_own_path(recommender: Recommender) -> None:
    """The API may be mounted below a prefix (a shop's own site): the Allow header still names the path's methods."""
    from fastapi import FastAPI

    outer = FastAPI()
    outer.mount("/api", create_app(recommender, load_settings()))
    with TestClient(outer) as mounted:
        assert mounted.get("/api/recommend").headers["allow"] == "POST"
        assert mounted.request("PATCH", "/api/products/1").headers["allow"] == "GET, PUT, DELETE"


def test_an_unusable_upload_names_the_file_and_the_formats_accepted(client: TestClient) -> None:
    response = client.post("/recommend", files=upload(b"not an image at all", name="holiday.heic"))
    detail = response.json()["detail"]
    assert response.status_code == 422
    assert detail.startswith("the uploaded file 'holiday.heic': not an image")
    assert "JPEG, PNG, WebP, GIF or AVIF" in detail


def test_openapi_documents_every_endpoint_and_the_filters(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/health", "/filters", "/recommend", "/products/{product_id}", "/products/{product_id}/image",
            "/products/{product_id}/similar"} <= set(schema["paths"])
    names = [p["name"] for p in schema["paths"]["/recommend"]["post"]["parameters"]]
    assert names == ["k", "show_duplicates", "colour_weight", "region", "whole", "gender", "articleType", "baseColour",
                     "productDisplayName"]
    assert "413" in schema["paths"]["/recommend"]["post"]["responses"]
    error = {"$ref": "#/components/schemas/ErrorOut"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            failures = {code: r for code, r in operation["responses"].items() if code[0] in "45"}
            assert "500" in failures, (method, path)
            for code, response in failures.items():
                assert response["content"]["application/json"]["schema"] == error, (method, path, code)
    assert {"400", "413", "415", "422", "503"} <= set(schema["paths"]["/recommend"]["post"]["responses"])
    assert {"404", "422"} <= set(schema["paths"]["/products/{product_id}/similar"]["get"]["responses"])
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert set(schema["components"]["schemas"]["ErrorOut"]["properties"]) == {"detail", "errors"}
    similarity = schema["components"]["schemas"]["MatchOut"]["properties"]["similarity"]["description"]
    assert similarity == SIMILARITY_MEANING


def test_concurrent_requests_get_the_answers_of_sequential_ones(client: TestClient) -> None:
    product_ids = list(range(1, 25))
    sequential = [client.post("/recommend", files=upload(jpeg(i))).json() for i in product_ids]

    def ask(i: int) -> dict:
        return client.post("/recommend", files=upload(jpeg(i))).json()

    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(ask, product_ids))
    assert concurrent == sequential
    assert [answer["results"][0]["id"] for answer in concurrent] == [str(i) for i in product_ids]


def test_app_from_settings_needs_a_catalog(monkeypatch: pytest.MonkeyPatch, shop_catalog: Path) -> None:
    monkeypatch.delenv("FASHIONREC_CATALOG", raising=False)
    with pytest.raises(CatalogError, match="FASHIONREC_CATALOG"):
        app_from_settings()
    monkeypatch.setenv("FASHIONREC_CATALOG", str(shop_catalog))
    assert TestClient(app_from_settings()).get("/health").json()["products"] == 40


def test_fashionrec_serve_answers_a_multipart_upload_over_http(shop_catalog: Path) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "fashionrec.cli", "serve", "--catalog", str(shop_catalog),
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server, timeout=60, health_path="/health")
        boundary = "fashionrec-test-boundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"8.jpg\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode() + jpeg(8) + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(f"{base}/recommend", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        assert [m["id"] for m in answer["results"]][0] == "8" and len(answer["results"]) == 5
    finally:
        stop(server)


def test_serve_refuses_a_port_in_use(shop_catalog: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "fashionrec.cli", "serve", "--catalog", str(shop_catalog),
                                 "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "another --port" in result.stderr


def test_duplicate_images_come_back_once_unless_asked(copies_catalog: Path, lite0) -> None:
    client = TestClient(create_app(Recommender(Catalog.open(copies_catalog), lite0)))
    ids = [m["id"] for m in client.get("/products/1/similar?k=50").json()["results"]]
    assert "101" not in ids and len(ids) == 39
    every = [m["id"] for m in client.get("/products/1/similar?k=50&show_duplicates=true").json()["results"]]
    assert "101" in every and len(every) == 42
    photo = Catalog.open(copies_catalog).image_path("2").read_bytes()
    top = [m["id"] for m in client.post("/recommend?k=3&show_duplicates=1", files=upload(photo)).json()["results"]]
    assert set(top) == {"2", "102", "103"}


def test_filters_are_computed_once_per_catalog(shop_catalog: Path, lite0) -> None:
    catalog = Catalog.open(shop_catalog)
    read = []
    column_values = catalog.column_values
    catalog.column_values = lambda column: read.append(column) or column_values(column)  # type: ignore[method-assign]
    client = TestClient(create_app(Recommender(catalog, lite0)))
    first = client.get("/filters").json()
    assert first["gender"] == ["Men", "Women"]
    reads = len(read)
    first["gender"].append("changed by a caller")
    catalog.facets()["gender"].append("changed by a caller")
    for _ in range(3):
        assert client.get("/filters").json() == {**first, "gender": ["Men", "Women"]}
    assert len(read) == reads <= len(catalog.columns)


def test_a_filter_value_no_product_has_is_named_with_the_values_there_are(client: TestClient) -> None:
    typo = client.get("/products/5/similar?gender=Mne")
    assert typo.status_code == 200
    assert typo.json() == {"model": "efficientnet-lite0", "results": [], "colour_weight": DEFAULT_COLOUR,
                           "notice": "no product has gender=Mne; its values are: Men, Women", "region": None,
                           "regions": []}
    partial = client.get("/products/5/similar?k=3&baseColour=Red&baseColour=Rde").json()
    assert [m["metadata"]["baseColour"] for m in partial["results"]] == ["Red"] * 3
    assert partial["notice"] == "no product has baseColour=Rde; its values are: Black, Blue, Red, White"
    many = client.get("/products/5/similar?productDisplayName=Drawn%20product%2099").json()["notice"]
    assert many.startswith("no product has productDisplayName=Drawn product 99; its values are: Drawn product 1, ")
    assert many.endswith(" (and 10 more)")
    assert client.get("/products/5/similar?gender=men").json()["notice"] is None


def test_filters_that_together_allow_nothing_say_so(client: TestClient) -> None:
    # Women's shoes are ids 6, 12, ..., 36, none of them blue; each value exists on its own.
    body = client.post("/recommend?gender=Women&articleType=Shoes&baseColour=Blue&baseColour=White",
                       files=upload(jpeg(6))).json()
    assert body["results"] == []
    assert body["notice"] == ("no product has gender=Women, articleType=Shoes and baseColour=Blue or White together "
                              "(each value exists on its own): remove a filter to see more")
    only_itself = client.get("/products/5/similar?productDisplayName=Drawn%20product%205").json()
    assert only_itself == {"model": "efficientnet-lite0", "results": [], "colour_weight": DEFAULT_COLOUR,
                           "notice": "no product other than 5 has productDisplayName=Drawn product 5",
                           "region": None, "regions": []}


def test_the_docs_pages_load_their_assets_from_this_server(client: TestClient) -> None:
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert assets and not [url for url in assets if "://" in url or url.startswith("//")], assets
        for url in assets:
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert client.get("/docs/oauth2-redirect").status_code == 200


TOKEN = "s3cret-token"


@pytest.fixture
def writable(shop_catalog: Path, tmp_path: Path, lite0) -> tuple[TestClient, Path]:
    """An API with writes on (a token), over a private copy of the shop catalog."""

    copy_catalog(shop_catalog, tmp_path / "c")
    settings = replace(load_settings(), api_token=TOKEN)
    recommender = Recommender(Catalog.open(tmp_path / "c"), lite0, settings=settings)
    return TestClient(create_app(recommender, settings)), tmp_path / "c"


def bearer(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def photo_field(product_id: int, fmt: str = "PNG") -> dict:
    buffer = io.BytesIO()
    draw_product(product_id).save(buffer, fmt)
    return {"image": (f"{product_id}.{fmt.lower()}", buffer.getvalue(), f"image/{fmt.lower()}")}


def test_writes_need_the_token_and_reads_stay_open(writable, client: TestClient) -> None:
    api, catalog_dir = writable
    assert api.put("/products/n1", files=photo_field(501)).status_code == 401
    assert api.put("/products/n1", files=photo_field(501), headers=bearer("wrong")).status_code == 403
    assert api.delete("/products/3").status_code == 401
    assert api.delete("/products/3", headers=bearer("wrong")).status_code == 403
    assert api.post("/products:batch", files=[("images", ("9.png", b"x", "image/png"))]).status_code == 401
    answer = api.delete("/products/3", headers={"Authorization": "Basic abc"})
    assert answer.status_code == 401 and "Bearer" in answer.json()["detail"]
    assert len(Catalog.open(catalog_dir)) == 40  # nothing was written
    off = client.put("/products/n1", files=photo_field(501), headers=bearer())  # a server without a token
    assert off.status_code == 403 and "FASHIONREC_API_TOKEN" in off.json()["detail"]
    assert api.get("/products/3").status_code == 200 and api.get("/products/3/similar").status_code == 200


def test_put_creates_then_replaces_and_the_product_answers_at_once(writable) -> None:
    api, catalog_dir = writable
    created = api.put("/products/n1", files=photo_field(501), data={"metadata": '{"gender": "Men"}'},
                      headers=bearer())
    assert created.status_code == 201, created.text
    assert created.json() == {"id": "n1", "image": "/products/n1/image", "metadata": {"gender": "Men"},
                              "created": True}
    assert api.get("/products/n1/similar?k=3").status_code == 200  # no restart, no wait
    assert api.get("/products/n1/image").content.startswith(b"\x89PNG")
    assert api.get("/health").json()["products"] == 41
    replaced = api.put("/products/n1", files=photo_field(502, "JPEG"), headers=bearer())
    assert replaced.status_code == 200 and replaced.json()["created"] is False
    assert replaced.json()["metadata"] == {"gender": "Men"}
    found = api.post("/recommend", files={"file": photo_field(502, "JPEG")["image"]}).json()["results"]
    assert found[0]["id"] == "n1"


def test_delete_and_batch(writable) -> None:
    api, catalog_dir = writable
    assert api.delete("/products/5", headers=bearer()).json() == {"id": "5", "removed": True}
    assert api.get("/products/5").status_code == 404
    assert all(m["id"] != "5" for m in api.get("/products/6/similar?k=30").json()["results"])
    assert api.delete("/products/5", headers=bearer()).status_code == 404
    files = [("images", photo_field(600 + i)["image"]) for i in range(3)]
    batch = api.post("/products:batch", files=files, headers=bearer(),
                     data={"metadata": json.dumps({"600": {"gender": "Women"}})})
    assert batch.status_code == 200, batch.text
    assert (batch.json()["created"], batch.json()["replaced"]) == (3, 0)
    assert api.get("/products/600").json()["metadata"] == {"gender": "Women"}
    bad = [("images", photo_field(700)["image"]), ("images", ("701.png", b"not an image", "image/png"))]
    refused = api.post("/products:batch", files=bad, headers=bearer())
    assert refused.status_code == 422 and "product '701'" in refused.json()["detail"]
    assert api.get("/products/700").status_code == 404  # all or none


@pytest.mark.parametrize("product_id, status", [("a%20b", 422), (".hidden", 422), ("x" * 129, 422)])
def test_a_write_with_an_id_that_cannot_be_a_file_name_is_422(writable, product_id: str, status: int) -> None:
    api, _ = writable
    answer = api.put(f"/products/{product_id}", files=photo_field(1), headers=bearer())
    assert answer.status_code == status and "letters, digits" in answer.json()["detail"]


def test_a_write_with_bad_metadata_says_which_columns_exist(writable) -> None:
    api, _ = writable
    for metadata, message in [('{"colour": "red"}', "columns the catalog does not have"),
                              ("[1, 2]", "must hold a JSON object"), ("{oops", "must hold a JSON object")]:
        answer = api.put("/products/n9", files=photo_field(9), data={"metadata": metadata}, headers=bearer())
        assert answer.status_code == 400 and message in answer.json()["detail"], answer.text
