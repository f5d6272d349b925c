"""What a catalog snapshot holds in memory per product (its rows: ids, paths, hashes, metadata), and its peak while
being opened, measured with tracemalloc (Python's own allocations: numpy's arrays included, the search vectors not,
as a server searching the compact index never loads them).

    python benchmarks/catalog_memory.py --catalog DIR

The first snapshot is opened once untraced (imports, caches), then a second one traced, with its derived keys
computed (what every server does). The search space file (the whitening, a fixed size whatever the products: 3.4 MiB
for 512 dimensions) is shown apart, since it does not grow with the catalog.
"""

from __future__ import annotations

import argparse
import tracemalloc
from pathlib import Path

from fashionrec.catalog.catalog import Catalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True)
    args = parser.parse_args()
    Catalog.open(args.catalog)
    tracemalloc.start(10)
    catalog = Catalog.open(args.catalog)
    _ = catalog.keys, catalog.position(catalog.ids[0])  # what a server computes: the keys, the id -> row map
    held, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()
    loaded_by_space = snapshot.filter_traces([tracemalloc.Filter(True, "*catalog/space.py", all_frames=True)])
    space = sum(stat.size for stat in loaded_by_space.statistics("filename"))
    products = len(catalog)
    print(f"{products:,} products of {args.catalog}")
    print("| what | MB | bytes a product |")
    print("|---|--:|--:|")
    print(f"| held after opening | {held / 2**20:.1f} | {held / products:.0f} |")
    print(f"| of it, the search space file (fixed) | {space / 2**20:.1f} | |")
    print(f"| held, but the search space | {(held - space) / 2**20:.1f} | {(held - space) / products:.0f} |")
    print(f"| peak while opening | {peak / 2**20:.1f} | {peak / products:.0f} |")


if __name__ == "__main__":
    main()
