"""Photos of people: is the worn garment's product found? Recall of the VITON-HD pairs, per query method.

    python benchmarks/onmodel.py --catalog DIR [--pairs ../shared/data/onmodel-viton-hd] [--work DIR]
                                 [--fullres ../shared/data/fashion-product-images/queries_fullres]

Issue 23's measurement. `--catalog` is an indexed catalog of the shared sample (the 7,254 products are the
distractors); it is copied to `--work` and the pairs' 23 product photos are written into the copy (as a shop adds
products: `index.write.put_products`, with the set's styles.csv). Then each person photo is a query and the rank
of its own product is recorded, for each method of turning the photo into queries:

- `whole photo`: the photo as it is (what fashionrec does today);
- `upper-body box`: a fixed crop of the upper body of a standing, centred person (x 15-85%, y 12-62%), as a floor
  that any garment finder must beat;
- `regions: main`: what `by_image` answers by default (the most probable garment's region, its answers kept to
  its kind where the catalog says kinds), no tap;
- `regions: tapped top`: the region a shopper wearing-a-top photo would tap: the `top` region when one is found
  (else the main one);
- `regions: best region`: the best rank over all regions found (an upper bound of tapping).

Prints recall@1/5/20 as counts of the 23 (one pair is 4 points), per articleType of the pairs, then the studio
check (each full-resolution photo's own product first, regions on) and the cost: `by_image` on photos without a
person (the full-resolution packshots and 100 sample products) with regions on against off, and the images each
person photo sends through the model. The set's terms (its SOURCE.md) forbid keeping
its images or anything made from them: the copy lives under `--work` (a temporary folder by default) and is
deleted at the end; nothing is written into the project.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from fashionrec import Catalog, Recommender
from fashionrec.index.write import ProductWrite, put_products
from fashionrec.models.embed import load_model

DEPTH = 100
Method = Callable[[Recommender, Image.Image], list[list[str]]]  # a photo to ranked id lists (best one counts)


def _upper_body(image: Image.Image) -> Image.Image:
    return image.crop((round(0.15 * image.width), round(0.12 * image.height),
                       round(0.85 * image.width), round(0.62 * image.height)))


def _ids(matches) -> list[str]:
    return [m.id for m in matches]


METHODS: dict[str, Method] = {
    "whole photo (before)": lambda rec, image: [_ids(rec.by_image(image, k=DEPTH, regions=False).results)],
    "upper-body box": lambda rec, image: [_ids(rec.by_image(_upper_body(image), k=DEPTH, regions=False).results)],
    "regions: main (no tap)": lambda rec, image: [_ids(rec.by_image(image, k=DEPTH).results)],
    "regions: tapped top": lambda rec, image: [_ids(rec.by_image(image, k=DEPTH, region="top").results)],
    "regions: best region": lambda rec, image: [_ids(r.results) for r in rec.by_image(image, k=DEPTH).regions]
    or [_ids(rec.by_image(image, k=DEPTH).results)],
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


def _article_types(pairs_dir: Path, names: list[str]) -> list[str]:
    """Each pair's articleType (the set's styles.csv)."""
    with open(pairs_dir / "styles.csv", newline="", encoding="utf-8") as handle:
        types = {row["id"]: row["articleType"] for row in csv.DictReader(handle)}
    return [types.get(name, "?") for name in names]


def ranks(recommender: Recommender, pairs_dir: Path, names: list[str], method: Method) -> list[int | None]:
    """The rank (1 = first) of each pair's own product among the answers to its person photo, None past DEPTH."""
    found = []
    for name in names:
        with Image.open(pairs_dir / "person" / f"{name}.jpg") as photo:
            answers = method(recommender, photo.convert("RGB"))
        wanted = f"vitonhd-{name}"
        places = [ids.index(wanted) + 1 for ids in answers if wanted in ids]
        found.append(min(places) if places else None)
    return found


