"""The routes that write products: PUT /products/{id}, DELETE /products/{id} and POST /products:batch.

They are off unless FASHIONREC_API_TOKEN is set, then only for requests that send it as a bearer token (reads stay
open). A write embeds the photo once, stores it through the library's write path, then refreshes this process's
`Recommender` so that the next query already answers with it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, File, Form, Request, Response, Security, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fashionrec.api.errors import error_responses
from fashionrec.api.guard import token_refusal
from fashionrec.api.reads import image_url
from fashionrec.api.schemas import (
    BatchOut,
    RemovedOut,
    WrittenOut,
    multipart_encoding,
    product_id_path,
    product_links,
)
from fashionrec.api.uploads import BATCH_UPLOADS, body_limit, read_upload, upload_name, upload_rule
from fashionrec.config import MAX_METADATA_BYTES, Settings
from fashionrec.errors import FashionrecError, ImageError, shown
from fashionrec.index.metadata import check_flat_metadata, metadata_from_json
from fashionrec.recommend import Recommender

if TYPE_CHECKING:
    from fashionrec.index.write import ProductWrite, WrittenProduct

log = logging.getLogger(__name__)
Store = Callable[[list["ProductWrite"]], Awaitable[list["WrittenProduct"]]]  # embeds, stores, refreshes
_UPLOAD_ERRORS = (400, 401, 403, 413, 415, 422, 503)  # what PUT and the batch can answer besides their 2xx
_DELETE_ERRORS = (401, 403, 404, 422, 503)
BEARER = HTTPBearer(auto_error=False, scheme_name="writeToken",  # refusals are ours (`check_token`): 401 or 403
                    description="the server's write token (FASHIONREC_API_TOKEN); without it set, writes are off: 403")


def add_write_routes(app: FastAPI, recommender: Recommender, settings: Settings) -> None:
    """PUT /products/{id}, DELETE /products/{id} and POST /products:batch: off unless FASHIONREC_API_TOKEN is set,
    then only for requests that send it as a bearer token (reads stay open)."""
    from fashionrec.imaging.decode import PixelLimits
    from fashionrec.index.write import collect_orphans, put_products

    if settings.api_token:  # this server takes writes: what a crashed one left goes first
        try:
            collect_orphans(recommender.catalog.catalog_dir)
        except FashionrecError as exc:
            log.warning("could not collect the catalog's unused photos now: %s", exc)

    limits = PixelLimits.for_uploads(settings)

    def writer(request: Request, _: HTTPAuthorizationCredentials | None = Security(BEARER)) -> None:
        check_token(request, settings.api_token)

    def writes_off(request: Request) -> None:  # no token would help: the schema names none (every write is 403)
        check_token(request, settings.api_token)

    async def store(items: list[ProductWrite]) -> list[WrittenProduct]:
        written = await run_in_threadpool(put_products, recommender.catalog.catalog_dir, items, recommender.embedder,
                                          limits)
        await refresh_after_commit(recommender)  # this process answers the new products at once
        return written

    guard = [Depends(writer if settings.api_token else writes_off)]
    photo_rule = upload_rule(settings, recommender.embedder.spec.preprocessing.allow_draft)
    _add_product_writes(app, recommender, settings, store, guard, photo_rule)
    _add_batch_write(app, settings, store, guard, photo_rule)


def _refusals(settings: Settings, statuses: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    """A write's error answers: `statuses` when writes are on, only 403 (and 500) when they are off."""
    return error_responses(*(statuses if settings.api_token else (403,)))


def _add_product_writes(app: FastAPI, recommender: Recommender, settings: Settings, store: Store,
                        guard: list[Any], photo_rule: str) -> None:
    """PUT and DELETE /products/{id}: one product at a time."""
    from fashionrec.index.write import ProductWrite, remove_products

    written = {"model": WrittenOut, "links": product_links("/id", "getProduct", "getImage", "getSimilar",
                                                           "deleteProduct")}

    @app.put("/products/{product_id}", response_model=WrittenOut, status_code=200,
             responses={200: {**written, "description": "the product replaced"},
                        201: {**written, "description": "the product created"}, **_refusals(settings, _UPLOAD_ERRORS)},
             dependencies=guard, max_body_size=body_limit(settings.max_upload_bytes),
             openapi_extra=multipart_encoding(photo="image", metadata="metadata"))
    async def put_product(request: Request, response: Response, product_id: str = product_id_path(),
                          image: UploadFile = File(description=f"the product's photo: {photo_rule}"),
                          metadata: str | None = Form(None, description="a JSON object of the catalog's metadata "
                                                      "columns (omitted: a replaced product keeps its metadata)")
                          ) -> WrittenOut:
        """Create or replace one product: its photo embedded once, stored in the catalog's image folder."""
        fields = json_object(metadata, "metadata")
        if fields is not None:
            check_flat_metadata(fields, "the form field 'metadata'")
        data = await read_upload(image, settings.max_upload_bytes)
        try:
            written = (await store([ProductWrite(product_id, data, fields)]))[0]
        except ImageError as exc:  # the library names the product; a client also needs the file it sent
            raise type(exc)(f"{upload_name(image)}: {exc}") from None
        response.status_code = 201 if written.created else 200
        return _written_out(request, written)

    @app.delete("/products/{product_id}", response_model=RemovedOut, dependencies=guard,
                responses={200: {"links": product_links("/id", "getProduct", "getImage", "getSimilar")},
                           **_refusals(settings, _DELETE_ERRORS)})
    async def delete_product(product_id: str = product_id_path()) -> RemovedOut:
        """Remove one product (and its image, when the catalog's own folder holds it)."""
        await run_in_threadpool(remove_products, recommender.catalog.catalog_dir, [product_id])
        await refresh_after_commit(recommender)
        return RemovedOut(id=product_id, removed=True)


