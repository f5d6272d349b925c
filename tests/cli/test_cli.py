"""cli/ as a user runs it: real subprocesses, JSON output, exit code 2 with one clear line on errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fashionrec.config import load_settings
from fashionrec.recommend.answers import SIMILARITY_MEANING
from tests.conftest import copy_catalog, drawn_colour, hex_rgb, write_products


def fashionrec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fashionrec.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, lite0) -> Path:
    root = tmp_path_factory.mktemp("cli")
    write_products(root / "images", range(1, 11))
    (root / "styles.csv").write_text("id,gender\n" + "".join(f"{i},{'Men' if i % 2 else 'Women'}\n" for i in range(1, 11)))
    done = fashionrec("index", str(root / "images"), "--catalog", str(root / "c"), "--metadata", str(root / "styles.csv"),
                      "--model", "efficientnet-lite0", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "Indexed 10 images" in done.stdout and "the catalog has 10 products" in done.stdout
    return root / "c"


def test_models_list() -> None:
    done = fashionrec("models", "list")
    assert done.returncode == 0
    assert "efficientnet-lite2 (default)" in done.stdout and "installed" in done.stdout and "resnet50" in done.stdout


def test_recommend_json(catalog: Path) -> None:
    photo = catalog.parent / "images" / "3.jpg"
    done = fashionrec("recommend", str(photo), "--catalog", str(catalog), "--json", "-k", "3")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["model"] == "efficientnet-lite0" and [r["id"] for r in data["results"]][0] == "3"
    assert len(data["results"]) == 3 and data["results"][0]["metadata"] == {"gender": "Men"}


def test_similar_with_filter_and_table(catalog: Path) -> None:
    done = fashionrec("similar", "2", "--catalog", str(catalog), "--where", "gender=Women", "--json")
    ids = [r["id"] for r in json.loads(done.stdout)["results"]]
    assert done.returncode == 0 and "2" not in ids and len(ids) == 4 and all(int(i) % 2 == 0 for i in ids)
    table = fashionrec("similar", "2", "--catalog", str(catalog), "--where", "gender=Women")
    assert table.returncode == 0 and table.stdout.splitlines()[1].split()[:3] == ["#", "id", "similarity"]
    similar = json.loads(done.stdout)["results"]
    shown = [line.split()[2] for line in table.stdout.splitlines()[2:-1]]
    assert shown == [f"{m['similarity']:.2%}" for m in similar]  # the figure of --json, the API and the web app
    assert table.stdout.splitlines()[-1] == f"({SIMILARITY_MEANING})"


@pytest.mark.parametrize(("name", "width", "shown"), [
    ("Turtle Men Formal Pink Tie, Cufflink and Pocket Square Set", 48,
     "Turtle Men Formal Pink Tie, Cufflink and Pocket…"),
    ("Tie, Cufflink Set", 8, "Tie…"),  # no comma before the ellipsis
    ("Nike Women's EM Tempo 3.5\" Pink Short", 48, "Nike Women's EM Tempo 3.5\" Pink Short"),
    ("Peter England Men Party Blue Jeans", 20, "Peter England Men…"),
    ("Supercalifragilisticexpialidocious Shirt", 20, "Supercalifragilisti…"),  # one word longer than the width
    ("Puma  Men  Shoes", 10, "Puma Men…"),
])
def test_names_are_cut_at_a_word_with_an_ellipsis(name: str, width: int, shown: str) -> None:
    from fashionrec.cli import shorten

    assert shorten(name, width) == shown and len(shown) <= width


def test_info(catalog: Path, lite0) -> None:
    """`info --json` against the catalog's SQLite file read here with sqlite3, and what the fixture indexed."""
    import sqlite3

    done = fashionrec("info", "--catalog", str(catalog), "--json")
    assert done.returncode == 0
    facts = json.loads(done.stdout)
    with sqlite3.connect(catalog / "catalog.sqlite") as db:
        products = db.execute("SELECT COUNT(*) FROM products").fetchone()[0]
        info = dict(db.execute("SELECT key, value FROM info").fetchall())
    assert facts["products"] == products == 10
    assert facts["model"] == info["model_name"] == "efficientnet-lite0"
    assert facts["model_id"] == info["model_id"] == lite0.model_id and facts["generation"] == int(info["generation"])
    assert facts["dim"] == 1280 + 320 + 112  # lite0's head, last block and stride-16 stage, pooled
    assert facts["whitened_to"] is None and facts["tuned_for"] is None and facts["drift"] is None  # 10: under 100
    assert facts["whitening_rule"] is None
    assert facts["colour"].startswith("10 of 10 products (")
    assert [Path(p).resolve() for p in facts["images_dirs"]] == [(catalog.parent / "images").resolve()]
    assert facts["metadata_columns"] == ["gender"] and facts["skipped_files"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recommend", "missing.jpg"], "no such file"),
        (["similar", "12345"], "'12345' is not in the catalog"),
        (["similar", "1", "--where", "colour=red"], "unknown filter column"),
    ],
)
def test_user_errors_exit_2_with_one_line(catalog: Path, args: list[str], message: str) -> None:
    done = fashionrec(*args, "--catalog", str(catalog))
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_colour_weight_on_similar_and_recommend(catalog: Path) -> None:
    """Issue 15: --colour-weight (and --color-weight) 0-1; --json carries it and each result's dominant colours."""
    from fashionrec.catalog.catalog import Catalog
    from tests.reference import catalog_arrays, more_like, rank

    arrays = catalog_arrays(Catalog.open(catalog))
    photo = catalog.parent / "images" / "3.jpg"
    for args in (["similar", "2"], ["recommend", str(photo)]):
        full = json.loads(fashionrec(*args, "--catalog", str(catalog), "--colour-weight", "1", "--json").stdout)
        assert full["colour_weight"] == 1 and all(r["colours"] and r["colours"][0]["rgb"].startswith("#")
                                                  for r in full["results"])
        # Brute force at weight 1: "similar 2" never returns 2; the photo of product 3 is its catalog file, so its
        # vectors are product 3's and it finds itself first.
        want = (more_like(arrays, "2", 1.0, k=5) if args[0] == "similar"
                else rank(arrays, arrays.shape[arrays.ids.index("3")], arrays.colour[arrays.ids.index("3")], 1.0, k=5,
                          seen_hashes=set()))
        assert [r["id"] for r in full["results"]] == want.ids and (args[0] == "similar" or want.ids[0] == "3")
        assert [r["similarity"] for r in full["results"]] == pytest.approx(want.similarities, abs=1e-5)
        for result in full["results"]:  # a drawn product's dominant colour is its paint (JPEG aside)
            assert np.abs(hex_rgb(result["colours"][0]["rgb"]) - drawn_colour(int(result["id"]))).max() <= 16
        table = fashionrec(*args, "--catalog", str(catalog), "--color-weight", "0")
        assert table.returncode == 0 and table.stdout.splitlines()[0].endswith("colour weight 0")
        for bad in ("1.5", "-1", "red", "nan"):
            done = fashionrec(*args, "--catalog", str(catalog), "--colour-weight", bad)
            assert done.returncode == 2 and "--colour-weight" in done.stderr, done.stderr
            assert "from 0 (shape only) to 1" in done.stderr and "Traceback" not in done.stderr


