"""Issue 24, first measurement: which index answers 1M products in 1 GB? Compact codes in RAM, floats on disk.

    python benchmarks/compact_ann.py --catalog DIR [--sizes 100000,1000000] [--queries 200] [--work DIR]

The catalog's search vectors, tiled with noise to each size (as benchmarks/speed.py does), are written to a float32
file; each candidate index is built over them and written; then a fresh process per candidate opens the index and
reads the candidates' rows of the float file with pread (as a server would: the page cache holds what is read often,
outside the process), answers the probe queries, and reports its p50, recall@10 against exact search, and its resident
memory (VmRSS; a memory map of the float file instead put 2.3 GB of it in RSS through the kernel's fault-around).
Candidates: FAISS HNSW over 8-bit scalar-quantised codes (HNSW-SQ8) and IVF over the same codes, each re-ranking
its candidates with the exact floats read from the memory-mapped file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

K, RERANK = 10, 100


def tiled(base: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`base` repeated to `size` rows with a little noise (no two rows equal), unit length."""
    rng = np.random.default_rng(seed)
    vectors = np.concatenate([base] * int(np.ceil(size / len(base))))[:size]
    vectors = vectors + rng.normal(0, 0.02, vectors.shape).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def exact_truth(vectors: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """The exact top K of each probe query (inner product), in blocks."""
    scores = np.concatenate([probe @ vectors[i:i + 200_000].T for i in range(0, len(vectors), 200_000)], axis=1)
    return np.argsort(-scores, axis=1)[:, :K]


def build(kind: str, vectors: np.ndarray, target: Path) -> float:
    """Build one candidate over `vectors`, write it to `target`; returns the seconds it took."""
    import faiss

    start = time.perf_counter()
    dim = vectors.shape[1]
    if kind == "hnsw-sq8":
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, 16, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
        index.train(vectors[:: max(1, len(vectors) // 100_000)])
        index.add(vectors)
    else:
        nlist = int(2 * np.sqrt(len(vectors)))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.train(vectors[np.random.default_rng(1).choice(len(vectors), min(len(vectors), 30 * nlist), False)])
        index.add(vectors)
    faiss.write_index(index, str(target))
    return time.perf_counter() - start


def measure(kind: str, index_path: Path, floats: Path, probe_path: Path, truth_path: Path, search: int) -> dict:
    """In this (fresh) process: open the index and the memory-mapped floats, answer the probes with a re-rank."""
    import faiss

    index = faiss.read_index(str(index_path))
    if kind == "hnsw-sq8":
        index.hnsw.efSearch = search
    else:
        index.nprobe = search
    mapped = np.load(floats, mmap_mode="r")  # only for the file's layout: the rows are read with pread
    offset, row_bytes, dim = mapped.offset, mapped.shape[1] * 4, mapped.shape[1]
    del mapped
    handle = os.open(floats, os.O_RDONLY)
    probe, truth = np.load(probe_path), np.load(truth_path)
    times, hits = [], 0
    for query, want in zip(probe, truth):
        start = time.perf_counter()
        _, candidates = index.search(query[None, :], RERANK)
        rows = np.sort(candidates[0][candidates[0] >= 0])
        block = b"".join(os.pread(handle, row_bytes, offset + int(row) * row_bytes) for row in rows)
        scores = np.frombuffer(block, dtype=np.float32).reshape(-1, dim) @ query  # exact floats, candidates only
        found = rows[np.argsort(-scores)[:K]]
        times.append(time.perf_counter() - start)
        hits += len(set(found.tolist()) & set(want.tolist()))
    status = Path("/proc/self/status").read_text()
    rss = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
           if line.startswith(("VmRSS", "VmHWM", "RssFile"))}
    return {"p50_ms": statistics.median(times) * 1000, "recall": hits / (K * len(probe)),
            "rss_mb": rss["VmRSS"] / 1024, "peak_mb": rss["VmHWM"] / 1024, "file_mb": rss["RssFile"] / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--measure", nargs=6, help=argparse.SUPPRESS)  # the child: kind index floats probe truth n
    args = parser.parse_args()
    if args.measure:
        kind, index_path, floats, probe_path, truth_path, search = args.measure
        print(json.dumps(measure(kind, Path(index_path), Path(floats), Path(probe_path), Path(truth_path),
                                 int(search))))
        return 0
    from fashionrec import Catalog

    base = np.asarray(Catalog.open(args.catalog).vectors, dtype=np.float32)
    work = args.work or Path(tempfile.mkdtemp(prefix="fashionrec-compact-"))
    print("| products | index | build s | search | p50 ms | recall@10 | RSS MB | of it, file pages MB | peak RSS MB |")
    print("|--:|---|--:|---|--:|--:|--:|--:|--:|")
    for size in [int(s) for s in args.sizes.split(",")]:
        vectors = tiled(base, size)
        rng = np.random.default_rng(2)
        probe = vectors[rng.choice(size, args.queries, replace=False)] + rng.normal(0, 0.02, (args.queries,
                                                                                               base.shape[1]))
        probe = (probe / np.linalg.norm(probe, axis=1, keepdims=True)).astype(np.float32)
        floats, probe_path, truth_path = work / f"floats-{size}.npy", work / f"probe-{size}.npy", work / f"truth-{size}.npy"
        np.save(floats, vectors)
        np.save(probe_path, probe)
        np.save(truth_path, exact_truth(vectors, probe))
        for kind, searches in (("hnsw-sq8", (64, 128, 256)), ("ivf-sq8", (16, 32, 64))):
            index_path = work / f"{kind}-{size}.faiss"
            built = build(kind, vectors, index_path)
            for search in searches:
                shown = subprocess.run([sys.executable, __file__, "--measure", kind, str(index_path), str(floats),
                                        str(probe_path), str(truth_path), str(search)],
                                       capture_output=True, text=True, check=True)
                row = json.loads(shown.stdout.strip().splitlines()[-1])
                name = "efSearch" if kind == "hnsw-sq8" else "nprobe"
                print(f"| {size:,} | {kind} + re-rank of {RERANK} | {built:.0f} | {name} {search} | "
                      f"{row['p50_ms']:.2f} | {row['recall']:.3f} | {row['rss_mb']:.0f} | {row['file_mb']:.0f} | "
                      f"{row['peak_mb']:.0f} |",
                      flush=True)
        del vectors
    return 0


if __name__ == "__main__":
    sys.exit(main())
