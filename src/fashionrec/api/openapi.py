"""The parts of the OpenAPI schema FastAPI cannot see, so that a client generated from /openapi.json sends what the
server accepts: the filters (query parameters named after the catalog's columns, read from the query string), a
write's metadata as the JSON object of those columns it must be (the form field is text to FastAPI), no empty
upload (each marked a file, as client generators read it), and no 422 of FastAPI's shape on a route that never
answers one. The columns are known only once the catalog is open, and can change when it is indexed again: the
schema is built again when they do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from fashionrec.api.reads import RESERVED_PARAMETERS
from fashionrec.api.uploads import BATCH_UPLOADS
from fashionrec.config import MAX_METADATA_BYTES, MAX_METADATA_KEYS, MAX_PRODUCT_ID_LENGTH, PRODUCT_ID_PATTERN

_FILTERED = ("/recommend", "/products/{product_id}/similar")
_PRODUCT_WRITE = ("/products/{product_id}", "put")
_BATCH_WRITE = ("/products:batch", "post")


def document_contract(app: FastAPI, current_columns: Callable[[], list[str]]) -> None:
    """Serve the schema with the filters, the metadata objects and the upload rules of the catalog's current columns
    (built once per set of columns)."""
    built: dict[tuple[str, ...], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        columns = tuple(current_columns())
        if columns not in built:
            app.openapi_schema = None  # FastAPI's own builder returns the schema it cached, if any
            schema = type(app).openapi(app)
            _add_filters(schema, columns)
            _add_metadata(schema, columns)
            _refuse_empty_uploads(schema)
            _drop_unanswered_validation_errors(schema)
            built.clear()
            built[columns] = schema
        app.openapi_schema = built[columns]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_filters(schema: dict[str, Any], columns: tuple[str, ...]) -> None:
    """The filter columns as optional, repeatable query parameters of both queries."""
    for path in _FILTERED:
        for operation in schema["paths"][path].values():
            operation.setdefault("parameters", []).extend(
                {"name": column, "in": "query", "required": False, "explode": True,
                 "schema": {"type": "array", "items": {"type": "string"}},
                 "description": f"keep products whose {column} is one of these (case ignored)"}
                for column in columns if column not in RESERVED_PARAMETERS
            )


def metadata_schema(columns: tuple[str, ...]) -> dict[str, Any]:
    """A product's metadata as a write sends it: one flat JSON object of the catalog's columns, each text or null."""
    return {"type": "object", "properties": {column: {"type": ["string", "null"]} for column in columns},
            "additionalProperties": False, "maxProperties": MAX_METADATA_KEYS,
            "description": f"the product's metadata: the catalog's columns ({', '.join(columns) or 'none'}), each text "
                           "or null; omitted, a replaced product keeps its metadata"}


def _add_metadata(schema: dict[str, Any], columns: tuple[str, ...]) -> None:
    """The `metadata` form fields of the writes as the JSON objects the server parses them into (400 otherwise)."""
    limit = f"at most {MAX_METADATA_BYTES // 1024} kB of JSON"
    product = metadata_schema(columns)
    _form_properties(schema, *_PRODUCT_WRITE)["metadata"] = {**product, "description": f"{product['description']}; "
                                                             f"{limit}; an empty field counts as left out"}
    _form_properties(schema, *_BATCH_WRITE)["metadata"] = {
        "type": "object", "additionalProperties": product, "maxProperties": BATCH_UPLOADS,
        "propertyNames": {"pattern": f"^{PRODUCT_ID_PATTERN}$", "maxLength": MAX_PRODUCT_ID_LENGTH},
        "description": "product id -> that product's metadata; each id must be the id of a photo in this batch (its "
                       f"file name without the extension); at most {MAX_METADATA_BYTES * BATCH_UPLOADS // 1024} kB "
                       "of JSON; an empty field counts as left out"}


def _refuse_empty_uploads(schema: dict[str, Any]) -> None:
    """Every uploaded file has at least one byte (an empty one is 422): `minLength` on each file of a form. Each is
    also `format: binary` beside FastAPI's `contentMediaType`: what client generators (openapi-python-client,
    openapi-generator) read as "a file" (without it they send the photo as text)."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            if "multipart/form-data" not in content:
                continue
            for field in _resolve(schema, content["multipart/form-data"]["schema"])["properties"].values():
                for part in (field, field.get("items", {})):
                    if part.get("contentMediaType") == "application/octet-stream" or part.get("format") == "binary":
                        part.update(format="binary", minLength=1)


def _drop_unanswered_validation_errors(schema: dict[str, Any]) -> None:
    """FastAPI documents a 422 of its own shape on a route that does not document 422 itself: our routes document
    theirs (as `ErrorOut`), so such a 422 is one the route never gives (a write when writes are off: 403 first)."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            default = operation["responses"].get("422", {}).get("content", {}).get("application/json", {})
            if default.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del operation["responses"]["422"]
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)


def _form_properties(schema: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    """The fields of a route's multipart form, to be edited in place."""
    form = schema["paths"][path][method]["requestBody"]["content"]["multipart/form-data"]["schema"]
    return _resolve(schema, form)["properties"]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A schema node, its local `$ref` followed."""
    reference = node.get("$ref")
    if reference is None:
        return node
    target: Any = schema
    for part in reference.removeprefix("#/").split("/"):
        target = target[part]
    return target
