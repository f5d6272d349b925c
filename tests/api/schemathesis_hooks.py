"""Schemathesis hooks for fashionrec's REST API: the two things a schema cannot say, supplied as a client would.

Load them with `SCHEMATHESIS_HOOKS=tests/api/schemathesis_hooks.py schemathesis --config-file
tests/api/schemathesis.toml run URL/openapi.json ...` (`tests/api/schemathesis_run.py` does).

1. An upload must be a photo the server can decode. The schema says what it can: a file of at least one byte, sent as
   image/jpeg, image/png, image/webp or image/gif; a generated file is otherwise random bytes, which the server rightly
   refuses (415, 422). `schemathesis.openapi.media_type` gives each of those media types real photos, drawn here.
2. A batch names each photo `<product id>.<ext>`, ids distinct, and keys its metadata by those ids: a rule across the
   parts of one multipart body, which neither JSON Schema nor OpenAPI's `encoding` can state. For a schema-valid
   (positive) batch, `before_call` sends the generated photos under distinct ids (the metadata's own generated keys
   first) and keeps the metadata of those ids (schemathesis draws one photo where an array of photos is encoded: it
   goes out as a batch of one). Negative cases go out as generated.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import schemathesis
from hypothesis import strategies as st
from PIL import Image, ImageDraw

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
MEDIA_TYPES = {image_format: media_type for media_type, image_format in FORMATS.items()}


@st.composite
def photos(draw: st.DrawFn, image_format: str) -> bytes:
    """A product photo: a coloured ellipse, box or triangle on a plain background, 16 to 160 pixels a side."""
    width, height = draw(st.integers(16, 160)), draw(st.integers(16, 160))
    colour = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
    image = Image.new("RGB", (width, height), draw(colour))
    box = (draw(st.integers(0, width // 3)), draw(st.integers(0, height // 3)),
           draw(st.integers(2 * width // 3, width - 1)), draw(st.integers(2 * height // 3, height - 1)))
    shape, fill = draw(st.sampled_from(["ellipse", "rectangle", "triangle"])), draw(colour)
    pen = ImageDraw.Draw(image)
    if shape == "triangle":
        pen.polygon([(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])], fill=fill)
    else:
        getattr(pen, shape)(box, fill=fill)
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


for _media_type, _format in FORMATS.items():
    schemathesis.openapi.media_type(_media_type, photos(_format))


def _format_of(data: bytes) -> str | None:
    """The format of a photo drawn above (None for anything else: then the case is left as generated)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format if image.format in EXTENSIONS else None
    except Exception:  # noqa: BLE001 - not a photo of ours: nothing to name
        return None


def _is_positive_batch(case: Any) -> bool:
    """A POST /products:batch whose body was generated schema-valid, with photos drawn above."""
    if case.operation.method.upper() != "POST" or case.operation.path != "/products:batch":
        return False
    meta = case.meta
    body = case.body
    if meta is None or not isinstance(body, dict) or any(component.mode.is_negative
                                                          for component in meta.components.values()):
        return False
    images = body.get("images")
    return isinstance(images, bytes) or (isinstance(images, list) and len(images) > 0
                                         and all(isinstance(item, bytes) for item in images))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Send a positive batch's photos under distinct ids, its metadata keyed by them (see the module's docstring)."""
    if not _is_positive_batch(case):
        return
    images: list[bytes] = case.body["images"]
    if isinstance(images, bytes):  # a media type's strategy draws one photo for the array (schemathesis 4.32)
        images = [images]
    formats = [_format_of(data) for data in images]
    if None in formats:
        return
    metadata = case.body.get("metadata")
    keys = list(metadata) if isinstance(metadata, dict) else []
    ids: list[str] = []
    for index, data in enumerate(images):
        given = keys[index] if index < len(keys) else None
        fresh = f"b{hashlib.sha256(data).hexdigest()[:12]}-{index}"
        ids.append(given if given is not None and given not in ids else fresh)
    files: list[tuple[str, tuple[str | None, bytes | str, str]]] = [
        ("images", (f"{product_id}.{EXTENSIONS[image_format]}", data, MEDIA_TYPES[image_format]))
        for product_id, data, image_format in zip(ids, images, formats)]
    if isinstance(metadata, dict):
        kept = {product_id: metadata[product_id] for product_id in ids if product_id in metadata}
        files.append(("metadata", (None, json.dumps(kept), "application/json")))
    kwargs["files"] = files
