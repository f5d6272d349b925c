"""Building the API: one FastAPI app around one ready `Recommender`, its routes added group by group."""

from __future__ import annotations

from fastapi import FastAPI

from fashionrec.api.docs import docs_assets, serve_docs_offline
from fashionrec.api.errors import add_error_handlers
from fashionrec.api.guard import WriteGuard
from fashionrec.api.openapi import document_contract
from fashionrec.api.reads import add_read_routes
from fashionrec.api.uploads import refuse_large_bodies
from fashionrec.api.writes import add_write_routes
from fashionrec.catalog import Catalog
from fashionrec.config import QUERY_BATCH, Settings, load_settings
from fashionrec.errors import CatalogError
from fashionrec.recommend import Recommender


def create_app(recommender: Recommender, settings: Settings | None = None) -> FastAPI:
    """Build the API around a ready `Recommender` (its model and catalog are loaded already).

    Example:
        >>> app = create_app(Recommender(Catalog.open("my-catalog")))
        >>> uvicorn.run(app, port=8000)
    """
    settings = settings or load_settings()
    catalog = recommender.catalog
    assets = docs_assets()
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
        serve_docs_offline(app, assets)
    add_error_handlers(app, settings)
    refuse_large_bodies(app, settings.max_upload_bytes)
    app.add_middleware(WriteGuard, token=settings.api_token)  # outermost: a write's token before its body
    batch = settings.query_batch or (QUERY_BATCH if recommender.embedder.on_gpu else 1)
    if batch > 1:  # each request runs on a thread: concurrent photos share model runs
        recommender.share_model_runs(batch)
    add_read_routes(app, recommender, settings)
    add_write_routes(app, recommender, settings)
    document_contract(app, lambda: recommender.catalog.columns)
    return app


def app_from_settings() -> FastAPI:
    """The API for the catalog named by FASHIONREC_CATALOG (for `uvicorn --factory`, one per worker; run the workers
    with OPENBLAS_NUM_THREADS=1, as `fashionrec serve` runs itself: `fashionrec.threads`).

    Raises:
        CatalogError: FASHIONREC_CATALOG is not set, or is not a catalog.
    """
    settings = load_settings()
    if settings.catalog_dir is None:
        raise CatalogError("set FASHIONREC_CATALOG to the catalog folder this API should serve")
    recommender = Recommender(Catalog.open(settings.catalog_dir), settings=settings)
    recommender.follow()  # each worker process follows the catalog on its own
    return create_app(recommender, settings)
