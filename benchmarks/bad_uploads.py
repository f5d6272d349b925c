"""Bursts of large uploads against a real `fashionrec serve`: every answer's status and the server's peak memory.

    python benchmarks/bad_uploads.py [--catalog DIR] [--data DIR] [--limit 300] [--uploads 8] [--lifted]

Indexes the first `--limit` sample products with efficientnet-lite0 (incremental; default catalog under the
cache), then, for each kind of upload, starts a fresh `fashionrec serve` on a free loopback port, sends
`--uploads` of them at once (one connection each, released together), and reads the server's peak resident
memory (VmHWM of /proc/<pid>/status: the process's high-water mark, model and catalog included). Kinds:

- a 6300 x 6300 black PNG, about 130 kB (170 MB to decode): must be refused from its header (413);
- the sample's full-resolution photos upscaled to 4500 x 6000 (27 M pixels) as JPEGs: over the full-decode limit,
  within the JPEG limit: must be answered (200), the decoder reducing them 8 times per side;
- 4096 x 4096 RGBA PNGs of a drawn product, just within the full-decode limit: must be answered (200); eight
  decoded in full at once would need about 1.3 GB, the decode slots let two at a time.

`--lifted` adds the same bursts against a server whose limits are lifted (FASHIONREC_MAX_UPLOAD_PIXELS=10^9,
FASHIONREC_DECODE_SLOTS=<uploads>), to show what the rule saves. Exits 1 unless every answer of the real
rule is the expected status and the peak stays within `--max-rss-mb` (1000).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from fashionrec.config import load_settings
from fashionrec.demo import find_sample_data
from fashionrec.launch import stop, wait_until_up

MODEL = "efficientnet-lite0"


@dataclass(frozen=True)
class Kind:
    """One kind of upload: its files and the status the rule gives them."""

    label: str
    files: list[tuple[str, bytes]]
    expected: int


@dataclass(frozen=True)
class Burst:
    """What one burst did: statuses, seconds, the server's memory before and at its peak."""

    statuses: Counter
    seconds: float
    idle_rss_mb: float
    peak_rss_mb: float
    detail: str


def png_bomb(side: int) -> bytes:
    """A valid side x side black RGB PNG, compressed row by row (never held decoded)."""
    import struct
    import zlib

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * side)
    pixels = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def upscaled_jpegs(photos: list[Path], count: int, size: tuple[int, int]) -> list[tuple[str, bytes]]:
    """The first `count` photos, each stretched to `size` and saved as a JPEG (quality 80)."""
    files = []
    for photo in photos[:count]:
        with Image.open(photo) as image:
            big = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        big.save(buffer, "JPEG", quality=80)
        files.append((f"{photo.stem}-{size[0]}x{size[1]}.jpg", buffer.getvalue()))
    return files


