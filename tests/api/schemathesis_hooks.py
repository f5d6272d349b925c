"""Schemathesis hooks for fashionrec's REST API: what a schema cannot say, supplied as a client would.

Load them with `SCHEMATHESIS_HOOKS=tests/api/schemathesis_hooks.py schemathesis --config-file
tests/api/schemathesis.toml run URL/openapi.json ...` (`tests/api/schemathesis_run.py` does).

1. An upload must be a photo the server can decode. The schema says what it can: a file of at least one byte, sent as
   image/jpeg, image/png, image/webp or image/gif; a generated file is otherwise random bytes, which the server rightly
   refuses (415, 422). `schemathesis.openapi.media_type` gives each of those media types real photos, drawn here. A
   schema-valid (positive) case whose photo field holds something else, i.e. a value schemathesis took from an answer
   because its field has the same name (a product's `image` URL, from GET /products/{id}), sends a photo instead.
2. A batch names each photo `<product id>.<ext>`, ids distinct, and keys its metadata by those ids: a rule across the
   parts of one multipart body, which neither JSON Schema nor OpenAPI's `encoding` can state. For a positive batch,
   `before_call` sends the generated photos under distinct ids (the metadata's own generated keys first) and keeps
   the metadata of those ids (schemathesis draws one photo where an array of photos is encoded: it goes out as a
   batch of one). Never an id this run removed: schemathesis tells a removed product re-created only by a write to
   its own path (PUT /products/{id}), not by POST /products:batch, and would take the new product's answers for a
   removed one's (ST301).
3. Negative cases go out as generated, but for one thing: a `metadata` field generated as an empty array or blank
   text (the schema wants an object) is sent as its JSON text (`[]`, `""`), as the field's encoding
   (application/json) says. Schemathesis 4.32 sends an empty array as no part at all and text as it is, and an empty
   field is, to FastAPI and so to this server (its schema says so), a field left out: the request would be valid.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import random
from typing import Any

import schemathesis
from hypothesis import strategies as st
from PIL import Image, ImageDraw

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
MEDIA_TYPES = {image_format: media_type for media_type, image_format in FORMATS.items()}
REMOVED: set[str] = set()  # ids this run's DELETEs removed (after_call)
FRESH_IDS = itertools.count()
PHOTO_FIELDS = {("POST", "/recommend"): "file", ("PUT", "/products/{product_id}"): "image"}
BATCH = ("POST", "/products:batch")
METADATA_FORMS = {("PUT", "/products/{product_id}"), BATCH}


def photo(seed: int, image_format: str) -> bytes:
    """A product photo: a coloured ellipse, box or triangle on a plain background, 16 to 160 pixels a side."""
    rng = random.Random(seed)
    width, height = rng.randint(16, 160), rng.randint(16, 160)
    image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    box = (rng.randint(0, width // 3), rng.randint(0, height // 3),
           rng.randint(2 * width // 3, width - 1), rng.randint(2 * height // 3, height - 1))
    shape, fill = rng.choice(["ellipse", "rectangle", "triangle"]), tuple(rng.randrange(256) for _ in range(3))
    pen = ImageDraw.Draw(image)
    if shape == "triangle":
        pen.polygon([(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])], fill=fill)
    else:
        getattr(pen, shape)(box, fill=fill)
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


for _media_type, _format in FORMATS.items():
    schemathesis.openapi.media_type(_media_type, st.integers(0, 2**32 - 1).map(lambda seed, f=_format: photo(seed, f)))


def _format_of(data: object) -> str | None:
    """The format of a photo drawn above (None for anything else)."""
    if not isinstance(data, bytes):
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format if image.format in EXTENSIONS else None
    except Exception:  # noqa: BLE001 - not a photo: the caller decides
        return None


def _is_positive(case: Any) -> bool:
    """Whether every part of the case was generated schema-valid."""
    meta = case.meta
    return meta is not None and not any(component.mode.is_negative for component in meta.components.values())


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Photos where a positive case has none, a positive batch's photos under distinct ids, an empty metadata array
    or blank text as JSON (see the module's docstring). A positive case is changed only on the wire (`files`): an
    edited body holding a file is taken for a schema-violating one (schemathesis cannot validate bytes)."""
    route = (case.operation.method.upper(), case.operation.path)
    if not isinstance(case.body, dict):
        return
    if not _is_positive(case):
        metadata = case.body.get("metadata")
        if route in METADATA_FORMS and (metadata == [] or (isinstance(metadata, str) and not metadata.strip())):
            case.body["metadata"] = json.dumps(metadata)
        return
    if route == BATCH:
        _name_batch_photos(case, kwargs)
        return
    field = PHOTO_FIELDS.get(route)
    if field in case.body and _format_of(case.body[field]) is None:
        seed = int.from_bytes(hashlib.sha256(str(case.body[field]).encode()).digest()[:4], "big")
        kwargs["files"] = _parts({**case.body, field: photo(seed, "PNG")})


def _parts(body: dict[str, Any]) -> list[tuple[str, tuple[str | None, bytes | str, str]]]:
    """A form as multipart parts the way schemathesis sends it: photos as files, objects as JSON, text as text."""
    parts: list[tuple[str, tuple[str | None, bytes | str, str]]] = []
    for name, value in body.items():
        image_format = _format_of(value)
        if image_format is not None:
            parts.append((name, (f"{name}.{EXTENSIONS[image_format]}", value, MEDIA_TYPES[image_format])))
        elif isinstance(value, str):
            parts.append((name, (None, value, "text/plain")))
        else:
            parts.append((name, (None, json.dumps(value), "application/json")))
    return parts


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    """Remember the ids this run removed (a batch does not write them again)."""
    if case.operation.method.upper() == "DELETE" and 200 <= response.status_code < 300:
        REMOVED.add(str((case.path_parameters or {}).get("product_id")))


def _name_batch_photos(case: Any, kwargs: dict[str, Any]) -> None:
    """Send a positive batch as multipart parts of our own: photos named by distinct ids, metadata keyed by them."""
    images = case.body.get("images")
    images = [images] if isinstance(images, bytes) else images  # one photo drawn for the array (schemathesis 4.32)
    if not isinstance(images, list) or not images:
        return
    formats = [_format_of(data) for data in images]
    if None in formats:
        return
    metadata = case.body.get("metadata")
    keys = list(metadata) if isinstance(metadata, dict) else []
    ids: list[str] = []
    for index, data in enumerate(images):
        given = keys[index] if index < len(keys) else None
        fresh = f"b{next(FRESH_IDS)}-{hashlib.sha256(data).hexdigest()[:8]}"
        ids.append(given if given is not None and given not in ids and given not in REMOVED else fresh)
    files: list[tuple[str, tuple[str | None, bytes | str, str]]] = [
        ("images", (f"{product_id}.{EXTENSIONS[image_format]}", data, MEDIA_TYPES[image_format]))
        for product_id, data, image_format in zip(ids, images, formats, strict=True)]
    if isinstance(metadata, dict):
        kept = {product_id: metadata[product_id] for product_id in ids if product_id in metadata}
        files.append(("metadata", (None, json.dumps(kept), "application/json")))
    kwargs["files"] = files + _parts({name: value for name, value in case.body.items()
                                      if name not in ("images", "metadata")})  # fields the schema does not name
