"""Concurrent authenticated batch writes against a real `fashionrec serve`: statuses, seconds, the server's peak memory.

    python benchmarks/write_memory.py [--data DIR] [--limit 300] [--batches 8] [--size 100] [--model efficientnet-lite2]

Indexes the first `--limit` sample products (a fresh catalog under a temporary folder), starts `fashionrec serve`
with a write token on a free loopback port, then sends `--batches` POST /products:batch at once (one connection each,
released together), each carrying `--size` sample JPEGs under new ids, and reads the server's peak resident memory
(VmHWM of /proc/<pid>/status: the process's high-water mark, model and catalog included). Then one unauthenticated
batch of the same size, to show it is refused before its body is read. Exits 1 unless every authenticated batch
answers 200 and the peak stays within `--max-rss-mb` (1000).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from fashionrec.demo import find_sample_data
from fashionrec.index import index_images
from fashionrec.launch import stop, wait_until_up

TOKEN = "bench-token"


def memory_mb(pid: int, field: str) -> float:
    """VmRSS or VmHWM of a process, in MB (1e6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


def batch_body(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart body of photos named <id>.jpg, and its content type."""
    boundary = uuid.uuid4().hex
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"{name}\"\r\n"
             f"Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n" for name, data in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def send(port: int, body: bytes, content_type: str, token: str | None) -> int:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("POST", "/products:batch", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--model", default="efficientnet-lite2")
    parser.add_argument("--max-rss-mb", type=float, default=1000.0)
    args = parser.parse_args()
    data = find_sample_data(args.data)
    images = sorted((data / "images").glob("*.jpg"))
    work = Path(tempfile.mkdtemp(prefix="fashionrec-write-memory-"))
    try:
        (work / "images").mkdir()
        for path in images[:args.limit]:
            shutil.copy(path, work / "images" / path.name)
        index_images(work / "images", work / "c", model=args.model, progress=False)
        spare = images[args.limit:args.limit + args.batches * args.size]
        bodies = [batch_body([(f"b{b}-{path.name}", path.read_bytes()) for path in spare[b::args.batches]])
                  for b in range(args.batches)]
        port = free_port()
        env = dict(os.environ, FASHIONREC_API_TOKEN=TOKEN, FASHIONREC_FOLLOW_SECONDS="0", TMPDIR=str(work))
        server = subprocess.Popen([sys.executable, "-m", "fashionrec.cli", "serve", "--catalog", str(work / "c"),
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            wait_until_up(f"http://127.0.0.1:{port}", server, timeout=120, health_path="/health")
            idle = memory_mb(server.pid, "VmRSS")
            statuses: list[int] = [0] * args.batches
            start = threading.Barrier(args.batches)

            def one(index: int) -> None:
                body, content_type = bodies[index]
                start.wait()
                statuses[index] = send(port, body, content_type, TOKEN)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(args.batches)]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - began
            peak = memory_mb(server.pid, "VmHWM")
            anonymous = send(port, *bodies[0], token=None)
        finally:
            stop(server)
        megabytes = sum(len(body) for body, _ in bodies) / 1e6
        print(f"| model | batches x photos | MB sent | statuses | seconds | server idle RSS MB | server peak RSS MB |")
        print("|---|---|--:|---|--:|--:|--:|")
        print(f"| {args.model} | {args.batches} x {args.size} | {megabytes:.1f} | "
              f"{', '.join(f'{statuses.count(s)} x {s}' for s in sorted(set(statuses)))} | {seconds:.1f} | "
              f"{idle:.0f} | {peak:.0f} |")
        print(f"an unauthenticated batch of {args.size}: {anonymous}")
        return 0 if set(statuses) == {200} and peak <= args.max_rss_mb and anonymous == 401 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
