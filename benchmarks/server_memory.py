"""A REST API server's resident memory on a large catalog (1M products), searched through the compact index.

    python benchmarks/server_memory.py --catalog DEMO --products 1000000 --work DIR [--queries 200] [--photo-rounds 1]

No catalog of a million real products exists here, so one is written from DEMO (a catalog indexed from the sample):
its products repeated until there are `--products`, each copy a product of its own (id `<id>-<copy>`, its model
vector moved by a little noise and brought back to unit length, its own image hash, its display name numbered; the
same photo file, metadata and colour), written through the catalog's own store in batches, as an indexing run
writes. It is kept in DIR and used again by later runs.

Then, each in a process of its own: the compact index is built (`search.select.open_ivf`, as a first server start
does), and a `fashionrec serve --search ivf` is started on it, asked `--queries` times for "more like this" of
random products and 17 times with the sample's full-resolution photos (that, `--photo-rounds` times), and its memory
read from /proc (VmRSS and its parts: anonymous memory, and mapped files), at each stage. Prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.catalog.rows import FileStamp, ProductRow
from fashionrec.catalog.store import CatalogStore
from fashionrec.demo import find_sample_data
from fashionrec.imaging.colour import ColourDescriptor, Swatch
from fashionrec.launch import stop, wait_until_up

BATCH = 20_000
NOISE = 0.02  # per-dimension noise, before the vector is brought back to unit length


def write_large_catalog(source: Path, target: Path, products: int, seed: int = 0) -> None:
    """`target`: a catalog of `products` products made from `source`'s (see the module docstring)."""
    if target.exists():
        if len(Catalog.open(target)) == products:
            return
        shutil.rmtree(target)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    rng = np.random.default_rng(seed)
    with CatalogStore(partial) as store:
        stored = store.load()
        dim = int(store.info()["dim"])
        vectors = np.concatenate(list(store.vector_blocks(dim)))
        histograms = np.concatenate(list(store.colour_blocks()))
        count = len(stored.ids)
        written = count
        copy = 0
        while written < products:
            copy += 1
            for start in range(0, count, BATCH):
                rows = range(start, min(count, start + BATCH, start + products - written))
                if not rows:
                    break
                noisy = vectors[rows.start:rows.stop] + rng.normal(0, NOISE, (len(rows), dim)).astype(np.float32)
                noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
                store.write_batch(stored.folders[0], [
                    _copy_of(stored, row, copy, noisy[i], histograms[row]) for i, row in enumerate(rows)])
                written += len(rows)
    os.replace(partial, target)


def _copy_of(stored, row: int, copy: int, vector: np.ndarray, histogram: np.ndarray) -> ProductRow:
    product_id = f"{stored.ids[row]}-{copy}"
    metadata = dict(stored.metadata[row])
    if metadata.get("productDisplayName"):
        metadata["productDisplayName"] = f"{metadata['productDisplayName']} {copy}"
    swatches = tuple(Swatch(s["rgb"], s["share"]) for s in json.loads(stored.swatches[row] or "[]"))
    stamp = FileStamp(stored.paths[row], 1000, 0, hashlib.sha256(product_id.encode()).hexdigest())
    colour = ColourDescriptor(histogram, swatches) if stored.colour_versions[row] else None
    return ProductRow(product_id, stored.folders[row], stamp, vector, metadata, colour)


def build_index(catalog_dir: Path) -> tuple[float, float]:
    """(seconds, peak MB) of opening the catalog and building its compact index (or checking the one built) in a
    process of its own."""
    code = ("import sys; from fashionrec.catalog.catalog import Catalog; "
            "from fashionrec.search.select import open_ivf; open_ivf(Catalog.open(sys.argv[1]))")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(catalog_dir)], check=True)
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def memory(pid: int) -> dict[str, float]:
    """The process's VmRSS, RssAnon, RssFile and VmHWM, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def ask(port: int, requests: list[tuple[str, str, bytes | None, dict]]) -> list[float]:
    """Send the requests over one connection; their latencies (s). Every answer must be a 200 with results."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    latencies = []
    for method, path, body, headers in requests:
        started = time.perf_counter()
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        latencies.append(time.perf_counter() - started)
        if response.status != 200 or not json.loads(answer)["results"]:
            raise RuntimeError(f"{method} {path}: {response.status} {answer[:200]!r}")
    connection.close()
    return latencies


def upload(photo: Path) -> tuple[str, str, bytes, dict]:
    boundary = "fashionrec-benchmark-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{photo.name}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return "POST", "/recommend?k=5", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True, help="a catalog indexed from the sample")
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, required=True, help="where the large catalog is written and kept")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--photo-rounds", type=int, default=1, help="the 17 uploads this many times, memory after each")
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    target = args.work / f"catalog-{args.products}"
    started = time.perf_counter()
    write_large_catalog(args.catalog, target, args.products)
    wrote = time.perf_counter() - started
    build_s, build_peak = build_index(target)
    catalog = Catalog.open(target)
    ids = random.Random(0).sample(catalog.ids, min(args.queries, len(catalog)))
    photos = sorted((find_sample_data(args.data) / "queries_fullres").glob("*.jpg"))
    del catalog

    server = subprocess.Popen([sys.executable, "-m", "fashionrec.cli", "serve", "--catalog", str(target),
                               "--search", "ivf", "--port", str(args.port)],
                              stdout=subprocess.DEVNULL, stderr=(args.work / "server.log").open("w"))
    stages = []
    started = time.perf_counter()
    try:
        wait_until_up(f"http://127.0.0.1:{args.port}", server, timeout=900, health_path="/health")
        up_s = time.perf_counter() - started
        stages.append(("started (catalog, index and model open)", memory(server.pid), None))
        similar = ask(args.port, [("GET", f"/products/{i}/similar?k=5", None, {}) for i in ids])
        stages.append((f"after {len(ids)} 'more like this'", memory(server.pid), similar))
        for round_number in range(1, args.photo_rounds + 1):  # does the memory settle, or grow with each photo?
            uploaded = ask(args.port, [upload(photo) for photo in photos])
            stages.append((f"after {len(photos) * round_number} photo uploads", memory(server.pid), uploaded))
    finally:
        stop(server)
    print(f"{args.products:,} products in {target} (written, or opened to count them, in {wrote:.0f} s); the "
          f"catalog opened and its compact index built or checked in {build_s:.0f} s, peak {build_peak:.0f} MB; "
          f"the server answered /health {up_s:.0f} s after its start")
    print("| server stage | VmRSS MB | anonymous MB | mapped files MB | peak (VmHWM) MB | p50 ms |")
    print("|---|--:|--:|--:|--:|--:|")
    for name, fields, latencies in stages:
        p50 = f"{statistics.median(latencies) * 1000:.1f}" if latencies else ""
        print(f"| {name} | {fields['VmRSS']:.0f} | {fields['RssAnon']:.0f} | {fields['RssFile']:.0f} | "
              f"{fields['VmHWM']:.0f} | {p50} |")


if __name__ == "__main__":
    main()
