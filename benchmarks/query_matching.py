"""Real full-resolution photos against the sample catalog: recall@1/@5 with and without query matching.

    python benchmarks/query_matching.py [--catalog DIR] [--data DIR]

Indexes the whole sample into DIR (default: the demo catalog in the cache; incremental, so a built one is
reused), then queries with every photo in queries_fullres/ and prints where each photo's product ranks.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fashionrec.catalog.catalog import Catalog
from fashionrec.index.run import index_images
from fashionrec.config import load_settings
from fashionrec.demo import find_sample_data
from fashionrec.models.embed import load_model
from fashionrec.recommend.recommender import Recommender

DEPTH = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=load_settings().cache_dir / "demo-catalog")
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    data = find_sample_data(args.data)
    index_images(data / "images", args.catalog, metadata=data / "styles.csv")
    catalog = Catalog.open(args.catalog)
    embedder = load_model(catalog.model_name, catalog.weights_path)
    photos = sorted((data / "queries_fullres").glob("*.jpg"))
    print(f"catalog: {len(catalog)} products, {catalog.model_name}, typical image size {catalog.typical_image_size}")
    print(f"{'query matching':15} | recall@1 | recall@5 | s/query | rank of each photo's product (>{DEPTH}: -)")
    for matching in (False, True):
        recommender = Recommender(catalog, embedder, match_queries=matching)
        ranks, start = [], time.perf_counter()
        for photo in photos:
            ids = [m.id for m in recommender.by_image(photo, k=DEPTH).results]
            ranks.append(ids.index(photo.stem) + 1 if photo.stem in ids else None)
        per_query = (time.perf_counter() - start) / len(photos)
        at1 = sum(r == 1 for r in ranks) / len(ranks)
        at5 = sum(r is not None and r <= 5 for r in ranks) / len(ranks)
        shown = " ".join(str(r) if r else "-" for r in ranks)
        print(f"{'on' if matching else 'off':15} | {at1:8.2f} | {at5:8.2f} | {per_query:7.3f} | {shown}")


if __name__ == "__main__":
    main()
