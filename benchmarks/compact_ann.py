"""Issue 24: 1M products in 1 GB. The compact search backend (`search.compact`, `--search ivf`): IVF over compact codes
in RAM, candidates re-ranked with the exact floats read from disk, measured in a fresh process as a server opens it.

    python benchmarks/compact_ann.py --catalog DIR [--sizes 100000,1000000] [--data tiled,mixed] [--queries 200]
        [--codes auto,sq8] [--work DIR]

`--codes`: the codes to compare, `auto` being what a catalog of that size gets (`search.compact.codes_for`: 4-bit
codes from 100,000 products, 8-bit below), `sq8` / `sq6` / `sq4` that many bits a dimension, `pq<bytes>` product
codes of that many bytes.

The catalog's search vectors are grown to each size two ways: `tiled` (each vector repeated with a little noise, as
benchmarks/speed.py does: clusters of near copies, easy for an inverted index) and `mixed` (each new vector a random
blend of two of the catalog's, unit length: new vectors spread between the real ones, the harder case). The index is
built by `CompactIndex.build` (what `search.select.open_ivf` runs on a catalog's blocks) and opened by
`CompactIndex.open` (its files' digests checked) in a fresh process per setting, which answers the probe queries and
reports p50, recall@10 against exact search, and its resident memory (VmRSS, of which file pages). The page cache
holds the floats file outside the process (the open reads it once to check it). Before this backend, a memory map of
the floats put 2.3 GB in RSS through the kernel's fault-around; an HNSW graph holds every float (2.3 GB at 1M).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

K = 10


def tiled(base: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`base` repeated to `size` rows with a little noise (no two rows equal), unit length."""
    rng = np.random.default_rng(seed)
    vectors = np.concatenate([base] * int(np.ceil(size / len(base))))[:size]
    vectors = vectors + rng.normal(0, 0.02, vectors.shape).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def mixed(base: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`base` and, past it, blends of two random rows of it (weights 0.2-0.8), unit length."""
    rng = np.random.default_rng(seed)
    out = np.empty((size, base.shape[1]), dtype=np.float32)
    out[:len(base)] = base[:size]
    for start in range(len(base), size, 100_000):
        count = min(100_000, size - start)
        share = rng.uniform(0.2, 0.8, (count, 1)).astype(np.float32)
        block = share * base[rng.integers(0, len(base), count)] + (1 - share) * base[rng.integers(0, len(base), count)]
        out[start:start + count] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def exact_truth(vectors: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """The exact top K of each probe query (inner product), in blocks."""
    scores = np.concatenate([probe @ vectors[i:i + 200_000].T for i in range(0, len(vectors), 200_000)], axis=1)
    return np.argsort(-scores, axis=1)[:, :K]


def paths_in(work: Path, name: str) -> dict[str, Path]:
    return {"codes": work / f"{name}.faiss", "floats": work / f"{name}.npy", "record": work / f"{name}.json"}


def measure(work: Path, name: str, rows: int, dim: int, nprobe: int, probe_path: Path, truth_path: Path,
            codes: str) -> dict:
    """In this (fresh) process: open the index as a server does, answer the probes."""
    from fashionrec.search.compact import CompactIndex

    start = time.perf_counter()
    index = CompactIndex.open(paths_in(work, f"{name}-{codes}"), name, rows, dim, codes)
    opened = time.perf_counter() - start
    index._index.nprobe = nprobe
    probe, truth = np.load(probe_path), np.load(truth_path)
    times, hits = [], 0
    for query, want in zip(probe, truth):
        start = time.perf_counter()
        found = index.search(query, K)
        times.append(time.perf_counter() - start)
        hits += len(set(found.positions.tolist()) & set(want.tolist()))
    status = Path("/proc/self/status").read_text()
    rss = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
           if line.startswith(("VmRSS", "VmHWM", "RssFile"))}
    return {"p50_ms": statistics.median(times) * 1000, "recall": hits / (K * len(probe)), "open_s": opened,
            "rss_mb": rss["VmRSS"] / 1024, "peak_mb": rss["VmHWM"] / 1024, "file_mb": rss["RssFile"] / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--data", default="tiled,mixed")
    parser.add_argument("--nprobe", default="8,16,32")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--codes", default="auto")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--measure", nargs=8, help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    if args.measure:
        work, name, rows, dim, nprobe, probe_path, truth_path, codes = args.measure
        print(json.dumps(measure(Path(work), name, int(rows), int(dim), int(nprobe), Path(probe_path),
                                 Path(truth_path), codes)))
        return 0
    from fashionrec import Catalog
    from fashionrec.search.compact import RERANK, CompactIndex, codes_for

    base = np.asarray(Catalog.open(args.catalog).vectors, dtype=np.float32)
    work = args.work or Path(tempfile.mkdtemp(prefix="fashionrec-compact-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"| products | vectors | codes | build s | nprobe | p50 ms | recall@10 | open s | RSS MB | of it, file pages "
          f"MB | peak RSS MB |  ({RERANK} re-ranked, {base.shape[1]}-d)")
    print("|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for size in [int(s) for s in args.sizes.split(",")]:
        for data in args.data.split(","):
            vectors = {"tiled": tiled, "mixed": mixed}[data](base, size)
            rng = np.random.default_rng(2)
            probe = vectors[rng.choice(size, args.queries, replace=False)] + rng.normal(0, 0.02, (args.queries,
                                                                                                   base.shape[1]))
            probe = (probe / np.linalg.norm(probe, axis=1, keepdims=True)).astype(np.float32)
            name = f"{data}-{size}"
            probe_path, truth_path = work / f"probe-{name}.npy", work / f"truth-{name}.npy"
            np.save(probe_path, probe)
            np.save(truth_path, exact_truth(vectors, probe))
            dim = vectors.shape[1]
            for codes in args.codes.split(","):
                codes = codes_for(size) if codes == "auto" else codes
                start = time.perf_counter()
                CompactIndex.build((vectors[i:i + 65_536] for i in range(0, size, 65_536)), size, dim,
                                   paths_in(work, f"{name}-{codes}"), name, codes).close()
                built = time.perf_counter() - start
                for nprobe in [int(n) for n in args.nprobe.split(",")]:
                    shown = subprocess.run([sys.executable, __file__, "--measure", str(work), name, str(size),
                                            str(dim), str(nprobe), str(probe_path), str(truth_path), codes],
                                           capture_output=True, text=True, check=True)
                    row = json.loads(shown.stdout.strip().splitlines()[-1])
                    print(f"| {size:,} | {data} | {codes} | {built:.0f} | {nprobe} | {row['p50_ms']:.2f} | "
                          f"{row['recall']:.3f} | {row['open_s']:.1f} | {row['rss_mb']:.0f} | {row['file_mb']:.0f} | "
                          f"{row['peak_mb']:.0f} |", flush=True)
                for path in paths_in(work, f"{name}-{codes}").values():
                    path.unlink()  # 2.4 GB of floats at 1M a setting: not kept
            del vectors
    return 0


if __name__ == "__main__":
    sys.exit(main())