def test_not_a_catalog_and_not_an_image(tmp_path: Path, catalog: Path) -> None:
    done = fashionrec("similar", "1", "--catalog", str(tmp_path))
    assert done.returncode == 2 and "not a fashionrec catalog" in done.stderr
    (tmp_path / "fake.jpg").write_text("hello")
    done = fashionrec("recommend", str(tmp_path / "fake.jpg"), "--catalog", str(catalog))
    assert done.returncode == 2 and "not an image" in done.stderr


def test_another_model_into_the_same_catalog_is_refused(catalog: Path) -> None:
    done = fashionrec("index", str(catalog.parent / "images"), "--catalog", str(catalog), "--model", "efficientnet-lite2")
    assert done.returncode == 2 and "cannot take efficientnet-lite2 vectors" in done.stderr


def start_fashionrec(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """fashionrec as a terminal starts it: Ctrl+C (SIGINT) interrupts it even when the tests themselves run in a
    background job, whose children would otherwise inherit "ignore SIGINT" (and Python then keeps ignoring it)."""
    import signal

    return subprocess.Popen([sys.executable, "-u", "-m", "fashionrec.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def read_until(process: subprocess.Popen, text: str) -> str:
    """The server's output up to the line containing `text` (fails if it exits first)."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"exited with {process.wait()} before printing {text!r}:\n{''.join(seen)}")


def interrupt(process: subprocess.Popen) -> int:
    import signal

    process.send_signal(signal.SIGINT)
    return process.wait(timeout=30)


def test_app_starts_the_web_app_and_stops_on_ctrl_c(catalog: Path) -> None:
    import urllib.request

    from tests.conftest import free_port

    port = free_port()
    app = start_fashionrec("app", "--catalog", str(catalog), "--port", str(port), "--no-browser")
    try:
        output = read_until(app, "The web app is up")
        assert f"http://localhost:{port}" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as response:
            assert response.status == 200
        assert interrupt(app) == 0
    finally:
        app.kill()


@pytest.mark.parametrize("command", ["app", "serve"])
def test_app_and_serve_refuse_a_bad_catalog_or_a_busy_port(command: str, tmp_path: Path, catalog: Path) -> None:
    import socket

    done = fashionrec(command, "--catalog", str(tmp_path / "nothing"))
    assert done.returncode == 2 and "not a fashionrec catalog" in done.stderr and "Traceback" not in done.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = fashionrec(command, "--catalog", str(catalog), "--port", str(taken.getsockname()[1]))
    assert done.returncode == 2 and "choose another --port" in done.stderr
    from tests.conftest import free_port

    done = fashionrec(command, "--catalog", str(catalog), "--search", "annoy", "--port", str(free_port()))
    assert done.returncode == 2 and "the search must be auto, exact, ivf" in done.stderr


def test_demo_indexes_checks_the_photos_then_opens_the_app(tmp_path: Path, lite0) -> None:
    import os

    from tests.conftest import free_port

    data = tmp_path / "fashion-product-images"
    write_products(data / "images", range(1, 21))
    (data / "styles.csv").write_text("id,gender\n" + "".join(f"{i},Men\n" for i in range(1, 21)))
    (data / "queries_fullres").mkdir()
    for product_id in (3, 14):
        (data / "queries_fullres" / f"{product_id}.jpg").write_bytes((data / "images" / f"{product_id}.jpg").read_bytes())
    port = free_port()
    env = dict(os.environ, FASHIONREC_MODEL="efficientnet-lite0")
    demo = start_fashionrec("demo", "--data", str(data), "--catalog", str(tmp_path / "c"), "--port", str(port),
                            "--no-browser", env=env)
    try:
        output = read_until(demo, "The web app is up")
        assert "2 of 2 photos of indexed products found their product in the top 5" in output
        assert "20 products" in output
        assert interrupt(demo) == 0
    finally:
        demo.kill()
    again = fashionrec("demo", "--data", str(data), "--catalog", str(tmp_path / "c"), "--no-app")
    assert again.returncode == 0 and "nothing to embed" in again.stdout and "fashionrec app --catalog" in again.stdout


def test_show_duplicates_flag(copies_catalog: Path) -> None:
    once = json.loads(fashionrec("similar", "1", "--catalog", str(copies_catalog), "-k", "50", "--json").stdout)
    every = json.loads(fashionrec("similar", "1", "--catalog", str(copies_catalog), "-k", "50", "--json",
                                  "--show-duplicates").stdout)
    assert len(once["results"]) == 39 and len(every["results"]) == 42


def test_similar_all_writes_csv_and_parquet(copies_catalog: Path, tmp_path: Path) -> None:
    import csv

    done = fashionrec("similar-all", "--catalog", str(copies_catalog), "-k", "3", "--out", str(tmp_path / "s.csv"))
    assert done.returncode == 0 and "each of 43 products" in done.stdout
    with (tmp_path / "s.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 43 and set(rows[0]) == {"product_id", "rank", "similar_id", "similarity"}
    assert all(row["product_id"] != row["similar_id"] for row in rows)
    shown = json.loads(fashionrec("similar", "5", "--catalog", str(copies_catalog), "-k", "3", "--json").stdout)
    assert [(r["similar_id"], float(r["similarity"])) for r in rows if r["product_id"] == "5"] == [
        (m["id"], pytest.approx(m["similarity"], abs=1e-5)) for m in shown["results"]]
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow")
    import pyarrow.parquet as pq

    assert fashionrec("similar-all", "--catalog", str(copies_catalog), "-k", "3", "--out",
                      str(tmp_path / "s.parquet")).returncode == 0
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 3 * 43
    bad = fashionrec("similar-all", "--catalog", str(copies_catalog), "--out", str(tmp_path / "s.xlsx"))
    assert bad.returncode == 2 and ".csv or .parquet" in bad.stderr
    # Issue 24: bounded as every query (it ran 15 minutes silently at -k 100000), with a progress report.
    big = fashionrec("similar-all", "--catalog", str(copies_catalog), "-k", "101", "--out", str(tmp_path / "b.csv"))
    assert big.returncode == 2 and "FASHIONREC_MAX_K" in big.stderr and not (tmp_path / "b.csv").exists()
    from fashionrec.catalog.catalog import Catalog
    from fashionrec.recommend.similar_all import similar_all

    told = []
    assert len(similar_all(Catalog.open(copies_catalog), k=3, progress=told.append).ids) == 43 and sum(told) == 43


@pytest.mark.parametrize("command", ["recommend", "similar"])
def test_k_is_bounded_by_the_same_setting_as_the_api(catalog: Path, command: str) -> None:
    import os

    target = str(catalog.parent / "images" / "3.jpg") if command == "recommend" else "3"
    done = fashionrec(command, target, "--catalog", str(catalog), "-k", "101")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "100" in done.stderr and "FASHIONREC_MAX_K" in done.stderr
    env = dict(os.environ, FASHIONREC_MAX_K="4")
    small = subprocess.run([sys.executable, "-m", "fashionrec.cli", command, target, "--catalog", str(catalog),
                            "-k", "5"], capture_output=True, text=True, timeout=300, env=env)
    assert small.returncode == 2 and "at most 4" in small.stderr
    zero = fashionrec(command, target, "--catalog", str(catalog), "-k", "0")
    assert zero.returncode == 2 and "at least 1" in zero.stderr
    fine = subprocess.run([sys.executable, "-m", "fashionrec.cli", command, target, "--catalog", str(catalog),
                           "-k", "4", "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert fine.returncode == 0 and len(json.loads(fine.stdout)["results"]) == 4


def test_a_filter_that_matches_nothing_says_so(catalog: Path) -> None:
    typo = fashionrec("similar", "2", "--catalog", str(catalog), "--where", "gender=Mne")
    assert typo.returncode == 0
    assert typo.stdout.strip() == f"model: efficientnet-lite0, colour weight {load_settings().colour_weight:g}"
    assert typo.stderr == "fashionrec: no product has gender=Mne; its values are: Men, Women\n"
    data = json.loads(fashionrec("similar", "2", "--catalog", str(catalog), "--where", "gender=Mne", "--json").stdout)
    assert data["results"] == [] and data["notice"] == "no product has gender=Mne; its values are: Men, Women"
    fine = json.loads(fashionrec("similar", "2", "--catalog", str(catalog), "--where", "gender=men", "--json").stdout)
    assert len(fine["results"]) == 5 and fine["notice"] is None


def test_index_progress_into_a_log_is_a_few_plain_lines(tmp_path: Path, lite0) -> None:
    write_products(tmp_path / "images", range(1, 49))
    done = subprocess.run([sys.executable, "-m", "fashionrec.cli", "index", str(tmp_path / "images"), "--catalog",
                           str(tmp_path / "c"), "--model", "efficientnet-lite0", "--batch-size", "1"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr  # a log gets whole lines, not a redrawn bar
    lines = done.stderr.splitlines()
    assert 2 <= len(lines) <= 12, lines  # 48 batches: at most one line per tenth, plus the last
    assert all(line.startswith("indexing: ") for line in lines), lines
    assert "48/48 images (100%)" in lines[-1]


def test_index_progress_on_a_terminal_is_a_redrawn_bar(tmp_path: Path, lite0) -> None:
    import fcntl
    import os
    import pty
    import struct
    import termios
    import threading

    write_products(tmp_path / "images", range(1, 13))
    terminal, stderr = pty.openpty()
    fcntl.ioctl(stderr, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    chunks: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(terminal, 65536)
            except OSError:  # every writer closed its end
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    try:
        done = subprocess.run([sys.executable, "-m", "fashionrec.cli", "index", str(tmp_path / "images"),
                               "--catalog", str(tmp_path / "c"), "--model", "efficientnet-lite0"],
                              stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=300)
    finally:
        os.close(stderr)
        reader.join(timeout=30)
        os.close(terminal)
    shown = b"".join(chunks)
    assert done.returncode == 0 and "Indexed 12 images" in done.stdout
    text = shown.decode()
    assert "\r" in text and "indexing: 100%|" in text and "12/12 [" in text  # tqdm's bar, drawn in place


def test_without_catalog_commands_use_fashionrec_catalog_or_the_demo_catalog(catalog: Path, tmp_path: Path) -> None:
    import os

    empty_cache = dict(os.environ, FASHIONREC_CACHE=str(tmp_path / "cache"))
    empty_cache.pop("FASHIONREC_CATALOG", None)
    done = subprocess.run([sys.executable, "-m", "fashionrec.cli", "info"], capture_output=True, text=True,
                          env=empty_cache, timeout=120)
    assert done.returncode == 2 and "no demo catalog at" in done.stderr and "run fashionrec demo" in done.stderr
    named = subprocess.run([sys.executable, "-m", "fashionrec.cli", "info", "--json"], capture_output=True, text=True,
                           env=dict(empty_cache, FASHIONREC_CATALOG=str(catalog)), timeout=120)
    assert named.returncode == 0 and json.loads(named.stdout)["products"] == 10

    copy_catalog(catalog, tmp_path / "cache" / "demo-catalog")  # where fashionrec demo builds it
    found = subprocess.run([sys.executable, "-m", "fashionrec.cli", "similar", "2", "-k", "2", "--json"],
                           capture_output=True, text=True, env=empty_cache, timeout=120)
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)["results"]) == 2