def drawn_rgba_pngs(count: int, side: int) -> list[tuple[str, bytes]]:
    """`count` different side x side RGBA PNGs: a coloured shape on a transparent background."""
    files = []
    for index in range(count):
        image = Image.new("RGBA", (side, side), (255, 255, 255, 0))
        ImageDraw.Draw(image).ellipse([side // 8, side // 8 + index * 16, side * 7 // 8, side * 7 // 8],
                                      fill=(40 * index % 256, 90, 160, 255))
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=1)
        files.append((f"drawn-{index}-{side}.png", buffer.getvalue()))
    return files


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one `file` field, and its content type."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def memory_mb(pid: int, field: str) -> float:
    """VmRSS or VmHWM of a process, in MB (1e6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def burst(port: int, pid: int, files: list[tuple[str, bytes]]) -> Burst:
    """Send every file at once (one connection each, released together); statuses and peak memory."""
    bodies = [multipart(name, data) for name, data in files]
    statuses: list[int] = [0] * len(files)
    details: list[str] = [""] * len(files)
    ready = threading.Barrier(len(files) + 1)

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        connection.connect()
        body, content_type = bodies[index]
        ready.wait()
        try:
            connection.request("POST", "/recommend?k=5", body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            answer = json.loads(response.read())
            statuses[index] = response.status
            details[index] = answer.get("detail", "") if isinstance(answer, dict) else ""
        except (OSError, http.client.HTTPException, ValueError) as exc:
            statuses[index] = -1
            details[index] = f"no answer: {exc}"
        finally:
            connection.close()

    idle = memory_mb(pid, "VmRSS")
    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(files))]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return Burst(Counter(statuses), seconds, idle, memory_mb(pid, "VmHWM"), next((d for d in details if d), ""))


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_and_burst(catalog: Path, files: list[tuple[str, bytes]], warm_up: bytes, env: dict[str, str]) -> Burst:
    """A fresh `fashionrec serve` (so its VmHWM is this burst's), warmed up by one small upload, then the burst."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "fashionrec.cli", "serve", "--catalog", str(catalog),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, **env})
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server, timeout=300, health_path="/health")
        warm = burst(port, server.pid, [("warm-up.jpg", warm_up)])
        if warm.statuses != Counter({200: 1}):
            raise RuntimeError(f"the warm-up upload failed: {warm.detail}")
        return burst(port, server.pid, files)
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=load_settings().cache_dir / "bad-uploads-catalog")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--lifted", action="store_true", help="also run the bursts with the limits lifted")
    parser.add_argument("--max-rss-mb", type=float, default=1000.0)
    args = parser.parse_args()
    data = find_sample_data(args.data)
    index_images(data / "images", args.catalog, metadata=data / "styles.csv", model=MODEL, limit=args.limit,
                 progress=False)
    catalog = Catalog.open(args.catalog)
    photos = sorted((data / "queries_fullres").glob("*.jpg"))
    settings = load_settings()
    count = args.uploads
    photo_files = upscaled_jpegs(photos, count, (4500, 6000))
    photo_files = (photo_files * count)[:count]
    bomb = png_bomb(6300)
    kinds = [
        Kind("6300x6300 PNG (bomb)", [(f"bomb-{i}.png", bomb) for i in range(count)], 413),
        Kind("4500x6000 JPEG (photo)", photo_files, 200),
        Kind("4096x4096 RGBA PNG", drawn_rgba_pngs(count, 4096), 200),
    ]
    warm_up = photos[0].read_bytes()
    rule = {}
    lifted = {"FASHIONREC_MAX_UPLOAD_PIXELS": str(10**9), "FASHIONREC_DECODE_SLOTS": str(count)}
    rows, failures = [], []
    for kind in kinds:
        for label, env in [("rule", rule)] + ([("lifted", lifted)] if args.lifted else []):
            result = serve_and_burst(args.catalog, kind.files, warm_up, env)
            size_kb = sum(len(data) for _, data in kind.files) / len(kind.files) / 1000
            statuses = ", ".join(f"{count}x {status}" for status, count in sorted(result.statuses.items()))
            rows.append(f"| {kind.label} | {size_kb:,.0f} | {label} | {statuses} | {result.seconds:.1f} | "
                        f"{result.idle_rss_mb:.0f} | {result.peak_rss_mb:.0f} |")
            if label == "rule":
                if result.statuses != Counter({kind.expected: len(kind.files)}):
                    failures.append(f"{kind.label}: expected {kind.expected} for all, got {statuses} ({result.detail})")
                if result.peak_rss_mb > args.max_rss_mb:
                    failures.append(f"{kind.label}: peak RSS {result.peak_rss_mb:.0f} MB > {args.max_rss_mb:.0f} MB")
                if result.detail:
                    rows.append(f"|  | | | detail: {result.detail} | | | |")
    print(f"catalog: {len(catalog)} products, {catalog.model_name}; {count} uploads at once per row, each row on a "
          f"fresh `fashionrec serve`; rule: {settings.max_upload_pixels:,} pixels decoded in full, "
          f"{settings.max_upload_jpeg_pixels:,} for a JPEG (reduced-scale decoding), {settings.decode_slots} "
          f"decode slots; {os.cpu_count()} cores")
    print("| upload | kB each | limits | statuses | seconds | server RSS before MB | server peak RSS MB |")
    print("|---|--:|---|---|--:|--:|--:|")
    print("\n".join(rows))
    if failures:
        print("\n".join(["FAILED:"] + failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
