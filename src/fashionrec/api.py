"""The REST API: a thin FastAPI face over one `Recommender`.

Every answer is JSON (but the image bytes); every error is `{"detail": "..."}` with a status a client can
act on: 404 unknown product, 413 upload too large (bytes, or pixels for its format), 415 not an accepted
image format, 422 not a usable image (empty, damaged, truncated), 400 bad filter. An upload's error names
the file. The model and catalog load once, when the app is built; inference runs in worker threads (one
ONNX Runtime session, which is thread-safe), never on the event loop; images decode in the process's few
decode slots (`images.DECODE_SLOTS`), so a burst of large uploads waits instead of exhausting memory.

Run it with `fashionrec serve --catalog DIR`, or in any ASGI server with
`uvicorn --factory fashionrec.api:app_from_settings` and `FASHIONREC_CATALOG=DIR`.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, File, HTTPException, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from fashionrec.catalog import Catalog
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
from fashionrec.images import accepted_text
from fashionrec.recommend import DEFAULT_K, Recommendations, Recommender

logger = logging.getLogger(__name__)

RESERVED_PARAMETERS = ("k", "show_duplicates")  # query parameters that are not filters
MULTIPART_SLACK_BYTES = 64 * 1024
"""Room for the multipart envelope around an upload of the maximum size."""

_STATUS_OF_ERROR: list[tuple[type[FashionrecError], int]] = [
    (ProductNotFoundError, 404),
    (ImageTooLargeError, 413),
    (UnsupportedImageFormatError, 415),
    (ImageError, 422),
    (FilterError, 400),
    (CatalogError, 503),
]


class MatchOut(BaseModel):
    """One recommended product (the CLI's `--json` shape; `image` is this API's URL of the image)."""

    id: str
    distance: float = Field(description="Euclidean distance between unit vectors: 0 identical, 2 opposite")
    image: str = Field(description="path of the product image on this server")
    metadata: dict[str, str | None]


class RecommendationsOut(BaseModel):
    """The answer to one query, nearest product first."""

    model: str
    results: list[MatchOut]


class ProductOut(BaseModel):
    """A catalog product."""

    id: str
    image: str
    metadata: dict[str, str | None]


class HealthOut(BaseModel):
    """What this server answers from."""

    status: str
    model: str
    model_id: str
    dim: int
    products: int


class ErrorOut(BaseModel):
    """Every error response."""

    detail: str


def create_app(recommender: Recommender, settings: Settings | None = None) -> FastAPI:
    """Build the API around a ready `Recommender` (its model and catalog are loaded already).

    Example:
        >>> app = create_app(Recommender(Catalog.open("my-catalog")))
        >>> uvicorn.run(app, port=8000)
    """
    settings = settings or load_settings()
    catalog = recommender.catalog
    app = FastAPI(
        title="fashionrec",
        summary="Recommend fashion products by how they look.",
        description=f"Catalog of {len(catalog)} products embedded with {catalog.model_name}. "
        f"Filters are query parameters named after the catalog's columns ({', '.join(catalog.columns) or 'none'}): "
        "repeat one to allow several values; different columns must all match; case is ignored.",
    )
    app.add_exception_handler(FashionrecError, _fashionrec_error)
    too_large = f"the upload is larger than the limit of {_megabytes(settings.max_upload_bytes)}"

    @app.middleware("http")
    async def refuse_declared_large_bodies(request: Request, call_next: Callable) -> Any:
        """413 at once for a declared oversize body (bodies without a length are counted by the route)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.max_upload_bytes + MULTIPART_SLACK_BYTES:
            return JSONResponse({"detail": too_large}, status_code=413)
        return await call_next(request)

    read_filters = _filters_reader(catalog.columns)
    jpeg_rule = (f" ({settings.max_upload_jpeg_pixels:,} for a JPEG)"
                 if recommender.embedder.spec.preprocessing.allow_draft else "")
    upload_rule = (f"a photo as {accepted_text()}; at most {_megabytes(settings.max_upload_bytes)} and "
                   f"{settings.max_upload_pixels:,} pixels{jpeg_rule}")
    errors: dict[int | str, dict[str, Any]] = {status: {"model": ErrorOut} for status in (400, 404, 413, 415, 422)}

    def k_query() -> Any:
        return Query(DEFAULT_K, ge=1, le=settings.max_k, description="how many products")

    def duplicates_query() -> Any:
        return Query(False, description="show every copy of a duplicate image (default: one product per group)")

    @app.get("/health", response_model=HealthOut)
    def health() -> HealthOut:
        """The model and catalog this server answers from."""
        return HealthOut(status="ok", model=catalog.model_name, model_id=catalog.model_id, dim=catalog.dim,
                         products=len(catalog))

    @app.get("/filters", response_model=dict[str, list[str]])
    def filters() -> dict[str, list[str]]:
        """The columns worth filtering on, with their values."""
        return catalog.facets()

    # The body limit on the route (not the app) so that its 413 goes through FastAPI's JSON error handler.
    @app.post("/recommend", response_model=RecommendationsOut, responses=errors,
              max_body_size=settings.max_upload_bytes + MULTIPART_SLACK_BYTES)
    async def recommend(request: Request, file: UploadFile = File(description=upload_rule),
                        k: int = k_query(), show_duplicates: bool = duplicates_query()) -> RecommendationsOut:
        """The k products that look most like the uploaded photo."""
        where = read_filters(request)
        image = await _read_upload(file, settings.max_upload_bytes)
        try:
            found = await run_in_threadpool(recommender.by_image, image, k, where, show_duplicates)
        except ImageError as exc:  # the same kind of error (so the same status), naming the file
            raise type(exc)(f"the uploaded file {file.filename or 'without a name'}: {exc}") from None
        return _recommendations_out(request, found)

    @app.get("/products/{product_id}", response_model=ProductOut, responses=errors)
    def product(request: Request, product_id: str = Path()) -> ProductOut:
        """A product's metadata and image URL."""
        return ProductOut(id=product_id, image=_image_url(request, product_id), metadata=catalog.metadata(product_id))

    @app.get("/products/{product_id}/image", name="product_image", response_class=FileResponse, responses=errors)
    def product_image(product_id: str = Path()) -> FileResponse:
        """The product's image file (found by id: no path ever comes from a request)."""
        path = catalog.image_path(product_id)
        if not path.is_file():
            raise HTTPException(404, f"the image of product {product_id!r} is no longer on the server")
        return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    @app.get("/products/{product_id}/similar", response_model=RecommendationsOut, responses=errors)
    async def similar(request: Request, product_id: str = Path(), k: int = k_query(),
                      show_duplicates: bool = duplicates_query()) -> RecommendationsOut:
        """More like this product (never the product itself, nor a copy of its image)."""
        where = read_filters(request)
        found = await run_in_threadpool(recommender.by_id, product_id, k, where, show_duplicates)
        return _recommendations_out(request, found)

    _document_filters(app, catalog.columns)
    return app