def recall_row(label: str, found: list[int | None]) -> str:
    """One table row: R@1/5/20 as counts, and the median rank."""
    counts = [sum(r is not None and r <= depth for r in found) for depth in (1, 5, 20)]
    known = sorted(r if r is not None else DEPTH + 1 for r in found)
    median = known[len(known) // 2]
    return (f"| {label} | " + " | ".join(f"{c} of {len(found)}" for c in counts)
            + f" | {median if median <= DEPTH else f'>{DEPTH}'} |")


def studio_and_cost(recommender: Recommender, fullres: Path, sample: Path, pairs_dir: Path, names: list[str]) -> None:
    """The full-resolution photos' own products first (regions on), and what regions cost."""
    photos = sorted(fullres.glob("*.jpg"))
    first = sum(recommender.by_image(p).results[0].id == p.stem for p in photos)
    print(f"\nStudio photos: {first} of {len(photos)} full-resolution photos give their own product first "
          "(regions on, default colour weight)")
    packshots = [p for p in photos if not recommender.by_image(p).regions]
    packshots += sorted((sample / "images").glob("*.jpg"))[:100]
    off, on = [], []
    for path in packshots:  # interleaved, so that load from elsewhere on the machine hits both alike
        data = path.read_bytes()
        recommender.by_image(data)  # warm
        for _ in range(3):
            for regions, times in ((False, off), (True, on)):
                start = time.perf_counter()
                recommender.by_image(data, regions=regions)
                times.append(time.perf_counter() - start)
    p50_off, p50_on = float(np.median(off)) * 1000, float(np.median(on)) * 1000
    print(f"Photos answered whole ({len(packshots)}: packshots among them and 100 sample products, 3 runs each, "
          f"interleaved): by_image p50 {p50_off:.1f} ms regions off (as before), {p50_on:.1f} ms on "
          f"({p50_on / p50_off - 1:+.1%})")
    calls = _count_model_images(recommender, [pairs_dir / "person" / f"{n}.jpg" for n in names])
    print(f"Person photos: at most {max(calls)} images through the model per photo (mean {np.mean(calls):.2f}), "
          "in two model calls")


def _count_model_images(recommender: Recommender, paths: list[Path]) -> list[int]:
    """How many images each query sends through the model (the embedder's calls, counted by batch rows)."""
    embedder = recommender.embedder
    counted = []
    plain, located = embedder.embed_batch, embedder.embed_and_locate
    seen = [0]

    def embed_batch(batch):
        seen[0] += len(batch)
        return plain(batch)

    def embed_and_locate(batch):
        seen[0] += len(batch)
        return located(batch)

    embedder.embed_batch, embedder.embed_and_locate = embed_batch, embed_and_locate
    try:
        for path in paths:
            seen[0] = 0
            recommender.by_image(path)
            counted.append(seen[0])
    finally:
        del embedder.embed_batch, embedder.embed_and_locate
    return counted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True, help="an indexed catalog of the shared sample")
    parser.add_argument("--pairs", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "onmodel-viton-hd")
    parser.add_argument("--fullres", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "fashion-product-images" / "queries_fullres")
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
        kinds = _article_types(args.pairs, names)
        print("| query | R@1 | R@5 | R@20 | median rank |")
        print("|---|--:|--:|--:|--:|")
        per_kind = {}
        for label, method in METHODS.items():
            found = ranks(recommender, args.pairs, names, method)
            per_kind[label] = found
            print(recall_row(label, found), flush=True)
        print("\nPer articleType of the pairs, R@5 counts:")
        print("| query | " + " | ".join(f"{k} ({kinds.count(k)})" for k in sorted(set(kinds))) + " |")
        print("|---|" + "--:|" * len(set(kinds)))
        for label, found in per_kind.items():
            print(f"| {label} | " + " | ".join(
                str(sum(r is not None and r <= 5 for r, kind in zip(found, kinds) if kind == k))
                for k in sorted(set(kinds))) + " |")
        studio_and_cost(recommender, args.fullres, args.fullres.parent, args.pairs, names)
    finally:
        shutil.rmtree(copy if args.work else work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
