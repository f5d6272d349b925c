"""How long a catalog snapshot takes to open and to name (its derived keys), and the memory it leaves.

Each measure runs in a fresh process, as a server opens every new snapshot: at 1M products, before and after a
change, run alternately.

    python benchmarks/catalog_open.py --catalog DIR [--rounds 3] [--before OTHER_CHECKOUT/src]

`--before` runs the same measure with another source tree first in each round (`PYTHONPATH`), so the two compare
within minutes on a machine whose speed drifts. The 1M-product catalog is what `benchmarks/server_memory.py` writes.
Resident memory is VmRSS after the keys, and the peak VmHWM, read from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def measure(catalog: Path) -> dict:
    from fashionrec.catalog import Catalog

    started = time.perf_counter()
    snapshot = Catalog.open(catalog)
    opened = time.perf_counter()
    keys = snapshot.keys
    named = time.perf_counter()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"products": len(snapshot), "open_s": opened - started, "keys_s": named - opened, "key": keys.search,
            "rss_mb": int(status["VmRSS"].split()[0]) / 1024, "peak_mb": int(status["VmHWM"].split()[0]) / 1024}


def run(catalog: Path, source: str | None) -> dict:
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = source
    done = subprocess.run([sys.executable, __file__, "--measure", "--catalog", str(catalog)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"measuring {catalog} failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="another source tree (its src/ folder), measured first in each round")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.catalog)))
        return
    if args.before and not (Path(args.before) / "fashionrec" / "__init__.py").is_file():
        sys.exit(f"--before {args.before} holds no fashionrec package: give a checkout's src/ folder")
    print("| code | round | products | open s | keys s | RSS after MB | peak MB | search key |")
    print("|---|--:|--:|--:|--:|--:|--:|---|")
    for round_number in range(1, args.rounds + 1):
        for name, source in ([("before", args.before)] if args.before else []) + [("this", None)]:
            row = run(args.catalog, source)
            print(f"| {name} | {round_number} | {row['products']:,} | {row['open_s']:.1f} | {row['keys_s']:.1f} | "
                  f"{row['rss_mb']:.0f} | {row['peak_mb']:.0f} | {row['key']} |", flush=True)


if __name__ == "__main__":
    main()
