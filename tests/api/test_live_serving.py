"""A live catalog, end to end: a real `fashionrec serve` under steady query load while products come and go over
the API and through `fashionrec index`, and a server killed with SIGKILL in the middle of writes."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from fashionrec.catalog.catalog import Catalog
from fashionrec.launch import stop, wait_until_up
from tests.conftest import copy_catalog, draw_product, free_port, write_products

TOKEN = "live-token"
BOUND_S = 5.0  # a product written must answer within this long


def start_server(catalog_dir: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, FASHIONREC_API_TOKEN=TOKEN, FASHIONREC_FOLLOW_SECONDS="0.5")
    server = subprocess.Popen([sys.executable, "-m", "fashionrec.cli", "serve", "--catalog", str(catalog_dir),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wait_until_up(f"http://127.0.0.1:{port}", server, timeout=120, health_path="/health")
    return server


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def put_body(seed: int) -> tuple[bytes, dict]:
    buffer = io.BytesIO()
    draw_product(seed).save(buffer, "PNG")
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + buffer.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def live_catalog(shop_catalog: Path, tmp_path: Path) -> Path:
    copy_catalog(shop_catalog, tmp_path / "c")
    return tmp_path / "c"


def test_a_server_under_load_follows_writes_over_the_api_and_index_runs(live_catalog: Path, tmp_path: Path,
                                                                         lite0) -> None:
    port = free_port()
    server = start_server(live_catalog, port)
    failures: list[str] = []
    answered = {"count": 0}
    stop_load = threading.Event()
    removed: dict[str, float] = {}  # id -> when its removal was acknowledged

    def query_load() -> None:
        while not stop_load.is_set():
            sent = time.monotonic()  # a query sent before a removal was acknowledged may still see the product
            status, body = request(port, "GET", "/products/2/similar?k=10")
            if status != 200:
                failures.append(f"similar answered {status}: {body}")
                continue
            answered["count"] += 1
            for match in body["results"]:
                if match["id"] in removed and sent > removed[match["id"]]:
                    failures.append(f"removed product {match['id']} answered after its removal")

    loaders = [threading.Thread(target=query_load) for _ in range(4)]
    for loader in loaders:
        loader.start()
    try:
        waits = []
        for seed in range(10):  # added over the API: answerable at once (this single process refreshed)
            body, headers = put_body(900 + seed)
            status, _ = request(port, "PUT", f"/products/new-{seed}", body, headers)
            assert status == 201
            acknowledged = time.monotonic()
            while request(port, "GET", f"/products/new-{seed}/similar?k=3")[0] != 200:
                assert time.monotonic() - acknowledged < BOUND_S, f"new-{seed} did not answer within {BOUND_S} s"
                time.sleep(0.05)
            waits.append(time.monotonic() - acknowledged)
        for product_id in ("5", "6", "7"):
            status, _ = request(port, "DELETE", f"/products/{product_id}", headers={"Authorization": f"Bearer {TOKEN}"})
            assert status == 200
            removed[product_id] = time.monotonic()
            assert request(port, "GET", f"/products/{product_id}")[0] == 404

        write_products(tmp_path / "more", range(300, 306))  # indexed by another process: the server follows
        done = subprocess.run([sys.executable, "-m", "fashionrec.cli", "index", str(tmp_path / "more"), "--catalog",
                               str(live_catalog), "--no-progress"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        committed = time.monotonic()
        while request(port, "GET", "/products/305/similar?k=3")[0] != 200:
            assert time.monotonic() - committed < BOUND_S, f"an indexed product did not answer within {BOUND_S} s"
            time.sleep(0.05)
        waits.append(time.monotonic() - committed)
        status, health = request(port, "GET", "/health")
        assert health["products"] == 40 + 10 - 3 + 6
    finally:
        stop_load.set()
        for loader in loaders:
            loader.join()
        stop(server)
    assert failures == [] and answered["count"] > 20
    print(f"queries answered during the writes: {answered['count']}; slowest write-to-answer: {max(waits):.2f} s")


def test_every_acknowledged_write_survives_a_kill_9_of_the_server(live_catalog: Path) -> None:
    port = free_port()
    server = start_server(live_catalog, port)
    acknowledged: list[str] = []
    stop_writes = threading.Event()

    def writer() -> None:
        seed = 0
        while not stop_writes.is_set():
            body, headers = put_body(2000 + seed)
            try:
                status, _ = request(port, "PUT", f"/products/k{seed}", body, headers)
            except (OSError, http.client.HTTPException):
                return  # the server is gone
            if status == 201:
                acknowledged.append(f"k{seed}")
            seed += 1

    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.07)  # somewhere inside the next write
    server.send_signal(signal.SIGKILL)
    server.wait()
    stop_writes.set()
    thread.join()
    catalog = Catalog.open(live_catalog)  # opens cleanly
    assert len(acknowledged) >= 8 and all(product_id in catalog for product_id in acknowledged)
    assert len(catalog) in (40 + len(acknowledged), 40 + len(acknowledged) + 1)  # at most the write in flight more
    again = free_port()  # the killed server's port may linger in TIME_WAIT
    restarted = start_server(live_catalog, again)
    try:
        assert request(again, "GET", f"/products/{acknowledged[-1]}/similar?k=3")[0] == 200
    finally:
        stop(restarted)
