"""Reading an upload within the server's limits: a body that declares too many bytes is refused before it is read,
and one that does not declare its length is cut off while it is read, so no request holds more than the limit in
memory (the pixel limits are checked later, when the image is decoded)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, HTTPException, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from fashionrec.config import Settings
from fashionrec.errors import ImageError, shown
from fashionrec.imaging.formats import accepted_text

MULTIPART_SLACK_BYTES = 64 * 1024
"""Room for the multipart envelope around an upload of the maximum size."""
BATCH_UPLOADS = 100  # photos one POST /products:batch may carry (each within the upload limit)
PHOTO_FORMATS = f"send a photo as {accepted_text()}"


def body_limit(max_upload_bytes: int, photos: int = 1) -> int:
    """The most bytes a request carrying `photos` uploads may have, multipart envelope included."""
    return photos * (max_upload_bytes + MULTIPART_SLACK_BYTES)


def refuse_large_bodies(app: FastAPI, max_upload_bytes: int) -> None:
    """Answer 413 at once to a request whose declared length is over the limit, before its body is read."""
    message = too_large(max_upload_bytes)

    @app.middleware("http")
    async def refuse_declared_large_bodies(request: Request,
                                           call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """413 at once for a declared oversize body (bodies without a length are counted by the route)."""
        declared = request.headers.get("content-length", "")
        batch = request.url.path.endswith("/products:batch")  # many photos, each within the limit
        limit = body_limit(max_upload_bytes, BATCH_UPLOADS if batch else 1)
        if declared.isdigit() and int(declared) > limit:
            return JSONResponse({"detail": message}, status_code=413)
        return await call_next(request)


def upload_rule(settings: Settings, jpeg_draft: bool) -> str:
    """What an upload may be, as the documentation of a photo field says it (`jpeg_draft`: the model's recipe lets
    a JPEG decode at reduced scale, so it may have more pixels)."""
    jpeg_rule = f" ({settings.max_upload_jpeg_pixels:,} for a JPEG)" if jpeg_draft else ""
    return (f"a photo as {accepted_text()}; at most {megabytes(settings.max_upload_bytes)} and "
            f"{settings.max_upload_pixels:,} pixels{jpeg_rule}")


async def read_upload(file: UploadFile, max_bytes: int) -> bytes:
    """The uploaded file's bytes, refusing more than `max_bytes` (413) and an empty file (422)."""
    data = await file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, too_large(max_bytes))
    if not data:
        raise ImageError(f"{upload_name(file)} is empty (0 bytes): upload the photo again ({PHOTO_FORMATS})")
    return data


def upload_name(file: UploadFile) -> str:
    """How messages name an uploaded file."""
    return f"the uploaded file {shown(file.filename)}" if file.filename else "the uploaded file"


def too_large(max_bytes: int) -> str:
    """The 413 message, wherever the size is found out."""
    return (f"the upload is larger than the limit of {megabytes(max_bytes)}: send a smaller photo (the server sets "
            "the limit with FASHIONREC_MAX_UPLOAD_MB)")


def megabytes(count: int) -> str:
    """A byte count as people read a limit (decimal megabytes)."""
    return f"{count / 1_000_000:g} MB"
