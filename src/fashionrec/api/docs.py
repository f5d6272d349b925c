"""The API's documentation pages: Swagger UI and ReDoc served with local copies of their scripts, so /docs works
on a machine without internet (what the schema they show says beyond FastAPI's own: `api.openapi`)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

logger = logging.getLogger(__package__)  # "fashionrec.api", as when the API was one module

DOCS_ASSETS = "/docs-assets"  # where the Swagger UI and ReDoc scripts are served from (no CDN)


def docs_assets() -> Path | None:
    """The folder of Swagger UI's and ReDoc's scripts in the installed `fastapi-offline` package (web extra)."""
    spec = importlib.util.find_spec("fastapi_offline")
    folder = Path(spec.origin).parent / "static" if spec is not None and spec.origin else None
    if folder is None or not (folder / "swagger-ui-bundle.js").is_file():
        logger.warning("/docs and /redoc will load their scripts from a CDN (blank without internet): "
                       "pip install 'fashionrec[web]' to serve local copies")
        return None
    return folder


def serve_docs_offline(app: FastAPI, assets: Path) -> None:
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

