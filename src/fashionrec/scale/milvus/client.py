"""Connections to Milvus (a server, or a Milvus Lite file that one program opens at a time)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fashionrec.errors import FashionrecError
from fashionrec.scale.milvus.target import MilvusTarget

_lite_users: dict[str, int] = {}  # open connections per Milvus Lite file in this process


@contextlib.contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Silence libraries' loggers for a call whose failure they handle themselves."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def client_for(target: MilvusTarget) -> Iterator[Any]:
    """A connection for the duration of a `with` block."""
    client = connect(target)
    try:
        yield client
    finally:
        disconnect(client, target)


def disconnect(client: Any, target: MilvusTarget) -> None:
    """Close a connection; the last one to a Milvus Lite file also stops its in-process server, which frees
    the file for other programs (pymilvus would keep it until this process exits)."""
    client.close()
    if not target.lite:
        return
    path = str(Path(target.uri).resolve())
    _lite_users[path] = _lite_users.get(path, 1) - 1
    if _lite_users[path] <= 0:
        del _lite_users[path]
        from milvus_lite.server_manager import server_manager_instance

        with quiet("milvus_lite"):
            server_manager_instance.release_server(target.uri)


def connect(target: MilvusTarget) -> Any:
    """A MilvusClient for the target, or a clear error."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise FashionrecError("Milvus search needs pymilvus (and milvus-lite for local files): "
                              "pip install 'fashionrec[scale]'") from None
    try:
        with quiet("milvus_lite", "pymilvus"):  # their tracebacks; the error below says what went wrong
            client = MilvusClient(uri=target.uri, token=target.token)
    except Exception as exc:  # pymilvus raises its own exception types for connection failures
        if target.lite and _locked(Path(target.uri)):
            raise FashionrecError(f"the Milvus Lite file {target.uri} is open in another program; Milvus Lite "
                                  f"serves one program at a time (run a Milvus server to share a collection)") from None
        raise FashionrecError(f"cannot connect to Milvus at {target.uri}: {exc}") from None
    if target.lite:
        path = str(Path(target.uri).resolve())
        _lite_users[path] = _lite_users.get(path, 0) + 1
    return client


def _locked(lite_file: Path) -> bool:
    """Whether another process holds a Milvus Lite file (a folder with a LOCK file it flocks)."""
    import fcntl

    lock = lite_file / "LOCK"
    if not lock.is_file():
        return False
    with open(lock, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False