def app_from_settings() -> FastAPI:
    """The API for the catalog named by FASHIONREC_CATALOG (for `uvicorn --factory`, one per worker).

    Raises:
        CatalogError: FASHIONREC_CATALOG is not set, or is not a catalog.
    """
    settings = load_settings()
    if settings.catalog_dir is None:
        raise CatalogError("set FASHIONREC_CATALOG to the catalog folder this API should serve")
    return create_app(Recommender(Catalog.open(settings.catalog_dir), settings=settings), settings)


def _recommendations_out(request: Request, found: Recommendations) -> RecommendationsOut:
    """Recommendations with image URLs of this server in place of file paths."""
    results = [MatchOut(id=m.id, distance=m.distance, image=_image_url(request, m.id), metadata=m.metadata)
               for m in found.results]
    return RecommendationsOut(model=found.model, results=results)


def _image_url(request: Request, product_id: str) -> str:
    """Server-relative URL of a product's image."""
    return f"{request.scope.get('root_path', '')}/products/{quote(product_id, safe='')}/image"


async def _read_upload(file: UploadFile, max_bytes: int) -> bytes:
    """The uploaded file's bytes, refusing more than `max_bytes` (413) and an empty file (422)."""
    data = await file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, f"the upload is larger than the limit of {_megabytes(max_bytes)}")
    if not data:
        raise ImageError(f"the uploaded file {file.filename or 'without a name'} is empty (0 bytes): upload the "
                         "photo again")
    return data


def _megabytes(count: int) -> str:
    return f"{count / 1_000_000:g} MB"


def _filters_reader(columns: list[str]) -> Callable[[Request], dict[str, list[str]]]:
    """A function reading metadata filters from a request's query string, refusing unknown parameters."""
    allowed = set(columns)

    def read_filters(request: Request) -> dict[str, list[str]]:
        where: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            if name in RESERVED_PARAMETERS:
                continue
            if name not in allowed:
                known = ", ".join(columns) or "none (the catalog was indexed without metadata)"
                raise FilterError(f"unknown query parameter {name!r}: use k, show_duplicates or a filter column "
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


async def _fashionrec_error(request: Request, exc: Exception) -> JSONResponse:
    """A library error as a JSON answer with the status that fits it (server paths left out)."""
    status = next((code for kind, code in _STATUS_OF_ERROR if isinstance(exc, kind)), 400)
    detail = str(exc)
    if isinstance(exc, ProductNotFoundError):
        detail = f"product {request.path_params.get('product_id', '')!r} is not in the catalog"
    return JSONResponse({"detail": detail}, status_code=status)
