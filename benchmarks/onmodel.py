"""Photos of people: is the worn garment's product found? Recall of the VITON-HD pairs, per query method.

    python benchmarks/onmodel.py --catalog DIR [--pairs ../shared/data/onmodel-viton-hd] [--work DIR]

Issue 23's measurement. `--catalog` is an indexed catalog of the shared sample (the 7,254 products are the
distractors); it is copied to `--work` and the pairs' 23 product photos are written into the copy (as a shop adds
products: `index.write.put_products`, with the set's styles.csv). Then each person photo is a query and the rank
of its own product is recorded, for each method of turning the photo into queries:

- `whole photo`: the photo as it is (what fashionrec does today);
- `upper-body box`: a fixed crop of the upper body of a standing, centred person (x 15-85%, y 12-62%), as a floor
  that any garment finder must beat.

Prints recall@1/5/20 as counts of the 23 (one pair is 4 points). The set's terms (its SOURCE.md) forbid keeping
its images or anything made from them: the copy lives under `--work` (a temporary folder by default) and is
deleted at the end; nothing is written into the project.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from fashionrec import Catalog, Recommender
from fashionrec.index.write import ProductWrite, put_products
from fashionrec.models.embed import load_model

DEPTH = 100
METHODS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "whole photo": lambda image: image,
    "upper-body box": lambda image: image.crop((round(0.15 * image.width), round(0.12 * image.height),
                                                 round(0.85 * image.width), round(0.62 * image.height))),
}


def add_pairs(catalog_dir: Path, pairs_dir: Path) -> list[str]:
    """Write the set's product photos into the catalog (ids `vitonhd-<pair>`); returns the pair names."""
    with open(pairs_dir / "styles.csv", newline="", encoding="utf-8") as handle:
        rows = {row["id"]: {k: v for k, v in row.items() if k != "id"} for row in csv.DictReader(handle)}
    names = sorted(path.stem for path in (pairs_dir / "product").glob("*.jpg"))
    catalog = Catalog.open(catalog_dir)
    columns = set(catalog.columns)
    writes = [ProductWrite(f"vitonhd-{name}", pairs_dir / "product" / f"{name}.jpg",
                           {k: v for k, v in rows.get(name, {}).items() if k in columns and v})
              for name in names]
    put_products(catalog_dir, writes, load_model(catalog.model_name))
    return names


def ranks(recommender: Recommender, pairs_dir: Path, names: list[str],
          method: Callable[[Image.Image], Image.Image]) -> list[int | None]:
    """The rank (1 = first) of each pair's own product among the answers to its person photo, None past DEPTH."""
    found = []
    for name in names:
        with Image.open(pairs_dir / "person" / f"{name}.jpg") as photo:
            query = method(photo.convert("RGB"))
        ids = [m.id for m in recommender.by_image(query, k=DEPTH).results]
        wanted = f"vitonhd-{name}"
        found.append(ids.index(wanted) + 1 if wanted in ids else None)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True, help="an indexed catalog of the shared sample")
    parser.add_argument("--pairs", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "onmodel-viton-hd")
    parser.add_argument("--work", type=Path, default=None, help="where the catalog copy goes (default: a temp dir)")
    args = parser.parse_args()
    if not (args.pairs / "person").is_dir():
        sys.exit(f"the VITON-HD pairs are absent (expected at {args.pairs})")
    work = args.work or Path(tempfile.mkdtemp(prefix="fashionrec-onmodel-"))
    copy = work / "catalog"
    try:
        shutil.copytree(args.catalog, copy)
        names = add_pairs(copy, args.pairs)
        recommender = Recommender(Catalog.open(copy), search="exact")
        print(f"{len(names)} on-model photos, their products among {len(recommender.catalog):,} catalog products "
              f"({recommender.catalog.model_name}, default colour weight)\n")
        print("| query | R@1 | R@5 | R@20 | median rank |")
        print("|---|--:|--:|--:|--:|")
        for label, method in METHODS.items():
            found = ranks(recommender, args.pairs, names, method)
            counts = [sum(r is not None and r <= depth for r in found) for depth in (1, 5, 20)]
            known = sorted(r if r is not None else DEPTH + 1 for r in found)
            median = known[len(known) // 2]
            print(f"| {label} | " + " | ".join(f"{c} of {len(names)}" for c in counts)
                  + f" | {median if median <= DEPTH else f'>{DEPTH}'} |", flush=True)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
