"""The OpenAPI schema says exactly what the server accepts (api/openapi.py, api/schemas.py).

First what the schema says, read from /openapi.json against the rules written out here. Then schemathesis,
generating requests from /openapi.json, runs every check (statuses, content types, headers, answers' schemas,
schema-valid requests accepted and invalid ones refused, auth enforced, Allow on a 405, use after removal) in every
phase, the stateful one following the schema's links from a write to the routes that take its id, against a real
`fashionrec serve` on a copy of the drawn 40-product catalog: with writes on (the token sent) and off. A fixed seed,
few examples (the full acceptance run, 200 examples an operation: `benchmarks/api_contract.py`)."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

import jsonschema_rs  # schemathesis' validator
import pytest
from fastapi.testclient import TestClient

from fashionrec.api import create_app
from fashionrec.catalog.catalog import Catalog
from fashionrec.config import load_settings
from fashionrec.launch import stop
from fashionrec.recommend.recommender import Recommender
from tests.api.schemathesis_run import PRODUCT_ROUTES, WRITES, operations_table, run_schemathesis, start_server
from tests.conftest import copy_catalog, free_port

COLUMNS = ["gender", "articleType", "baseColour", "productDisplayName"]  # the shop catalog's styles.csv


def schema_of(shop_catalog: Path, folder: Path, lite0, token: str) -> dict:
    """The /openapi.json of an app over a copy of the shop catalog, writes on for `token` (off for "")."""
    copy_catalog(shop_catalog, folder / "catalog")
    settings = replace(load_settings(), api_token=token)
    recommender = Recommender(Catalog.open(folder / "catalog"), lite0, settings=settings)
    return TestClient(create_app(recommender, settings)).get("/openapi.json").json()


@pytest.fixture(scope="module")
def schema(shop_catalog: Path, tmp_path_factory, lite0) -> dict:
    """The schema of a server that takes writes."""
    return schema_of(shop_catalog, tmp_path_factory.mktemp("writes-on"), lite0, "token")


def form(schema: dict, path: str, method: str) -> dict:
    """A route's multipart body: its schema (the $ref followed) and its encoding."""
    body = schema["paths"][path][method]["requestBody"]["content"]["multipart/form-data"]
    return {**schema["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]],
            "encoding": body.get("encoding", {})}


def pointed(schema: dict, reference: str) -> dict:
    """What a link's operationRef points at."""
    target = schema
    for part in unquote(reference).removeprefix("#/").split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


@pytest.mark.parametrize("product_id, valid", [
    ("15970", True), ("a", True), ("Nike-Air_2.0", True), ("x" * 128, True), ("x" * 129, False), ("", False),
    (".hidden", False), ("..", False), ("-1", False), ("a b", False), ("a/b", False), ("é", False),
    ("\U000b06a3", False), ("a\n", False)])
def test_the_schema_gives_the_id_rule_on_every_product_route(schema: dict, product_id: str, valid: bool) -> None:
    rules = [parameter["schema"] for operations in schema["paths"].values() for operation in operations.values()
             for parameter in operation.get("parameters", []) if parameter["name"] == "product_id"]
    assert len(rules) == 5  # GET, its image, its similar, PUT, DELETE
    for rule in rules:  # judged by a JSON Schema validator (ECMA regex: no newline before the end, unlike Python's)
        assert jsonschema_rs.validator_for(rule).is_valid(product_id) == valid, (product_id, rule)


def test_the_schema_says_what_an_upload_and_its_metadata_must_be(schema: dict) -> None:
    photos = "image/jpeg, image/png, image/webp, image/gif"
    recommend, put = form(schema, "/recommend", "post"), form(schema, "/products/{product_id}", "put")
    batch = form(schema, "/products:batch", "post")
    assert recommend["properties"]["file"]["minLength"] == 1
    assert recommend["encoding"]["file"]["contentType"].startswith(photos)  # AVIF too, where Pillow decodes it
    assert put["required"] == ["image"] and put["properties"]["image"]["minLength"] == 1
    for upload in (recommend["properties"]["file"], put["properties"]["image"], batch["properties"]["images"]["items"]):
        assert upload["format"] == "binary"  # a file to client generators (contentMediaType alone: text)
    assert put["encoding"] == {"image": {"contentType": recommend["encoding"]["file"]["contentType"]},
                               "metadata": {"contentType": "application/json"}}
    metadata = put["properties"]["metadata"]
    assert metadata["type"] == "object" and metadata["additionalProperties"] is False
    assert metadata["properties"] == {column: {"type": ["string", "null"]} for column in COLUMNS}
    assert batch["required"] == ["images"]
    images = batch["properties"]["images"]
    assert (images["minItems"], images["maxItems"], images["items"]["minLength"]) == (1, 100, 1)
    assert batch["properties"]["metadata"]["additionalProperties"]["properties"] == metadata["properties"]
    assert "HTTPValidationError" not in json.dumps(schema)


def test_writes_document_their_answers_auth_and_links(schema: dict) -> None:
    put = schema["paths"]["/products/{product_id}"]["put"]
    assert {"200", "201", "400", "401", "403", "413", "415", "422", "500", "503"} == set(put["responses"])
    token = schema["components"]["securitySchemes"]["writeToken"]
    assert (token["type"], token["scheme"]) == ("http", "bearer") and "FASHIONREC_API_TOKEN" in token["description"]
    linked = {}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert ("security" in operation) == (f"{method.upper()} {path}" in WRITES), (method, path)
            for status, response in operation["responses"].items():
                for link in response.get("links", {}).values():
                    target = pointed(schema, link["operationRef"])  # it resolves to an operation
                    assert "product_id" in [parameter["name"] for parameter in target["parameters"]]
                    linked.setdefault(f"{method.upper()} {path} {status}", set()).add(target["operationId"])
    from_put = {schema["paths"]["/products/{product_id}"]["get"]["operationId"],
                schema["paths"]["/products/{product_id}/image"]["get"]["operationId"],
                schema["paths"]["/products/{product_id}/similar"]["get"]["operationId"],
                schema["paths"]["/products/{product_id}"]["delete"]["operationId"]}
    assert linked["PUT /products/{product_id} 201"] == linked["PUT /products/{product_id} 200"] == from_put
    assert from_put < linked["POST /products:batch 200"]


def test_with_writes_off_the_schema_names_no_token_and_only_403(shop_catalog: Path, tmp_path: Path, lite0) -> None:
    schema = schema_of(shop_catalog, tmp_path, lite0, "")
    assert "securitySchemes" not in schema.get("components", {})
    for path, method in (("/products/{product_id}", "put"), ("/products/{product_id}", "delete"),
                         ("/products:batch", "post")):
        operation = schema["paths"][path][method]
        assert "security" not in operation
        assert {status for status in operation["responses"] if status[0] in "45"} == {"403", "500"}

TOKEN = "contract-token"
SEED = 25
EXAMPLES = 25
OPERATIONS = ("GET /health", "GET /filters", "POST /recommend", *PRODUCT_ROUTES, "POST /products:batch")


def served_catalog(shop_catalog: Path, tmp_path: Path, token: str | None):
    """A copy of the shop catalog served by a real server (the run writes to it)."""
    copy_catalog(shop_catalog, tmp_path / "catalog")
    port = free_port()
    return start_server(tmp_path / "catalog", port, token), f"http://127.0.0.1:{port}"


def health(base_url: str) -> dict:
    with urllib.request.urlopen(f"{base_url}/health", timeout=10) as response:
        return json.loads(response.read())


def test_schemathesis_finds_no_failure_and_follows_written_products(shop_catalog: Path, tmp_path: Path) -> None:
    server, base_url = served_catalog(shop_catalog, tmp_path, TOKEN)
    try:
        run = run_schemathesis(base_url, tmp_path / "report", EXAMPLES, SEED, TOKEN)
    finally:
        stop(server)
    print(operations_table(run), run.links, sep="\n")
    assert run.returncode == 0 and "No issues found" in run.output, run.output[-6000:]
    for operation in OPERATIONS:
        assert run.cases[operation] >= 3, (operation, run.cases)
    assert run.statuses["PUT /products/{product_id}"][201] > 0 and run.statuses["POST /products:batch"][200] > 0
    for route in PRODUCT_ROUTES:  # the links led to products the run wrote: each route answered one of them
        assert run.reached[route] > 0, (route, dict(run.reached), run.links)
    for route in WRITES:  # the token was checked: each write was also sent without it, or with a wrong one
        assert {401, 403} <= set(run.statuses[route]), (route, run.statuses[route])


def test_with_writes_off_every_write_is_403_and_nothing_changes(shop_catalog: Path, tmp_path: Path) -> None:
    server, base_url = served_catalog(shop_catalog, tmp_path, None)
    try:
        before = health(base_url)
        run = run_schemathesis(base_url, tmp_path / "report", EXAMPLES, SEED, None)
        after = health(base_url)
    finally:
        stop(server)
    print(operations_table(run))
    assert run.returncode == 0 and "Failures:" not in run.output, run.output[-6000:]  # warned: no writes, no data
    for operation in OPERATIONS:
        assert run.cases[operation] >= 3, (operation, run.cases)
    for route in WRITES:  # refused, whatever else was wrong with the request
        assert run.statuses[route][403] > 0 and not any(200 <= status < 300 for status in run.statuses[route])
    assert (after["products"], after["generation"]) == (before["products"], before["generation"])
