"""The routes that read: open to every client, answering from the catalog snapshot the `Recommender` holds now.

Queries (`/recommend`, `/similar`) run in worker threads, never on the event loop; filters are the query
parameters named after the catalog's columns, read from the query string itself because the columns are only
known once the catalog is open (and can change as products are written)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from fashionrec.api.errors import error_responses
from fashionrec.api.schemas import (
    GarmentKind,
    HealthOut,
    MatchOut,
    ProductOut,
    RecommendationsOut,
    RegionOut,
    SwatchOut,
    multipart_encoding,
    product_id_path,
    product_links,
)
from fashionrec.api.uploads import body_limit, read_upload, upload_name, upload_rule
from fashionrec.config import Settings
from fashionrec.errors import FilterError, ImageError, shown
from fashionrec.imaging.formats import MEDIA_TYPES, media_type_of
from fashionrec.recommend import DEFAULT_K, Match, Recommendations, Recommender

RESERVED_PARAMETERS = ("k", "show_duplicates", "colour_weight", "region", "whole")  # query parameters that are not filters

FiltersReader = Callable[[Request], dict[str, list[str]]]


def add_read_routes(app: FastAPI, recommender: Recommender, settings: Settings) -> None:
    """GET /health, /filters, /products/{id}, its image and its similar products, and POST /recommend (in the
    order the 404 message and the OpenAPI schema list them)."""
    read_filters = filters_reader(lambda: recommender.catalog.columns)
    _add_status_routes(app, recommender)
    _add_recommend_route(app, recommender, settings, read_filters)
    _add_product_routes(app, recommender)
    _add_similar_route(app, recommender, settings, read_filters)


def _add_status_routes(app: FastAPI, recommender: Recommender) -> None:
    """GET /health and GET /filters: what this server answers from."""

    @app.get("/health", response_model=HealthOut, responses=error_responses())
    def health() -> HealthOut:
        """The model and catalog this server answers from."""
        catalog = recommender.catalog
        return HealthOut(status="ok", model=catalog.model_name, model_id=catalog.model_id, dim=catalog.dim,
                         products=len(catalog), generation=catalog.generation)

    @app.get("/filters", response_model=dict[str, list[str]], responses=error_responses())
    def filters() -> dict[str, list[str]]:
        """The columns worth filtering on, with their values."""
        return recommender.catalog.facets()


def _add_recommend_route(app: FastAPI, recommender: Recommender, settings: Settings,
                         read_filters: FiltersReader) -> None:
    """POST /recommend: products that look like an uploaded photo."""
    photo_rule = upload_rule(settings, recommender.embedder.spec.preprocessing.allow_draft)

    # The body limit on the route (not the app) so that its 413 goes through FastAPI's JSON error handler.
    @app.post("/recommend", response_model=RecommendationsOut, responses=error_responses(400, 413, 415, 422, 503),
              max_body_size=body_limit(settings.max_upload_bytes), openapi_extra=multipart_encoding(photo="file"))
    async def recommend(request: Request, file: UploadFile = File(description=photo_rule),
                        k: int = _k_query(settings), show_duplicates: bool = _duplicates_query(),
                        colour_weight: float | None = _colour_query(settings),
                        region: GarmentKind | None = _region_query(),
                        whole: bool = Query(False, description="answer the whole photo, never per garment")
                        ) -> RecommendationsOut:
        """The k products that look most like the uploaded photo; for a photo of a person, per garment it shows
        (`regions`), `results` being those of the garment `region` (default: the most probable)."""
        where = read_filters(request)
        image = await read_upload(file, settings.max_upload_bytes)
        try:
            found = await run_in_threadpool(recommender.by_image, image, k, where, show_duplicates, colour_weight,
                                            region, not whole)
        except ImageError as exc:  # the same kind of error (so the same status), naming the file
            raise type(exc)(f"{upload_name(file)}: {exc}") from None
        return recommendations_out(request, found)


def _add_product_routes(app: FastAPI, recommender: Recommender) -> None:
    """GET /products/{id} and its image."""

    @app.get("/products/{product_id}", response_model=ProductOut,
             responses={200: {"links": product_links("/id", "replaceProduct")}, **error_responses(404, 422)})
    def product(request: Request, product_id: str = product_id_path()) -> ProductOut:
        """A product's metadata and image URL."""
        return ProductOut(id=product_id, image=image_url(request, product_id),
                          metadata=recommender.catalog.metadata(product_id))

    image_types = [*MEDIA_TYPES.values(), "application/octet-stream"]  # what a catalog's files are served as
    photo = {"description": "the image file, as the catalog keeps it",
             "content": {media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in image_types}}

    @app.get("/products/{product_id}/image", name="product_image", response_class=FileResponse,
             responses={200: photo, **error_responses(404, 422)})
    def product_image(product_id: str = product_id_path()) -> FileResponse:
        """The product's image file (found by id: no path ever comes from a request)."""
        path = recommender.catalog.image_path(product_id)
        if not path.is_file():
            raise HTTPException(404, f"the image of product {shown(product_id)} is no longer on the server: the shop "
                                     "must restore the file or index the catalog again")
        return FileResponse(path, media_type=media_type_of(path))


