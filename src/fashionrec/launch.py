"""Start the web app's server as a child process and wait until it answers.

Streamlit runs a script in its own server, so `fashionrec app` (and the demo) start
`python -m streamlit run webapp.py` with the catalog in the environment, flags that keep it offline
(no usage statistics, no first-run e-mail prompt), and the upload limit from the settings.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from fashionrec.config import Settings, load_settings
from fashionrec.errors import FashionrecError

WEBAPP_SCRIPT = Path(__file__).with_name("webapp.py")
HEALTH_PATH = "/_stcore/health"


def require_port_free(host: str, port: int) -> None:
    """Fail early, with the fix, when another program holds the port (a port whose last server stopped moments ago,
    left with only TIME-WAIT connections, is free: the servers bind it with SO_REUSEADDR, and so does this check).

    Raises:
        FashionrecError: host:port cannot be bound.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        if os.name != "nt":  # as uvicorn and Tornado bind: a port left only with TIME-WAIT sockets is free (on
            # Windows the option would let two programs share a port, so its test would always pass there)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise FashionrecError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None


def web_app_command(host: str, port: int, settings: Settings) -> list[str]:
    """The command line that serves the web app on host:port."""
    upload_mb = max(1, math.ceil(settings.max_upload_bytes / 1_000_000))
    return [
        sys.executable, "-m", "streamlit", "run", str(WEBAPP_SCRIPT),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--server.maxUploadSize", str(upload_mb), "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none", "--global.developmentMode", "false", "--client.toolbarMode", "minimal",
    ]


def start_web_app(catalog_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8501,
                  examples_dir: str | os.PathLike | None = None, quiet: bool = False,
                  search: str | None = None) -> subprocess.Popen:
    """Start the web app for `catalog_dir` (searched by `search`, default from the settings); returns the
    running server process (not yet answering).

    Example:
        >>> server = start_web_app("my-catalog", port=8501)
        >>> wait_until_up("http://127.0.0.1:8501", server)
    """
    # The app's process answers queries: numpy's BLAS on one thread, or its threads fight the model's
    # (fashionrec.threads; set before numpy loads there, so no call in the app itself touches a test's process).
    env = dict(os.environ, FASHIONREC_CATALOG=str(Path(catalog_dir).resolve()), OPENBLAS_NUM_THREADS="1")
    if examples_dir is not None:
        env["FASHIONREC_EXAMPLES"] = str(Path(examples_dir).resolve())
    if search:
        env["FASHIONREC_SEARCH"] = search
    output = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(web_app_command(host, port, load_settings()), env=env, stdout=output, stderr=output)


def wait_until_up(base_url: str, process: subprocess.Popen, timeout: float = 60.0,
                  health_path: str = HEALTH_PATH) -> None:
    """Block until `base_url + health_path` answers 200.

    Raises:
        FashionrecError: the server exited, or did not answer within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FashionrecError(f"the server exited with code {process.returncode} before it answered")
        try:
            with urllib.request.urlopen(base_url + health_path, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise FashionrecError(f"the server at {base_url} did not answer within {timeout:.0f} s")


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a server process, politely first."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside, SIGTERM (a service manager's or `kill`'s stop) raises KeyboardInterrupt in the main thread, as Ctrl+C
    does, so the `finally` that stops a child server runs: otherwise Python dies at once and the child keeps
    serving. Outside the main thread (where no handler can be set) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def can_open_browser() -> bool:
    """Whether a graphical browser can be opened here (never a text browser inside the terminal)."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
