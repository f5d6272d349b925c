"""Writes that race: 4 writers x 20 rounds of PUT (JPEG, PNG, with or without metadata) and DELETE on the same ids,
against a real `fashionrec serve`. After every round the catalog must be what some order of that round's
acknowledged writes gives (each write's status agreeing with its place in that order); at the end every product's
stored hash and vector are those of the file it points at, no file is left without a row, and nothing answered 5xx.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import itertools
import json
import random
import threading
import uuid
from pathlib import Path

import pytest

from fashionrec.catalog import Catalog
from fashionrec.launch import stop
from tests.api.test_live_serving import TOKEN, start_server
from tests.conftest import copy_catalog, draw_product, free_port

IDS = ("r1", "r2", "r3")
WRITERS, ROUNDS = 4, 20


def _call(port: int, method: str, path: str, fields: dict | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = None
    if fields:
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in fields.items():
            if isinstance(value, tuple):  # a file: (filename, bytes)
                parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{value[0]}\""
                             f"\r\nContent-Type: application/octet-stream\r\n\r\n".encode() + value[1] + b"\r\n")
            else:
                parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                             .encode())
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _photo(seed: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    draw_product(seed).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _operation(rng: random.Random, writer: int, round_: int) -> dict:
    """One writer's write of one round: which id, and what (JPEG or PNG, with or without metadata, or DELETE)."""
    kind = rng.choice(["jpeg+meta", "png", "jpeg", "png+meta", "delete"])
    op = {"id": rng.choice(IDS), "kind": kind}
    if kind != "delete":
        seed = 1000 + 100 * round_ + writer
        op["image"] = _photo(seed, "JPEG" if kind.startswith("jpeg") else "PNG")
        op["meta"] = {"gender": f"w{writer}r{round_}"} if kind.endswith("+meta") else None
    return op


def _send(port: int, op: dict) -> int:
    if op["kind"] == "delete":
        status, _ = _call(port, "DELETE", f"/products/{op['id']}")
    else:
        fields = {"image": ("p.img", op["image"])}
        if op["meta"] is not None:
            fields["metadata"] = json.dumps(op["meta"])
        status, _ = _call(port, "PUT", f"/products/{op['id']}", fields)
    return status


def _apply(state: dict, op: dict) -> tuple[dict, int]:
    """The state one write leaves and the status it must answer there: {id: (image sha256, metadata)}."""
    state = dict(state)
    before = state.get(op["id"])
    if op["kind"] == "delete":
        if before is None:
            return state, 404
        del state[op["id"]]
        return state, 200
    meta = op["meta"] if op["meta"] is not None else (before[1] if before is not None else {})
    state[op["id"]] = (hashlib.sha256(op["image"]).hexdigest(), meta)
    return state, 201 if before is None else 200


def _possible_states(state: dict, ops: list[dict], statuses: list[int]) -> list[dict]:
    """Every state some order of the round's writes leaves in which each write answers the status it did."""
    found = []
    for order in itertools.permutations(range(len(ops))):
        now, agrees = state, True
        for index in order:
            now, status = _apply(now, ops[index])
            agrees = agrees and status == statuses[index]
        if agrees:
            found.append(now)
    return found


def _observed(port: int) -> dict:
    state = {}
    for product_id in IDS:
        status, body = _call(port, "GET", f"/products/{product_id}")
        if status == 404:
            continue
        assert status == 200, body
        status, image = _call(port, "GET", f"/products/{product_id}/image")
        assert status == 200, f"{product_id} is served without its image"
        state[product_id] = (hashlib.sha256(image).hexdigest(), json.loads(body)["metadata"])
    return state


@pytest.fixture
def race_catalog(shop_catalog: Path, tmp_path: Path) -> Path:
    copy_catalog(shop_catalog, tmp_path / "c")
    return tmp_path / "c"


def test_racing_writers_leave_a_state_some_order_of_their_acknowledged_writes_gives(race_catalog: Path,
                                                                                     lite0) -> None:
    port = free_port()
    server = start_server(race_catalog, port)
    rng = random.Random(21)
    try:
        state = _observed(port)
        for round_ in range(ROUNDS):
            ops = [_operation(rng, writer, round_) for writer in range(WRITERS)]
            statuses = [0] * WRITERS
            barrier = threading.Barrier(WRITERS)

            def write(index: int) -> None:
                barrier.wait()
                statuses[index] = _send(port, ops[index])

            threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert all(status < 500 for status in statuses), statuses
            observed = _observed(port)
            assert observed in _possible_states(state, ops, statuses), (round_, statuses, observed)
            state = observed
    finally:
        stop(server)
    catalog = Catalog.open(race_catalog)
    for product_id in (i for i in IDS if i in catalog):  # the stored hash and vector are the file's
        path = catalog.image_path(product_id)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == catalog.content_hashes[catalog.position(product_id)]
        stored = catalog.model_vectors[catalog.position(product_id)]
        assert float(stored @ lite0.embed_image(path)) >= 0.9999
    used = {catalog.image_path_at(row).resolve() for row in range(len(catalog))}
    own = {path.resolve() for path in (race_catalog / "images").rglob("*") if path.is_file()}
    assert own <= used, f"files without a row: {sorted(own - used)}"
