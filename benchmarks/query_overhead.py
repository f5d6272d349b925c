"""What `by_image` costs beyond the model: its p50 against the model's forward pass p50, in one run.

    python benchmarks/query_overhead.py --catalog DIR [--photos ../shared/data/fashion-product-images/queries_fullres]
                                        [--rounds 5]

Issue 24's measurement. For each photo (the 17 full-resolution photos by default, as bytes, as an upload arrives) and
round, interleaved so that other load on the machine hits both alike:
- `forward`: the model alone on the photo's prepared input (batch 1), through the same graph and outputs `by_image`
  uses (`embed_and_locate` where the model locates garments);
- `by_image`: the whole query at the default k and colour weight;
- the stages of the query, timed apart: decode, picture (catalog look, model input, colour), search and answer.
Prints the p50 of each and the ratio by_image / forward (issue 24's goal: at most 1.15).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from fashionrec import Catalog, Recommender
from fashionrec.index.read import read_picture
from fashionrec.threads import one_blas_thread


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--photos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "fashion-product-images" / "queries_fullres")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--blas-threads", choices=("one", "default"), default="one",
                        help="one: as the API and the web app run (fashionrec.threads); default: numpy's own")
    args = parser.parse_args()
    if args.blas_threads == "one":
        one_blas_thread()
    photos = [path.read_bytes() for path in sorted(args.photos.glob("*.jpg"))]
    if not photos:
        sys.exit(f"no photos in {args.photos}")
    recommender = Recommender(Catalog.open(args.catalog), search="exact")
    view, embedder = recommender._view, recommender.embedder
    forward = embedder.embed_and_locate if embedder.locates else embedder.embed_batch
    prepared = [read_picture(view._decode(data), embedder.spec.preprocessing, view._query_size,
                             colour=False).pixels[None] for data in photos]
    times: dict[str, list[float]] = {"forward": [], "by_image": [], "decode": [], "picture": []}
    recommender.by_image(photos[0])
    for _ in range(args.rounds):
        for data, pixels in zip(photos, prepared):
            start = time.perf_counter()
            forward(pixels)
            times["forward"].append(time.perf_counter() - start)
            start = time.perf_counter()
            recommender.by_image(data)
            times["by_image"].append(time.perf_counter() - start)
            start = time.perf_counter()
            photo = view._decode(data)
            times["decode"].append(time.perf_counter() - start)
            start = time.perf_counter()
            read_picture(photo, embedder.spec.preprocessing, view._query_size, colour=recommender.catalog.has_colour)
            times["picture"].append(time.perf_counter() - start)
    p50 = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"{len(photos)} photos x {args.rounds} rounds, {embedder.name}, catalog of {len(recommender.catalog):,} "
          f"products, interleaved, BLAS threads: {args.blas_threads}\n")
    print("| step | p50 ms | p90 ms |")
    print("|---|--:|--:|")
    for name, values in times.items():
        print(f"| {name} | {p50[name]:.1f} | {np.percentile(values, 90) * 1000:.1f} |")
    rest = p50["by_image"] - p50["forward"] - p50["decode"] - p50["picture"]
    print(f"| search, answer and the rest (by_image - the above) | {rest:.1f} | |")
    print(f"\nby_image p50 / forward p50 = {p50['by_image'] / p50['forward']:.2f} (goal: at most 1.15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
