"""`--engine ray --ray-address`: indexing on a Ray cluster started apart from fashionrec (`ray start --head`), the
way a real cluster is, with Ray's token authentication on."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from tests.conftest import free_port, write_products

pytest.importorskip("ray", reason="the Ray engine needs ray: pip install -e '.[scale]'")


@pytest.fixture
def ray_head(tmp_path: Path):
    """A Ray head node in its own processes; yields its address and the environment a driver needs."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray is None:
        pytest.skip("the ray command is not installed")
    port = free_port()
    # Drivers must present the cluster's token. Its own token file, not ~/.ray's: a fresh machine has none.
    token = tmp_path / "ray_auth_token"
    token.write_text(secrets.token_hex(32))
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    started = subprocess.run([ray, "start", "--head", "--port", str(port), "--num-cpus", "2",
                              "--include-dashboard", "false", "--disable-usage-stats"],
                             capture_output=True, text=True, env=env, timeout=180)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_indexing_on_a_cluster_at_an_address_gives_the_in_process_catalog(tmp_path: Path, lite0, ray_head) -> None:
    address, env = ray_head
    images = tmp_path / "images"
    write_products(images, range(1, 41))
    done = subprocess.run([sys.executable, "-m", "fashionrec.cli", "index", str(images), "--catalog",
                           str(tmp_path / "cluster"), "--model", "efficientnet-lite0", "--engine", "ray",
                           "--ray-address", address, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert (report["engine"], report["embedded"], report["products"]) == ("ray", 40, 40)
    index_images(images, tmp_path / "local", model="efficientnet-lite0", progress=False)
    local, cluster = Catalog.open(tmp_path / "local"), Catalog.open(tmp_path / "cluster")
    assert local.ids == cluster.ids
    np.testing.assert_allclose(local.model_vectors, cluster.model_vectors, atol=1e-5, rtol=0)
    wrong = subprocess.run([sys.executable, "-m", "fashionrec.cli", "index", str(images), "--catalog",
                            str(tmp_path / "nowhere"), "--engine", "ray", "--ray-address", f"127.0.0.1:{free_port()}"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert wrong.returncode == 2 and "cannot reach the Ray cluster" in wrong.stderr
