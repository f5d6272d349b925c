"""The write token, checked before a write's body is read.

FastAPI reads (and spools to disk) a multipart body to fill a route's form fields before the route's dependencies
run, so a token check in a dependency alone would let anyone make the server read a gigabyte before its 401. The
`WriteGuard` middleware answers a write without the server's token from its headers alone; the routes' own check
(`api/writes.check_token`) is the same rule, through `token_refusal`, and documents the statuses in the OpenAPI page.
"""

from __future__ import annotations

import hmac
import re

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

_PRODUCT_PATH = re.compile(r"/products/[^/]+$")  # at the end of the path: the API may be mounted below a prefix
_BATCH_PATH = "/products:batch"


def token_refusal(authorization: str, token: str) -> HTTPException | None:
    """Why a write with this Authorization header is refused (401 without a bearer token, 403 with a wrong one or
    when writes are off), or None when it carries the server's token (compared in constant time)."""
    if not token:
        return HTTPException(403, "product writes are turned off on this server: its operator turns them on by "
                                  "setting FASHIONREC_API_TOKEN")
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return HTTPException(401, "this write needs the server's token: send the header 'Authorization: Bearer "
                                  "TOKEN'", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return HTTPException(403, "the bearer token sent is not this server's write token")
    return None


def is_write(method: str, path: str) -> bool:
    """Whether a request is one of the write routes: PUT or DELETE /products/{id}, POST /products:batch."""
    if method in ("PUT", "DELETE"):
        return _PRODUCT_PATH.search(path) is not None
    return method == "POST" and path.endswith(_BATCH_PATH)


class WriteGuard:
    """ASGI middleware: a write without the server's token is answered 401/403 before any of its body is read (the
    server then closes the connection rather than read the rest)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse from the headers, or pass the request on untouched."""
        if scope["type"] == "http" and is_write(scope["method"], scope["path"]):
            headers = dict(scope["headers"])
            authorization = headers.get(b"authorization", b"").decode("latin-1")
            refusal = token_refusal(authorization, self.token)
            if refusal is not None:
                response = JSONResponse({"detail": refusal.detail}, status_code=refusal.status_code,
                                        headers=refusal.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
