"""The REST API: a thin FastAPI face over one `Recommender`.

Every answer is JSON (but the image bytes); every error is `{"detail": "..."}` (see `ErrorOut`), one readable
sentence naming the file, field or route at fault and what to do, with a status a client can act on: 400 bad
filter, 404 unknown product or route, 405 wrong method, 413 upload too large (bytes, or pixels for its format),
415 not an accepted image format, 422 malformed request or unusable image (empty, damaged, truncated), 500 a bug,
503 the catalog's search cannot answer. The model and catalog load once, when the app is built; inference runs in
worker threads (one ONNX Runtime session, which is thread-safe), never on the event loop; images decode in the
process's few decode slots (`images.DECODE_SLOTS`), so a burst of large uploads waits instead of exhausting memory.

Run it with `fashionrec serve --catalog DIR`, or in any ASGI server with
`uvicorn --factory fashionrec.api:app_from_settings` and `FASHIONREC_CATALOG=DIR`.
"""

from __future__ import annotations

import hmac
import http
import importlib.util
import json
import logging
import mimetypes
from collections.abc import Callable
from pathlib import Path as FilePath
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, File, Form, HTTPException, Path, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from fashionrec.catalog.catalog import Catalog
from fashionrec.config import Settings, load_settings
from fashionrec.errors import (
    CatalogError,
    FashionrecError,
    FilterError,
    ImageError,
    ImageTooLargeError,
    ProductNotFoundError,
    UnsupportedImageFormatError,
)
from fashionrec.imaging.formats import accepted_text
from fashionrec.errors import ProductIdError
from fashionrec.recommend.answers import DEFAULT_K, SIMILARITY_MEANING, Recommendations
from fashionrec.recommend.recommender import Recommender

logger = logging.getLogger(__name__)

RESERVED_PARAMETERS = ("k", "show_duplicates", "colour_weight")  # query parameters that are not filters
MULTIPART_SLACK_BYTES = 64 * 1024
BATCH_UPLOADS = 100  # photos one POST /products:batch may carry (each within the upload limit)
"""Room for the multipart envelope around an upload of the maximum size."""

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
         "not an object of the catalog's columns.",
    401: "A product write sent no bearer token (Authorization: Bearer TOKEN).",
    403: "A product write sent a wrong token, or writes are off on this server (FASHIONREC_API_TOKEN unset).",
    404: "No such product, or its image is no longer on the server.",
    413: "The upload has more bytes (FASHIONREC_MAX_UPLOAD_MB) or pixels (FASHIONREC_MAX_UPLOAD_PIXELS) than allowed.",
    415: "The upload is not in an accepted image format (the detail says which are).",
    422: "A parameter is out of range or missing, or the uploaded file is not a usable photo.",
    500: "A bug in the server: its log has the details.",
    503: "The catalog's search cannot answer now (e.g. its Milvus server is unreachable, or holds an old copy), or "
         "another program has been writing to the catalog too long (try the write again).",
}
DOCS_ASSETS = "/docs-assets"  # where the Swagger UI and ReDoc scripts are served from (no CDN)
PHOTO_FORMATS = f"send a photo as {accepted_text()}"
_PLACES = {"query": "query parameter", "path": "path parameter", "body": "form field", "header": "header"}


class SwatchOut(BaseModel):
    """One dominant colour of a product."""

    rgb: str = Field(description="sRGB hex, e.g. #a31f2b")
    share: float = Field(description="its share of the product's own pixels, 0-1")


class MatchOut(BaseModel):
    """One recommended product (the CLI's `--json` shape; `image` is this API's URL of the image)."""

    id: str
    similarity: float = Field(description=SIMILARITY_MEANING)
    image: str = Field(description="path of the product image on this server")
    metadata: dict[str, str | None]
    colours: list[SwatchOut] = Field(default_factory=list, description="the product's dominant colours, heaviest "
                                                                       "first (none until its colour is computed)")


