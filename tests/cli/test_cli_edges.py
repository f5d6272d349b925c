"""cli/ at its edges (issue 21): `add` with a pixel bomb, odd metadata or a 10 kB id gives one line and exit 2;
`serve` starts again on its port right after it stopped; SIGTERM to `app` stops its web server too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fashionrec.errors import FashionrecError
from fashionrec.launch import stop, wait_until_up
from tests.cli.test_cli import catalog, fashionrec, read_until  # noqa: F401 - `catalog` is a fixture
from tests.conftest import copy_catalog, free_port, write_products
from tests.image_corpus import png_bytes


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The single error line of a command that failed as a user error (exit 2, no traceback)."""
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fashionrec: error: "), done.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def writable_catalog(catalog: Path, tmp_path_factory) -> Path:  # noqa: F811 - the fixture
    """A private copy of the CLI tests' catalog, for writes."""

    copy = tmp_path_factory.mktemp("cli-edges") / "c"
    copy_catalog(catalog, copy)
    return copy


def test_add_of_a_pixel_bomb_or_a_text_file_is_one_line(writable_catalog: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(20_000, 20_000, 1, 0, [b"\x00" * 2500] * 20_000))  # 400 M pixels in ~60 kB
    line = one_line_error(fashionrec("add", "b1", str(bomb), "--catalog", str(writable_catalog)))
    assert "bomb.png" in line and "too large" in line
    text = tmp_path / "notes.jpg"
    text.write_text("size chart\n")
    line = one_line_error(fashionrec("add", "t1", str(text), "--catalog", str(writable_catalog)))
    assert "notes.jpg" in line and "not an image" in line and "JPEG, PNG" in line and "<_io." not in line


@pytest.mark.parametrize("metadata, words", [
    ('{"gender": ' + "[" * 10_000 + "]" * 10_000 + "}", "nested too deep"),
    ('{"gender": 1' + "0" * 5_000 + "}", "number too long"),
    ('{"gender": {"a": "b"}}', "text or null"),
    ("[1]", "must hold a JSON object"),
])
def test_add_with_metadata_out_of_bounds_is_one_line(writable_catalog: Path, metadata: str, words: str) -> None:
    photo = write_products(writable_catalog.parent / "photos", [77])[0]
    line = one_line_error(fashionrec("add", "m1", str(photo), "--catalog", str(writable_catalog),
                                     "--metadata", metadata))
    assert "metadata" in line and words in line and len(line) < 400, line


def test_a_10kb_id_is_cut_in_the_message(writable_catalog: Path) -> None:
    photo = write_products(writable_catalog.parent / "photos", [78])[0]
    for args in (["add", "x" * 10_000, str(photo)], ["remove", "x" * 10_000]):
        line = one_line_error(fashionrec(*args, "--catalog", str(writable_catalog)))
        assert "x" * 64 + "…" in line and "x" * 65 not in line


def test_serve_starts_again_on_its_port_right_after_it_stopped(catalog: Path) -> None:  # noqa: F811
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "fashionrec.cli", "serve", "--catalog", str(catalog), "--port", str(port)]
    for start in range(2):
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            try:
                wait_until_up(base, server, timeout=60, health_path="/health")
            except FashionrecError:
                stop(server)
                raise AssertionError(f"start {start + 1} failed: {server.stderr.read()[-1000:]}") from None
            for _ in range(5):  # each connection closed by the server: its port keeps TIME-WAIT sockets
                with urllib.request.urlopen(f"{base}/products/1/similar?k=3", timeout=10) as answer:
                    assert answer.status == 200
        finally:
            stop(server)


def port_answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_sigterm_to_app_stops_its_web_server(catalog: Path) -> None:  # noqa: F811
    port = free_port()
    app = subprocess.Popen([sys.executable, "-u", "-m", "fashionrec.cli", "app", "--catalog", str(catalog),
                            "--port", str(port), "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)  # its own group: cleaned up whatever happens
    try:
        read_until(app, "The web app is up")
        assert port_answers(port)
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=15) == 0
        deadline = time.monotonic() + 10
        while port_answers(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not port_answers(port), "the web app's server kept serving after its CLI was stopped"
    finally:
        try:
            os.killpg(app.pid, signal.SIGKILL)  # the CLI and any child it left behind
        except ProcessLookupError:
            pass
        app.wait()