def _add_similar_route(app: FastAPI, recommender: Recommender, settings: Settings,
                       read_filters: FiltersReader) -> None:
    """GET /products/{id}/similar: more like a catalog product."""

    @app.get("/products/{product_id}/similar", response_model=RecommendationsOut,
             responses=error_responses(400, 404, 422, 503))
    async def similar(request: Request, product_id: str = product_id_path(), k: int = _k_query(settings),
                      show_duplicates: bool = _duplicates_query(),
                      colour_weight: float | None = _colour_query(settings)) -> RecommendationsOut:
        """More like this product (never the product itself, nor a copy of its image)."""
        where = read_filters(request)
        if {"region", "whole"} & set(request.query_params):
            raise FilterError("region and whole apply to a photo (POST /recommend): a catalog product is answered "
                              "whole")
        found = await run_in_threadpool(recommender.by_id, product_id, k, where, show_duplicates, colour_weight)
        return recommendations_out(request, found)


def _k_query(settings: Settings) -> Any:
    """The `k` parameter of both queries (one default, one ceiling: the server's)."""
    return Query(DEFAULT_K, ge=1, le=settings.max_k, description="how many products")


def _duplicates_query() -> Any:
    """The `show_duplicates` parameter of both queries."""
    return Query(False, description="show every copy of a duplicate image (default: one product per group)")


def _region_query() -> Any:
    """The `region` parameter of a photo query: which garment's answers are the top-level `results`."""
    return Query(None, description="for a photo of a person: the garment whose answers are `results` (default: the "
                                   "most probable garment found); every garment's answers are in `regions`")


def _colour_query(settings: Settings) -> Any:
    """The `colour_weight` parameter of both queries (its default is the server's)."""
    return Query(None, ge=0, le=1, description=f"how much the product's colour counts beside its shape: 0 (shape "
                                               f"only) to 1 (the strongest colour setting); default "
                                               f"{settings.colour_weight:g}")


def filters_reader(current_columns: Callable[[], list[str]]) -> FiltersReader:
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
                raise FilterError(f"unknown query parameter {shown(name)}: use k, show_duplicates, colour_weight, region and whole (photos) or a "
                                  f"filter column ({known})")
            where.setdefault(name, []).append(value)
        return where

    return read_filters


def recommendations_out(request: Request, found: Recommendations) -> RecommendationsOut:
    """Recommendations with image URLs of this server in place of file paths."""
    regions = [RegionOut(kind=r.kind, box=list(r.box), score=r.score, results=_matches_out(request, r.results),
                         notice=r.notice) for r in found.regions]
    return RecommendationsOut(model=found.model, colour_weight=found.colour_weight,
                              results=_matches_out(request, found.results), notice=found.notice,
                              region=found.region, regions=regions)


def _matches_out(request: Request, matches: list[Match]) -> list[MatchOut]:
    """Matches with image URLs of this server in place of file paths."""
    return [MatchOut(id=m.id, similarity=m.similarity, cosine=m.cosine, image=image_url(request, m.id),
                     metadata=m.metadata, colours=[SwatchOut(**colour) for colour in m.colours]) for m in matches]


def image_url(request: Request, product_id: str) -> str:
    """Server-relative URL of a product's image."""
    return f"{request.scope.get('root_path', '')}/products/{quote(product_id, safe='')}/image"
