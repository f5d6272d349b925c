"""The write routes at their edge (issue 21): the token before the body, pixel bombs and refused formats with the
statuses /recommend gives, metadata within bounds, and ids cut in messages."""

from __future__ import annotations

import asyncio
import io
import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from fashionrec.api.guard import WriteGuard
from fashionrec.config import MAX_METADATA_BYTES, MAX_METADATA_KEYS
from fashionrec.launch import stop, wait_until_up
from tests.api.test_api import bearer, photo_field, writable  # noqa: F401 - `writable` is a fixture
from tests.conftest import free_port
from tests.image_corpus import png_bytes, svg_file

GIGABYTE = 1 << 30
TOKEN = "edge-token"


# --- the token before the body -------------------------------------------------------------------------------------

def folder_bytes(folder: Path) -> int:
    """Bytes of every file under `folder` (a server's TMPDIR, where multipart bodies are spooled)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def send_chunked_until_answered(port: int, method: str, path: str, total: int = GIGABYTE,
                                deadline_s: float = 30.0) -> tuple[bytes, int]:
    """Stream a chunked multipart body of up to `total` bytes (one photo part that never ends), generated lazily,
    and stop sending as soon as the server answers; returns (the answer, the bytes sent)."""
    def framed(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    field = "images" if path.endswith(":batch") else "image"
    part = (f'--edge\r\nContent-Disposition: form-data; name="{field}"; filename="1.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: multipart/form-data; boundary=edge\r\n\r\n").encode() + framed(part)
    frame = framed(b"x" * 65536)
    frames = (frame for _ in range(total // 65536))  # never held in memory
    sent, pending, answer = 0, memoryview(head), b""
    end = time.monotonic() + deadline_s
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setblocking(False)
        while time.monotonic() < end:
            readable, writable_, _ = select.select([sock], [sock] if pending or frames else [], [], 0.5)
            if readable:
                break  # the server answered: stop sending
            if writable_:
                if not pending:
                    pending = memoryview(next(frames, b""))
                try:
                    count = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent, pending = sent + count, pending[count:]
        sock.setblocking(True)
        sock.settimeout(5)
        try:
            while b"}" not in answer.partition(b"\r\n\r\n")[2]:
                piece = sock.recv(65536)
                if not piece:
                    break
                answer += piece
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent


@pytest.fixture(scope="module")
def token_server(shop_catalog: Path, tmp_path_factory) -> tuple[int, Path]:
    """A real `fashionrec serve` with writes on, its TMPDIR a fresh folder of its own."""
    spool = tmp_path_factory.mktemp("server-tmp")
    port = free_port()
    env = dict(os.environ, FASHIONREC_API_TOKEN=TOKEN, TMPDIR=str(spool))
    server = subprocess.Popen([sys.executable, "-m", "fashionrec.cli", "serve", "--catalog", str(shop_catalog),
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server, timeout=60, health_path="/health")
        yield port, spool
    finally:
        stop(server)


@pytest.mark.parametrize("method, path", [("POST", "/products:batch"), ("PUT", "/products/p1")])
def test_an_anonymous_gigabyte_write_is_refused_before_its_body_is_read(token_server, method: str,
                                                                        path: str) -> None:
    port, spool = token_server
    before = folder_bytes(spool)
    started = time.monotonic()
    answer, sent = send_chunked_until_answered(port, method, path)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), answer[:300]
    assert b"www-authenticate: bearer" in head.lower()
    assert "Authorization: Bearer TOKEN" in json.loads(body)["detail"]
    assert folder_bytes(spool) - before < 10_000_000
    assert sent < 100_000_000 and time.monotonic() - started < 20  # answered at once, not after a gigabyte


def test_the_guard_answers_from_the_headers_alone() -> None:
    """401, 403 (wrong token; writes off) without ever asking for the body; reads and good tokens pass through."""
    passed: list[str] = []

    async def app(scope, receive, send) -> None:
        passed.append(scope["path"])

    async def receive() -> dict:
        raise AssertionError("the body was read")

    def call(guard: WriteGuard, method: str, path: str, authorization: str | None = None) -> int:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        headers = [] if authorization is None else [(b"authorization", authorization.encode())]
        scope = {"type": "http", "method": method, "path": path, "headers": headers, "query_string": b""}
        asyncio.run(guard(scope, receive, send))
        return sent[0]["status"] if sent else 0

    guard, off = WriteGuard(app, TOKEN), WriteGuard(app, "")
    assert call(guard, "POST", "/products:batch") == 401
    assert call(guard, "PUT", "/products/7", "Bearer wrong") == 403
    assert call(guard, "DELETE", "/products/7", "Basic abc") == 401
    assert call(off, "PUT", "/products/7", f"Bearer {TOKEN}") == 403
    assert call(guard, "PUT", "/products/7", f"Bearer {TOKEN}") == 0  # passed on
    assert call(guard, "POST", "/recommend") == 0 and call(guard, "GET", "/products/7") == 0
    assert passed == ["/products/7", "/recommend", "/products/7"]


# --- pixel bombs and refused formats ---------------------------------------------------------------------------------

def bomb_png(side: int = 20_000) -> bytes:
    """A valid side x side one-bit PNG of one colour: 400 M pixels in about 60 kB."""
    return png_bytes(side, side, 1, 0, [b"\x00" * ((side + 7) // 8)] * side)


BOMB = bomb_png()


def tiff_file() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "TIFF")
    return buffer.getvalue()


def test_a_pixel_bomb_is_413_on_put_and_batch(writable) -> None:  # noqa: F811 - the fixture
    api, _ = writable
    assert len(BOMB) < 200_000
    put = api.put("/products/bomb", files={"image": ("bomb.png", BOMB, "image/png")}, headers=bearer())
    assert put.status_code == 413, put.text
    assert "too large" in put.json()["detail"] and "bomb.png" in put.json()["detail"]
    files = [("images", photo_field(800)["image"]), ("images", ("bomb.png", BOMB, "image/png"))]
    batch = api.post("/products:batch", files=files, headers=bearer())
    assert batch.status_code == 413, batch.text
    assert "product 'bomb'" in batch.json()["detail"]
    assert api.get("/products/800").status_code == 404  # all or none


@pytest.mark.parametrize("name, data, status, words", [
    ("logo.svg", svg_file(), 415, "SVG drawing"),
    ("scan.tif", tiff_file(), 415, "TIFF file"),
    ("notes.txt", b"size chart: S M L XL\n", 422, "not an image"),
])
def test_a_refused_or_unreadable_file_gets_the_status_recommend_gives(writable, name: str, data: bytes,  # noqa: F811
                                                                      status: int, words: str) -> None:
    api, _ = writable
    answer = api.put("/products/p1", files={"image": (name, data, "application/octet-stream")}, headers=bearer())
    detail = answer.json()["detail"]
    assert answer.status_code == status, answer.text
    assert words in detail and name in detail and "JPEG, PNG" in detail
    assert "<_io." not in detail and " object at 0x" not in detail
    assert api.post("/recommend", files={"file": (name, data, "application/octet-stream")}).status_code == status


# --- metadata within bounds -----------------------------------------------------------------------------------------

DEEP = '{"gender": ' + '{"a":' * 10_000 + '"x"' + "}" * 10_000 + "}"
DEEP_LIST = '{"gender": ' + "[" * 10_000 + "]" * 10_000 + "}"


@pytest.mark.parametrize("metadata, words", [
    (DEEP, "nested too deep"),
    (DEEP_LIST, "nested too deep"),
    ('{"gender": 1' + "0" * 5_000 + "}", "number too long"),
    (json.dumps({"gender": "x" * (MAX_METADATA_BYTES + 1)}), "too large"),
    (json.dumps({f"c{i}": "x" for i in range(MAX_METADATA_KEYS + 1)}), "keys, over the limit"),
    ('{"gender": {"a": "b"}}', "text or null"),
    ('{"gender": ["Men"]}', "text or null"),
    ('{"gender": 3}', "text or null"),
    ('{"gender": "\\ud800"}', "not valid Unicode"),
    ('{"\\udfff": "Men"}', "not valid Unicode"),
    ("null", "must hold a JSON object"),
    ("   ", "'metadata'"),  # blank text is no JSON object (an empty field, which FastAPI drops, is left out)
])
def test_metadata_over_the_bounds_is_400_naming_the_field(writable, metadata: str, words: str) -> None:  # noqa: F811
    api, _ = writable
    answer = api.put("/products/n9", files=photo_field(9), data={"metadata": metadata}, headers=bearer())
    assert answer.status_code == 400, answer.text[:300]
    detail = answer.json()["detail"]
    assert "'metadata'" in detail and words in detail and len(detail) < 400, detail


@pytest.mark.parametrize("metadata, words", [
    (json.dumps({"900": {"gender": {"a": "b"}}}), "for product '900' must hold text or null"),
    (json.dumps({"900": ["Men"]}), "for product '900' must be a JSON object"),
    (json.dumps({"90O": {"gender": "Men"}}), "names product '90O', which has no photo"),
    ('{"900": ' + '{"a": ' * 10_000 + "1" + "}" * 10_001, "nested too deep"),
])
def test_batch_metadata_is_checked_per_product(writable, metadata: str, words: str) -> None:  # noqa: F811
    api, _ = writable
    files = [("images", photo_field(900)["image"])]
    answer = api.post("/products:batch", files=files, data={"metadata": metadata}, headers=bearer())
    assert answer.status_code == 400 and words in answer.json()["detail"], answer.text[:300]
    assert api.get("/products/900").status_code == 404


# --- ids cut in messages --------------------------------------------------------------------------------------------

LONG_ID = "x" * 10_000


@pytest.mark.parametrize("method, path, status", [
    ("PUT", f"/products/{LONG_ID}", 422), ("DELETE", f"/products/{LONG_ID}", 422),
    ("GET", f"/products/{LONG_ID}", 404), ("GET", f"/products/{LONG_ID}/similar", 404),
    ("GET", f"/products/{LONG_ID}/image", 404), ("GET", f"/{LONG_ID}", 404), ("PATCH", f"/{LONG_ID}", 404),
    ("GET", f"/recommend?k={LONG_ID}", 405), ("GET", f"/products/1/similar?k={LONG_ID}", 422),
    ("GET", f"/products/1/similar?{LONG_ID}=1", 400),
])
def test_a_10kb_id_is_cut_in_every_message(writable, method: str, path: str, status: int) -> None:  # noqa: F811
    api, _ = writable
    files = photo_field(1) if method == "PUT" else None
    answer = api.request(method, path, files=files, headers=bearer())
    assert answer.status_code == status, answer.text[:300]
    detail = answer.json()["detail"]
    assert "x" * 65 not in detail and len(detail) < 1000, detail[:300]
    if status != 405:  # the wrong method is named, not the query
        assert "x" * 63 + "…" in detail


def test_a_long_file_name_is_cut(writable) -> None:  # noqa: F811
    api, _ = writable
    name = f"{LONG_ID[:2000]}.txt"  # (a 10 kB multipart header is refused as such by the parser: 400)
    for answer in (api.post("/recommend", files={"file": (name, b"not a photo", "text/plain")}),
                   api.put("/products/p1", files={"image": (name, b"not a photo", "text/plain")}, headers=bearer())):
        assert answer.status_code == 422 and "x" * 64 + "…" in answer.json()["detail"], answer.text[:300]
        assert "x" * 65 not in answer.json()["detail"]
