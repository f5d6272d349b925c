"""The REST API: a thin FastAPI face over one `Recommender`.

Every answer is JSON (but the image bytes); every error is `{"detail": "..."}` (see `ErrorOut`), one readable
sentence naming the file, field or route at fault and what to do, with a status a client can act on: 400 bad
filter, 404 unknown product or route, 405 wrong method, 413 upload too large (bytes, or pixels for its format),
415 not an accepted image format, 422 malformed request or unusable image (empty, damaged, truncated), 500 a bug,
503 the catalog's search cannot answer. The model and catalog load once, when the app is built; inference runs in
worker threads (one ONNX Runtime session, which is thread-safe), never on the event loop; images decode in the
process's few decode slots (`imaging.decode.DECODE_SLOTS`), so a burst of large uploads waits instead of
exhausting memory.

Run it with `fashionrec serve --catalog DIR`, or in any ASGI server with
`uvicorn --factory fashionrec.api:app_from_settings` and `FASHIONREC_CATALOG=DIR`.

`app` (`create_app`, `app_from_settings`: the wiring), `reads` (health, filters, products, images, queries),
`writes` (the token-guarded product writes), `uploads` (an upload read within its limits), `errors` (every error
as one sentence, and the statuses documented), `docs` (offline Swagger UI and ReDoc), `schemas` (the JSON answers,
the product id, the uploads' encoding, links), `openapi` (what the schema says that FastAPI cannot see: filters,
metadata objects, no empty upload).
"""

from fashionrec.api.app import app_from_settings, create_app

__all__ = ["app_from_settings", "create_app"]
