"""Every error the API gives, FastAPI's and Starlette's included, as `{"detail": "one readable sentence"}` with a
status a client can act on, and the same statuses documented on each route."""

from __future__ import annotations

import http
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from fashionrec.api.schemas import ErrorOut
from fashionrec.api.uploads import PHOTO_FORMATS, too_large
from fashionrec.config import MAX_METADATA_BYTES, MAX_METADATA_KEYS, Settings
from fashionrec.errors import (
    CatalogError,
    FashionrecError,
    FilterError,
    ImageError,
    ImageTooLargeError,
    ProductIdError,
    ProductNotFoundError,
    UnsupportedImageFormatError,
    cut,
    shown,
)

_STATUS_OF_ERROR: list[tuple[type[FashionrecError], int]] = [
    (ProductNotFoundError, 404),
    (ProductIdError, 422),
    (ImageTooLargeError, 413),
    (UnsupportedImageFormatError, 415),
    (ImageError, 422),
    (FilterError, 400),
    (CatalogError, 503),
]
ERROR_MEANINGS = {
    400: "A filter names a column the catalog does not have (the detail lists its columns), or a write's metadata is "
         "not one flat JSON object of the catalog's columns holding text or null (at most "
         f"{MAX_METADATA_BYTES // 1024} kB and {MAX_METADATA_KEYS} keys).",
    401: "A product write sent no bearer token (Authorization: Bearer TOKEN).",
    403: "A product write sent a wrong token, or writes are off on this server (FASHIONREC_API_TOKEN unset).",
    404: "No such product, or its image is no longer on the server.",
    413: "The upload has more bytes (FASHIONREC_MAX_UPLOAD_MB) or pixels (FASHIONREC_MAX_UPLOAD_PIXELS) than allowed.",
    415: "The upload is not in an accepted image format (the detail says which are).",
    422: "A parameter is out of range or missing, or the uploaded file is not a usable photo.",
    500: "A bug in the server: its log has the details.",
    503: "The catalog's search cannot answer now (e.g. its Milvus server is unreachable, or holds an old copy), "
         "another program has been writing to the catalog too long (try the write again), or the catalog's disk "
         "refused a write (full, or read-only; nothing was committed).",
}
_PLACES = {"query": "query parameter", "path": "path parameter", "body": "form field", "header": "header"}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route: its error statuses (and 500, which any route can give) as `ErrorOut`."""
    return {status: {"model": ErrorOut, "description": ERROR_MEANINGS[status]} for status in (*statuses, 500)}


def add_error_handlers(app: FastAPI, settings: Settings) -> None:
    """Make every error, FastAPI's and Starlette's included, `{"detail": "one readable sentence"}`."""
    too_large_message = too_large(settings.max_upload_bytes)

    async def malformed_request(request: Request, exc: Exception) -> JSONResponse:
        """FastAPI's validation errors (a list of dicts) as one sentence per field, the list kept under `errors`."""
        assert isinstance(exc, RequestValidationError)
        problems = [explain(error, settings.max_k) for error in exc.errors()]
        return JSONResponse({"detail": "; ".join(problems), "errors": jsonable_encoder(exc.errors())}, status_code=422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        """Starlette's bare phrases (unknown route, wrong method, body over the limit) said in full."""
        assert isinstance(exc, StarletteHTTPException)
        detail, headers = str(exc.detail), exc.headers
        if exc.status_code == 405:  # Starlette's Allow names the methods of one route; the path may have more
            methods = allowed_methods(app, request.scope)
            headers = {**(headers or {}), "Allow": ", ".join(methods)}
        if detail == http.HTTPStatus(exc.status_code).phrase:  # not a message of ours
            if exc.status_code == 404:
                detail = (f"there is no {request.method} {cut(request.url.path)} in this API: its routes are "
                          f"{routes(app)} (see /docs)")
            elif exc.status_code == 405:
                detail = f"{request.method} is not allowed on {cut(request.url.path)}: use {_spoken(methods)}"
            elif exc.status_code == 413:
                detail = too_large_message
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)

    app.add_exception_handler(FashionrecError, _library_error)
    app.add_exception_handler(RequestValidationError, malformed_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, _server_error)


async def _library_error(request: Request, exc: Exception) -> JSONResponse:
    """A library error with the status that fits it (server paths left out)."""
    status = next((code for kind, code in _STATUS_OF_ERROR if isinstance(exc, kind)), 400)
    detail = str(exc)
    if isinstance(exc, ProductNotFoundError):
        detail = (f"product {shown(request.path_params.get('product_id', ''))} is not in the catalog; a product's id "
                  "is the name of its image file without the extension")
    return JSONResponse({"detail": detail}, status_code=status)


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: JSON like every other error (the traceback goes to the server's log, not to the client)."""
    return JSONResponse({"detail": f"the server failed to answer {request.method} {request.url.path} (a bug): "
                                   "its log has the details; please report it"}, status_code=500)


_METHOD_ORDER = ["GET", "PUT", "POST", "DELETE"]


def allowed_methods(app: FastAPI, scope: dict[str, Any]) -> list[str]:
    """Every method the request's path takes, from all its routes (the `Allow` header of a 405: RFC 9110 says it
    lists them). Matched as Starlette routes do, so an app mounted below a prefix finds its own paths."""
    allowed = {m for route in app.routes if isinstance(route, APIRoute) and route.matches(scope)[0] != Match.NONE
               for m in route.methods}
    return sorted(allowed, key=lambda m: (_METHOD_ORDER + [m]).index(m)) or ["GET"]


def _spoken(methods: list[str]) -> str:
    """The methods as a 405 message names them ("GET, PUT or DELETE")."""
    return methods[0] if len(methods) == 1 else f"{', '.join(methods[:-1])} or {methods[-1]}"


def explain(error: dict[str, Any], max_k: int) -> str:
    """One FastAPI validation error as a sentence naming the field and what it must be."""
    place, *names = error.get("loc") or ("body",)
    name = ".".join(str(part) for part in names) or "body"
    what = f"the {_PLACES.get(str(place), str(place))} {shown(name)}"
    if error.get("type") == "missing":
        needed = {"file": "send the photo as multipart/form-data in a field named file"}.get(name, "add it")
        return f"{what} is missing: {needed}"
    must = {"k": f"a whole number from 1 to {max_k} (this server's FASHIONREC_MAX_K)",
            "show_duplicates": "true or false",
            "colour_weight": "a number from 0 (shape only) to 1 (the strongest colour setting)",
            "file": f"a file sent as multipart/form-data ({PHOTO_FORMATS})"}.get(name)
    if must is None:
        return f"{what} is not valid ({error.get('msg', 'no reason given')}), got {shown(error.get('input'))}"
    return f"{what} must be {must}, got {shown(error.get('input'))}"


def routes(app: FastAPI) -> str:
    """The API's documented routes, as METHOD PATH, in the order they were declared."""
    return ", ".join(f"{method} {route.path}" for route in app.routes
                     if isinstance(route, APIRoute) and route.include_in_schema
                     for method in sorted(route.methods - {"HEAD"}))
