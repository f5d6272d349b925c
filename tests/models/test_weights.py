"""models/weights.py: finding weights, the md5-checked download, and the message when they are absent."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from fashionrec.config import load_settings
from fashionrec.errors import WeightsNotFoundError
from fashionrec.models import KerasWeights, get_spec
from fashionrec.models.weights import locate_weights, weights_status

PAYLOAD = b"pretend these are weights" * 100


@pytest.fixture()
def local_server(tmp_path: Path) -> Iterator[str]:
    """An HTTP server on loopback serving `tmp_path`, standing in for Keras' download address."""
    (tmp_path / "weights.h5").write_bytes(PAYLOAD)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _settings(tmp_path: Path, allow_download: bool):
    return replace(load_settings(), keras_home=tmp_path / "keras", allow_download=allow_download)


def test_package_weights_are_found_offline() -> None:
    path = locate_weights(get_spec("efficientnet-lite2"), load_settings())
    assert path.is_file() and path.suffix == ".pth"


def test_missing_resnet50_weights_say_which_file_and_where(tmp_path: Path) -> None:
    settings = _settings(tmp_path, allow_download=False)
    with pytest.raises(WeightsNotFoundError) as error:
        locate_weights(get_spec("resnet50"), settings)
    message = str(error.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "keras" / "models") in message and "--weights" in message
    assert "not found" in weights_status(get_spec("resnet50"), settings)


def test_unreachable_download_is_a_clear_error(tmp_path: Path) -> None:
    spec = replace(get_spec("resnet50"), weights=replace(get_spec("resnet50").weights, url="http://127.0.0.1:9/x.h5"))
    with pytest.raises(WeightsNotFoundError, match="could not be downloaded"):
        locate_weights(spec, _settings(tmp_path, allow_download=True))
    assert not list((tmp_path / "keras" / "models").glob("*")), "no partial file may be left behind"


def test_download_lands_in_the_keras_cache_when_the_md5_matches(tmp_path: Path, local_server: str) -> None:
    source = KerasWeights("weights.h5", f"{local_server}/weights.h5", hashlib.md5(PAYLOAD).hexdigest())
    path = locate_weights(replace(get_spec("resnet50"), weights=source), _settings(tmp_path, allow_download=True))
    assert path == tmp_path / "keras" / "models" / "weights.h5" and path.read_bytes() == PAYLOAD


def test_download_with_the_wrong_md5_is_refused(tmp_path: Path, local_server: str) -> None:
    source = KerasWeights("weights.h5", f"{local_server}/weights.h5", "0" * 32)
    with pytest.raises(WeightsNotFoundError, match="md5"):
        locate_weights(replace(get_spec("resnet50"), weights=source), _settings(tmp_path, allow_download=True))
    assert not (tmp_path / "keras" / "models" / "weights.h5").exists()


def test_a_given_path_wins_and_must_exist(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        locate_weights(get_spec("resnet50"), load_settings(), tmp_path / "none.h5")
    given = tmp_path / "mine.h5"
    given.write_bytes(b"x")
    assert locate_weights(get_spec("resnet50"), load_settings(), given) == given