class RecommendationsOut(BaseModel):
    """The answer to one query, nearest product first."""

    model: str
    colour_weight: float = Field(description="how much colour counted, 0 (shape only) to 1 (the strongest setting)")
    results: list[MatchOut]
    notice: str | None = Field(None, description="set when a filter matched nothing: the filter, and the values "
                                                 "its column has (or that the filters together allow no product)")


class ProductOut(BaseModel):
    """A catalog product."""

    id: str
    image: str
    metadata: dict[str, str | None]


class WrittenOut(BaseModel):
    """A product as a write stored it (201: created; 200: it replaced the product of that id)."""

    id: str
    image: str
    metadata: dict[str, str | None]
    created: bool


class BatchOut(BaseModel):
    """What one batch write stored, all or nothing."""

    products: list[WrittenOut]
    created: int
    replaced: int


class RemovedOut(BaseModel):
    """A product removed."""

    id: str
    removed: bool


class HealthOut(BaseModel):
    """What this server answers from."""

    status: str
    model: str
    model_id: str
    dim: int
    products: int
    generation: int = Field(description="the catalog snapshot answering: it moves on as products are written")


class ErrorOut(BaseModel):
    """Every error response: one sentence naming what is wrong (the file, field or route) and what to do."""

    detail: str = Field(description="what went wrong and what to do, in one readable sentence")
    errors: list[dict[str, Any]] | None = Field(
        None, description="only on 422 answers to a malformed request: FastAPI's list of the fields at fault "
                          "(loc, msg, type), for programs")


