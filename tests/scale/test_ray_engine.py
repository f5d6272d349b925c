"""scale/ray_engine.py: `--engine ray` builds the catalog the in-process engine builds, incrementally, and
survives a killed actor. A real local Ray cluster runs every test (skipped only when ray is not installed)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from tests.conftest import write_bad_files, write_products

ray = pytest.importorskip("ray", reason="the Ray engine needs ray: pip install -e '.[scale]'")

from fashionrec.scale.ray_engine import RayEngine  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray cluster for the module's in-process tests (the engine reuses a connected Ray).

    Ray gives its node 30 s to start; on a loaded 2-core machine (the whole suite running) it sometimes needs a
    second try, which is Ray's start-up, not the engine under test: up to three tries, then the error."""
    import time

    for attempt in range(3):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:  # noqa: BLE001 - "The current node timed out during startup"
            ray.shutdown()
            if attempt == 2:
                raise
            time.sleep(5)
    yield
    ray.shutdown()


def assert_same_catalog(left: Path, right: Path) -> None:
    """Same products in the same order, vectors within 1e-5, same hashes, metadata and skipped files."""
    a, b = Catalog.open(left), Catalog.open(right)
    assert a.ids == b.ids
    np.testing.assert_allclose(a.model_vectors, b.model_vectors, atol=1e-5, rtol=0)
    assert a.content_hashes == b.content_hashes
    assert [a.metadata_at(i) for i in range(len(a))] == [b.metadata_at(i) for i in range(len(b))]
    assert sorted((s.path, s.reason) for s in a.skipped) == sorted((s.path, s.reason) for s in b.skipped)
    assert a.has_colour and b.has_colour and a.colour_missing == b.colour_missing == 0  # the actors send colour too
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-4, rtol=0)
    assert [a.swatches_at(i) for i in range(len(a))] == [b.swatches_at(i) for i in range(len(b))]


def shop_with_bad_files(folder: Path) -> Path:
    """30 drawn products, and the bad files a real folder has: empty, not an image, truncated."""
    images = folder / "images"
    write_products(images, range(1, 31))
    write_bad_files(images, images / "3.jpg")
    return images


def test_ray_engine_gives_the_in_process_catalog_with_the_same_skipped_files(tmp_path: Path, lite0, local_ray,
                                                                           caplog) -> None:
    images = shop_with_bad_files(tmp_path)
    local = index_images(images, tmp_path / "local", model="efficientnet-lite0", progress=False)
    with caplog.at_level("INFO", logger="fashionrec.index.backfill"):
        remote = index_images(images, tmp_path / "ray", model="efficientnet-lite0", progress=False, batch_size=4,
                              engine=RayEngine(workers=2))
    assert "indexed without it" not in caplog.text  # the colour came from the actors, not from a backfill
    assert (local.engine, remote.engine) == ("local", "ray")
    assert (remote.embedded, remote.products, len(remote.skipped)) == (30, 30, 3)
    assert [(s.path, s.reason) for s in remote.skipped] == [(s.path, s.reason) for s in local.skipped]
    assert_same_catalog(tmp_path / "local", tmp_path / "ray")


def test_ray_engine_is_incremental_and_sends_only_new_or_changed_files(tmp_path: Path, lite0, local_ray) -> None:
    images = tmp_path / "images"
    write_products(images, range(1, 21))
    for catalog in ("local", "ray"):
        index_images(images, tmp_path / catalog, model="efficientnet-lite0", progress=False)
    write_products(images, range(21, 24))  # 3 new
    (images / "4.jpg").unlink()  # 2 gone
    (images / "5.jpg").unlink()
    write_products(images, [106])  # a changed file: 6.jpg gets product 106's picture
    (images / "106.jpg").replace(images / "6.jpg")
    os.utime(images / "7.jpg", ns=(time.time_ns(), time.time_ns()))  # touched, same content
    local = index_images(images, tmp_path / "local", prune=True, progress=False)
    remote = index_images(images, tmp_path / "ray", prune=True, progress=False, engine=RayEngine(workers=2))
    assert (remote.embedded, remote.removed, remote.products) == (4, 2, 21)
    assert (local.embedded, local.unchanged, local.removed) == (remote.embedded, remote.unchanged, remote.removed)
    assert_same_catalog(tmp_path / "local", tmp_path / "ray")
    again = index_images(images, tmp_path / "ray", progress=False, engine=RayEngine(workers=2))
    assert again.embedded == 0 and again.unchanged == 21  # nothing is sent to the cluster