def _add_batch_write(app: FastAPI, settings: Settings, store: Store, guard: list[Any], photo_rule: str) -> None:
    """POST /products:batch: many products in one write, all or none."""
    from fashionrec.index.write import MAX_BATCH, ProductWrite

    @app.post("/products:batch", response_model=BatchOut, dependencies=guard,
              responses={200: {"links": product_links("/products/0/id", "getProduct", "getImage", "getSimilar",
                                                      "replaceProduct", "deleteProduct")},
                         **_refusals(settings, _UPLOAD_ERRORS)},
              max_body_size=body_limit(settings.max_upload_bytes, BATCH_UPLOADS),
              openapi_extra=multipart_encoding(photo="images", metadata="metadata"))
    async def put_products_batch(request: Request,
                                 images: list[UploadFile] = File(description="photos named <product id>.<ext>, one "
                                                                 f"per product (distinct ids), each {photo_rule}",
                                                                 json_schema_extra={"minItems": 1,
                                                                                    "maxItems": BATCH_UPLOADS}),
                                 metadata: str | None = Form(None, description="a JSON object: product id -> that "
                                                             "product's metadata object")) -> BatchOut:
        """Create or replace many products at once, all or none (a bad photo or id writes nothing)."""
        if len(images) > min(MAX_BATCH, BATCH_UPLOADS):
            raise FashionrecError(f"a batch takes at most {min(MAX_BATCH, BATCH_UPLOADS)} photos, got {len(images)}")
        per_product = batch_metadata(metadata, [PurePath(upload.filename or "").stem for upload in images])
        items = []
        for upload in images:
            product_id = PurePath(upload.filename or "").stem
            meta = per_product.get(product_id)
            items.append(ProductWrite(product_id, await read_upload(upload, settings.max_upload_bytes), meta))
        written = await store(items)
        return BatchOut(products=[_written_out(request, w) for w in written], created=sum(w.created for w in written),
                        replaced=sum(not w.created for w in written))



async def refresh_after_commit(recommender: Recommender) -> None:
    """Serve the catalog's new snapshot at once. The write is committed already, so its 2xx stands whatever this
    refresh meets (another write committing meanwhile, a busy catalog): the follower catches up a moment later."""
    try:
        await run_in_threadpool(recommender.refresh)
    except FashionrecError as exc:
        log.warning("a committed write is served after the next refresh: %s", exc)


def _written_out(request: Request, written: WrittenProduct) -> WrittenOut:
    """A stored product as the API answers it (its image as this server's URL)."""
    return WrittenOut(id=written.id, image=image_url(request, written.id), metadata=written.metadata,
                      created=written.created)


def check_token(request: Request, token: str) -> None:
    """401 without a bearer token, 403 with a wrong one (or when writes are off): the rule of `guard.token_refusal`,
    which `guard.WriteGuard` applies before the body is read; here it documents the statuses on each route."""
    refusal = token_refusal(request.headers.get("authorization", ""), token)
    if refusal is not None:
        raise refusal


def json_object(text: str | None, field: str, max_bytes: int = MAX_METADATA_BYTES) -> dict | None:
    """A form field holding a JSON object (within `max_bytes`, parsed safely), or None when absent.

    Raises:
        FashionrecError (400): too large, not JSON, nested too deep, or not an object; naming the field.
    """
    if text is None or text == "":  # FastAPI reads an empty form field as a missing one: so does this
        return None  # (blank text is sent on purpose and is not a JSON object: 400, as the schema says)
    return metadata_from_json(text, f"the form field {field!r}", max_bytes)


def batch_metadata(text: str | None, product_ids: list[str]) -> dict[str, Any]:
    """The batch's metadata field: product id -> that product's flat metadata object, naming only products whose
    photo the batch carries (a misspelt id would otherwise be dropped without a word).

    Raises:
        FashionrecError (400): the field is not such an object; naming the field, or the product, and the fix.
    """
    per_product = json_object(text, "metadata", MAX_METADATA_BYTES * BATCH_UPLOADS) or {}
    strays = [product_id for product_id in per_product if product_id not in product_ids]
    if strays:
        raise FashionrecError(f"the form field 'metadata' names product {shown(strays[0])}, which has no photo in "
                              "this batch: key each product's metadata by its photo's file name without the "
                              "extension")
    for product_id, metadata in per_product.items():
        check_flat_metadata(metadata, f"the form field 'metadata' for product {shown(product_id)}")
    return per_product