def create_app(recommender: Recommender, settings: Settings | None = None) -> FastAPI:
    """Build the API around a ready `Recommender` (its model and catalog are loaded already).

    Example:
        >>> app = create_app(Recommender(Catalog.open("my-catalog")))
        >>> uvicorn.run(app, port=8000)
    """
    settings = settings or load_settings()
    catalog = recommender.catalog
    assets = _docs_assets()
    app = FastAPI(
        title="fashionrec",
        summary="Recommend fashion products by how they look.",
        description=f"Catalog of {len(catalog)} products embedded with {catalog.model_name}. "
        f"Filters are query parameters named after the catalog's columns ({', '.join(catalog.columns) or 'none'}): "
        "repeat one to allow several values; different columns must all match; case is ignored. "
        "Every error is `{\"detail\": \"...\"}`: one sentence naming what is wrong and what to do "
        "(an unknown route is 404, a wrong method 405).",
        # With local copies of their scripts the pages are served below: FastAPI's own load theirs from a CDN.
        docs_url=None if assets else "/docs", redoc_url=None if assets else "/redoc",
    )
    if assets:
        _serve_docs_offline(app, assets)
    too_large = _too_large(settings.max_upload_bytes)
    _add_error_handlers(app, settings, too_large)

    @app.middleware("http")
    async def refuse_declared_large_bodies(request: Request, call_next: Callable) -> Any:
        """413 at once for a declared oversize body (bodies without a length are counted by the route)."""
        declared = request.headers.get("content-length", "")
        limit = settings.max_upload_bytes + MULTIPART_SLACK_BYTES
        if request.url.path.endswith("/products:batch"):  # many photos, each within the limit
            limit *= BATCH_UPLOADS
        if declared.isdigit() and int(declared) > limit:
            return JSONResponse({"detail": too_large}, status_code=413)
        return await call_next(request)

    read_filters = _filters_reader(lambda: recommender.catalog.columns)
    jpeg_rule = (f" ({settings.max_upload_jpeg_pixels:,} for a JPEG)"
                 if recommender.embedder.spec.preprocessing.allow_draft else "")
    upload_rule = (f"a photo as {accepted_text()}; at most {_megabytes(settings.max_upload_bytes)} and "
                   f"{settings.max_upload_pixels:,} pixels{jpeg_rule}")

    def k_query() -> Any:
        return Query(DEFAULT_K, ge=1, le=settings.max_k, description="how many products")

    def duplicates_query() -> Any:
        return Query(False, description="show every copy of a duplicate image (default: one product per group)")

    def colour_query() -> Any:
        return Query(None, ge=0, le=1, description=f"how much the product's colour counts beside its shape: 0 (shape "
                                                   f"only) to 1 (the strongest colour setting); default "
                                                   f"{settings.colour_weight:g}")

    @app.get("/health", response_model=HealthOut, responses=_errors())
    def health() -> HealthOut:
        """The model and catalog this server answers from."""
        catalog = recommender.catalog
        return HealthOut(status="ok", model=catalog.model_name, model_id=catalog.model_id, dim=catalog.dim,
                         products=len(catalog), generation=catalog.generation)

    @app.get("/filters", response_model=dict[str, list[str]], responses=_errors())
    def filters() -> dict[str, list[str]]:
        """The columns worth filtering on, with their values."""
        return recommender.catalog.facets()

    # The body limit on the route (not the app) so that its 413 goes through FastAPI's JSON error handler.
    @app.post("/recommend", response_model=RecommendationsOut, responses=_errors(400, 413, 415, 422, 503),
              max_body_size=settings.max_upload_bytes + MULTIPART_SLACK_BYTES)
    async def recommend(request: Request, file: UploadFile = File(description=upload_rule),
                        k: int = k_query(), show_duplicates: bool = duplicates_query(),
                        colour_weight: float | None = colour_query()) -> RecommendationsOut:
        """The k products that look most like the uploaded photo."""
        where = read_filters(request)
        image = await _read_upload(file, settings.max_upload_bytes)
        try:
            found = await run_in_threadpool(recommender.by_image, image, k, where, show_duplicates, colour_weight)
        except ImageError as exc:  # the same kind of error (so the same status), naming the file
            raise type(exc)(f"{_upload_name(file)}: {exc}") from None
        return _recommendations_out(request, found)

    @app.get("/products/{product_id}", response_model=ProductOut, responses=_errors(404, 422))
    def product(request: Request, product_id: str = Path()) -> ProductOut:
        """A product's metadata and image URL."""
        return ProductOut(id=product_id, image=_image_url(request, product_id),
                          metadata=recommender.catalog.metadata(product_id))

    @app.get("/products/{product_id}/image", name="product_image", response_class=FileResponse,
             responses=_errors(404, 422))
    def product_image(product_id: str = Path()) -> FileResponse:
        """The product's image file (found by id: no path ever comes from a request)."""
        path = recommender.catalog.image_path(product_id)
        if not path.is_file():
            raise HTTPException(404, f"the image of product {product_id!r} is no longer on the server: the shop must "
                                     "restore the file or index the catalog again")
        return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    @app.get("/products/{product_id}/similar", response_model=RecommendationsOut,
             responses=_errors(400, 404, 422, 503))
    async def similar(request: Request, product_id: str = Path(), k: int = k_query(),
                      show_duplicates: bool = duplicates_query(),
                      colour_weight: float | None = colour_query()) -> RecommendationsOut:
        """More like this product (never the product itself, nor a copy of its image)."""
        where = read_filters(request)
        found = await run_in_threadpool(recommender.by_id, product_id, k, where, show_duplicates, colour_weight)
        return _recommendations_out(request, found)

    _add_write_routes(app, recommender, settings)
    _document_filters(app, catalog.columns)
    return app


def _add_write_routes(app: FastAPI, recommender: Recommender, settings: Settings) -> None:
    """PUT /products/{id}, DELETE /products/{id} and POST /products:batch: off unless FASHIONREC_API_TOKEN is set,
    then only for requests that send it as a bearer token (reads stay open)."""
    from fashionrec.imaging.decode import PixelLimits
    from fashionrec.index.write import MAX_BATCH, ProductWrite, put_products, remove_products

    limits = PixelLimits.for_uploads(settings)
    write_errors = _errors(401, 403, 404, 413, 415, 422, 503)

    def writer(request: Request) -> None:
        _check_token(request, settings.api_token)

    async def store(items: list[ProductWrite]) -> list:
        written = await run_in_threadpool(put_products, recommender.catalog.catalog_dir, items, recommender.embedder,
                                          limits)
        await run_in_threadpool(recommender.refresh)  # this process answers the new products at once
        return written

    def out(request: Request, written) -> WrittenOut:
        return WrittenOut(id=written.id, image=_image_url(request, written.id), metadata=written.metadata,
                          created=written.created)

    @app.put("/products/{product_id}", response_model=WrittenOut, status_code=200, responses=write_errors,
             dependencies=[Depends(writer)], max_body_size=settings.max_upload_bytes + MULTIPART_SLACK_BYTES)
    async def put_product(request: Request, response: Response, product_id: str = Path(),
                          image: UploadFile = File(description="the product's photo"),
                          metadata: str | None = Form(None, description="a JSON object of the catalog's metadata "
                                                      "columns (omitted: a replaced product keeps its metadata)")
                          ) -> WrittenOut:
        """Create or replace one product: its photo embedded once, stored in the catalog's image folder."""
        data = await _read_upload(image, settings.max_upload_bytes)
        written = (await store([ProductWrite(product_id, data, _json_object(metadata, "metadata"))]))[0]
        response.status_code = 201 if written.created else 200
        return out(request, written)

    @app.delete("/products/{product_id}", response_model=RemovedOut, responses=write_errors,
                dependencies=[Depends(writer)])
    async def delete_product(product_id: str = Path()) -> RemovedOut:
        """Remove one product (and its image, when the catalog's own folder holds it)."""
        await run_in_threadpool(remove_products, recommender.catalog.catalog_dir, [product_id])
        await run_in_threadpool(recommender.refresh)
        return RemovedOut(id=product_id, removed=True)

    @app.post("/products:batch", response_model=BatchOut, responses=write_errors, dependencies=[Depends(writer)],
              max_body_size=BATCH_UPLOADS * (settings.max_upload_bytes + MULTIPART_SLACK_BYTES))
    async def put_products_batch(request: Request,
                                 images: list[UploadFile] = File(description="photos named <product id>.<ext>"),
                                 metadata: str | None = Form(None, description="a JSON object: product id -> that "
                                                             "product's metadata object")) -> BatchOut:
        """Create or replace many products at once, all or none (a bad photo or id writes nothing)."""
        if len(images) > min(MAX_BATCH, BATCH_UPLOADS):
            raise FashionrecError(f"a batch takes at most {min(MAX_BATCH, BATCH_UPLOADS)} photos, got {len(images)}")
        per_product = _json_object(metadata, "metadata") or {}
        items = []
        for upload in images:
            product_id = PurePath(upload.filename or "").stem
            meta = per_product.get(product_id)
            items.append(ProductWrite(product_id, await _read_upload(upload, settings.max_upload_bytes), meta))
        written = await store(items)
        return BatchOut(products=[out(request, w) for w in written], created=sum(w.created for w in written),
                        replaced=sum(not w.created for w in written))


def _check_token(request: Request, token: str) -> None:
    """401 without a bearer token, 403 with a wrong one (or when writes are off); compared in constant time."""
    if not token:
        raise HTTPException(403, "product writes are turned off on this server: its operator turns them on by setting "
                                 "FASHIONREC_API_TOKEN")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(401, "this write needs the server's token: send the header 'Authorization: Bearer TOKEN'",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(403, "the bearer token sent is not this server's write token")


def _json_object(text: str | None, field: str) -> dict | None:
    """A form field holding a JSON object, or None when absent."""
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FashionrecError(f"the form field {field!r} must hold a JSON object, e.g. {{\"gender\": \"Men\"}}: "
                              f"{exc.msg} at character {exc.pos}") from None
    if not isinstance(value, dict):
        raise FashionrecError(f"the form field {field!r} must hold a JSON object, got {type(value).__name__}")
    return value


def app_from_settings() -> FastAPI:
    """The API for the catalog named by FASHIONREC_CATALOG (for `uvicorn --factory`, one per worker).

    Raises:
        CatalogError: FASHIONREC_CATALOG is not set, or is not a catalog.
    """
    settings = load_settings()
    if settings.catalog_dir is None:
        raise CatalogError("set FASHIONREC_CATALOG to the catalog folder this API should serve")
    recommender = Recommender(Catalog.open(settings.catalog_dir), settings=settings)
    recommender.follow()  # each worker process follows the catalog on its own
    return create_app(recommender, settings)


def _recommendations_out(request: Request, found: Recommendations) -> RecommendationsOut:
    """Recommendations with image URLs of this server in place of file paths."""
    results = [MatchOut(id=m.id, similarity=m.similarity, image=_image_url(request, m.id), metadata=m.metadata,
                        colours=[SwatchOut(**colour) for colour in m.colours])
               for m in found.results]
    return RecommendationsOut(model=found.model, colour_weight=found.colour_weight, results=results,
                              notice=found.notice)


def _image_url(request: Request, product_id: str) -> str:
    """Server-relative URL of a product's image."""
    return f"{request.scope.get('root_path', '')}/products/{quote(product_id, safe='')}/image"


async def _read_upload(file: UploadFile, max_bytes: int) -> bytes:
    """The uploaded file's bytes, refusing more than `max_bytes` (413) and an empty file (422)."""
    data = await file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, _too_large(max_bytes))
    if not data:
        raise ImageError(f"{_upload_name(file)} is empty (0 bytes): upload the photo again ({PHOTO_FORMATS})")
    return data


def _upload_name(file: UploadFile) -> str:
    """How messages name an uploaded file."""
    return f"the uploaded file {file.filename!r}" if file.filename else "the uploaded file"


def _too_large(max_bytes: int) -> str:
    """The 413 message, wherever the size is found out."""
    return (f"the upload is larger than the limit of {_megabytes(max_bytes)}: send a smaller photo (the server sets "
            "the limit with FASHIONREC_MAX_UPLOAD_MB)")


def _megabytes(count: int) -> str:
    return f"{count / 1_000_000:g} MB"


def _filters_reader(current_columns: Callable[[], list[str]]) -> Callable[[Request], dict[str, list[str]]]:
    """A function reading metadata filters from a request's query string, refusing unknown parameters (the columns
    of the snapshot being served)."""

    def read_filters(request: Request) -> dict[str, list[str]]:
        columns = current_columns()
        allowed = set(columns)
        where: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            if name in RESERVED_PARAMETERS:
                continue
            if name not in allowed:
                known = ", ".join(columns) or "none (the catalog was indexed without metadata)"
                raise FilterError(f"unknown query parameter {name!r}: use k, show_duplicates, colour_weight or a filter column "
                                  f"({known})")
            where.setdefault(name, []).append(value)
        return where

    return read_filters


def _document_filters(app: FastAPI, columns: list[str]) -> None:
    """List the filter columns as optional, repeatable query parameters in the OpenAPI schema."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = type(app).openapi(app)
            for path in ("/recommend", "/products/{product_id}/similar"):
                for operation in schema["paths"][path].values():
                    operation.setdefault("parameters", []).extend(
                        {"name": column, "in": "query", "required": False, "explode": True,
                         "schema": {"type": "array", "items": {"type": "string"}},
                         "description": f"keep products whose {column} is one of these (case ignored)"}
                        for column in columns if column not in RESERVED_PARAMETERS
                    )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _docs_assets() -> FilePath | None:
    """The folder of Swagger UI's and ReDoc's scripts in the installed `fastapi-offline` package (web extra)."""
    spec = importlib.util.find_spec("fastapi_offline")
    folder = FilePath(spec.origin).parent / "static" if spec is not None and spec.origin else None
    if folder is None or not (folder / "swagger-ui-bundle.js").is_file():
        logger.warning("/docs and /redoc will load their scripts from a CDN (blank without internet): "
                       "pip install 'fashionrec[web]' to serve local copies")
        return None
    return folder


def _serve_docs_offline(app: FastAPI, assets: FilePath) -> None:
    """/docs (Swagger UI) and /redoc with their scripts and styles served from `assets`, so the pages work on a
    machine without internet."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
                                   oauth2_redirect_url=f"{root}{redirect}",
                                   swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png")

    @app.get(redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png", with_google_fonts=False)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route: its error statuses (and 500, which any route can give) as `ErrorOut`."""
    return {status: {"model": ErrorOut, "description": ERROR_MEANINGS[status]} for status in (*statuses, 500)}


def _add_error_handlers(app: FastAPI, settings: Settings, too_large: str) -> None:
    """Make every error, FastAPI's and Starlette's included, `{"detail": "one readable sentence"}`."""

    async def library_error(request: Request, exc: Exception) -> JSONResponse:
        """A library error with the status that fits it (server paths left out)."""
        status = next((code for kind, code in _STATUS_OF_ERROR if isinstance(exc, kind)), 400)
        detail = str(exc)
        if isinstance(exc, ProductNotFoundError):
            detail = (f"product {request.path_params.get('product_id', '')!r} is not in the catalog; a product's id "
                      "is the name of its image file without the extension")
        return JSONResponse({"detail": detail}, status_code=status)

    async def malformed_request(request: Request, exc: Exception) -> JSONResponse:
        """FastAPI's validation errors (a list of dicts) as one sentence per field, the list kept under `errors`."""
        assert isinstance(exc, RequestValidationError)
        problems = [_explain(error, settings.max_k) for error in exc.errors()]
        return JSONResponse({"detail": "; ".join(problems), "errors": jsonable_encoder(exc.errors())}, status_code=422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        """Starlette's bare phrases (unknown route, wrong method, body over the limit) said in full."""
        assert isinstance(exc, StarletteHTTPException)
        detail = str(exc.detail)
        if detail == http.HTTPStatus(exc.status_code).phrase:  # not a message of ours
            if exc.status_code == 404:
                detail = (f"there is no {request.method} {request.url.path} in this API: its routes are "
                          f"{_routes(app)} (see /docs)")
            elif exc.status_code == 405:
                allowed = [m for route in app.routes if isinstance(route, APIRoute)
                           and route.path_regex.match(request.url.path) for m in sorted(route.methods) if m != "HEAD"]
                allowed = sorted(set(allowed), key=["GET", "PUT", "POST", "DELETE"].index) or ["GET"]
                named = allowed[0] if len(allowed) == 1 else f"{', '.join(allowed[:-1])} or {allowed[-1]}"
                detail = f"{request.method} is not allowed on {request.url.path}: use {named}"
            elif exc.status_code == 413:
                detail = too_large
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        """A bug: JSON like every other error (the traceback goes to the server's log, not to the client)."""
        return JSONResponse({"detail": f"the server failed to answer {request.method} {request.url.path} (a bug): "
                                       "its log has the details; please report it"}, status_code=500)

    app.add_exception_handler(FashionrecError, library_error)
    app.add_exception_handler(RequestValidationError, malformed_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, server_error)


def _explain(error: dict[str, Any], max_k: int) -> str:
    """One FastAPI validation error as a sentence naming the field and what it must be."""
    place, *names = error.get("loc") or ("body",)
    name = ".".join(str(part) for part in names) or "body"
    what = f"the {_PLACES.get(str(place), str(place))} {name!r}"
    if error.get("type") == "missing":
        needed = {"file": "send the photo as multipart/form-data in a field named file"}.get(name, "add it")
        return f"{what} is missing: {needed}"
    must = {"k": f"a whole number from 1 to {max_k} (this server's FASHIONREC_MAX_K)",
            "show_duplicates": "true or false",
            "colour_weight": "a number from 0 (shape only) to 1 (the strongest colour setting)",
            "file": f"a file sent as multipart/form-data ({PHOTO_FORMATS})"}.get(name)
    if must is None:
        return f"{what} is not valid ({error.get('msg', 'no reason given')}), got {error.get('input')!r}"
    return f"{what} must be {must}, got {error.get('input')!r}"


def _routes(app: FastAPI) -> str:
    """The API's documented routes, as METHOD PATH, in the order they were declared."""
    return ", ".join(f"{method} {route.path}" for route in app.routes
                     if isinstance(route, APIRoute) and route.include_in_schema
                     for method in sorted(route.methods - {"HEAD"}))