def test_a_limited_ray_run_resumes_where_it_stopped(tmp_path: Path, lite0, local_ray) -> None:
    images = tmp_path / "images"
    write_products(images, range(1, 25))
    first = index_images(images, tmp_path / "ray", model="efficientnet-lite0", progress=False, limit=10,
                         engine=RayEngine(workers=2))
    rest = index_images(images, tmp_path / "ray", progress=False, engine=RayEngine(workers=2))
    assert (first.embedded, rest.embedded, rest.unchanged) == (10, 14, 10)
    index_images(images, tmp_path / "local", model="efficientnet-lite0", progress=False)
    assert_same_catalog(tmp_path / "local", tmp_path / "ray")


def test_on_200_sample_images_ray_and_in_process_catalogs_are_identical(tmp_path: Path, sample_dir: Path,
                                                                          local_ray) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for path in sorted((sample_dir / "images").glob("*.jpg"))[:200]:
        shutil.copy(path, images)
    metadata = sample_dir / "styles.csv"
    local = index_images(images, tmp_path / "local", metadata=metadata, progress=False)  # the default model
    remote = index_images(images, tmp_path / "ray", metadata=metadata, progress=False, engine=RayEngine())
    assert local.model == remote.model == "efficientnet-lite2"
    assert remote.embedded == remote.products == 200
    assert_same_catalog(tmp_path / "local", tmp_path / "ray")


def map_workers(root_pid: int) -> list[int]:
    """Pids of the Ray Data actors (process title `ray::MapWorker(...EmbedFiles...)`) started under `root_pid`."""
    parents: dict[int, int] = {}
    titles: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                titles[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue

    def under_root(pid: int) -> bool:
        while pid > 1:
            if pid == root_pid:
                return True
            pid = parents.get(pid, 0)
        return False

    return [pid for pid, title in titles.items() if "MapWorker" in title and "EmbedFiles" in title and under_root(pid)]


def products_in(catalog: Path) -> int:
    """Products committed so far (read while another process writes)."""
    try:
        with sqlite3.connect(f"file:{catalog / 'catalog.sqlite'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM products").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the actor processes through /proc")
def test_an_actor_killed_mid_run_is_retried_and_nothing_is_lost(tmp_path: Path, lite0) -> None:
    images = tmp_path / "images"
    write_products(images, range(1, 241))
    command = [sys.executable, "-m", "fashionrec.cli", "index", str(images), "--catalog", str(tmp_path / "ray"),
               "--model", "efficientnet-lite0", "--engine", "ray", "--workers", "2", "--batch-size", "2",
               "--no-progress", "--json"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while products_in(tmp_path / "ray") < 20 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = map_workers(run.pid)
        assert run.poll() is None and workers, "the run ended (or never started its actors) before the kill"
        killed_at = products_in(tmp_path / "ray")
        os.kill(workers[0], signal.SIGKILL)
        output, errors = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, errors.decode()[-2000:]
    assert 0 < killed_at < 240
    assert workers[0] not in map_workers(run.pid)
    import json

    report = json.loads(output)
    assert (report["embedded"], report["products"], report["skipped"]) == (240, 240, [])
    index_images(images, tmp_path / "local", model="efficientnet-lite0", progress=False)
    assert_same_catalog(tmp_path / "local", tmp_path / "ray")


def test_bad_engine_flags_are_refused_in_one_line(tmp_path: Path) -> None:
    write_products(tmp_path / "images", range(1, 3))
    for flags, message in ((["--workers", "2"], "go with --engine ray"),
                           (["--engine", "ray", "--workers", "0"], "at least 1")):
        done = subprocess.run([sys.executable, "-m", "fashionrec.cli", "index", str(tmp_path / "images"),
                               "--catalog", str(tmp_path / "c"), *flags], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr
