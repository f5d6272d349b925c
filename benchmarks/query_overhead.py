"""What `by_image` costs beyond the model: its p50 against the model's forward pass p50, in one run.

    python benchmarks/query_overhead.py --catalog DIR [--photos ../shared/data/fashion-product-images/queries_fullres]
                                        [--rounds 5]

Issue 24's measurement. For each photo (the 17 full-resolution photos by default, as bytes, as an upload arrives) and
round, interleaved so that other load on the machine hits both alike:
- `forward`: the model alone on the photo's prepared input (batch 1), through the same graph and outputs `by_image`
  uses (`embed_and_locate` where the model locates garments);
- `by_image`: the whole query at the default k and colour weight;
- the stages of the query, timed apart: decode, picture (catalog look, model input, colour), search and answer;
  and, for reference, the photo decoded in full (every pixel; no query does this).
Prints the p50 of each and the ratio by_image / forward (issue 24's goal: at most 1.15); then the answers against
those of the photos decoded in full: top-5 ids kept, own product first, distance to the own product.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from fashionrec import Catalog, Recommender
from fashionrec.imaging.decode import open_image
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
    times: dict[str, list[float]] = {"forward": [], "by_image": [], "decode": [], "picture": [],
                                     "decode in full (not used: the reference)": []}
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
            start = time.perf_counter()
            open_image(data, view._query_limits)
            times["decode in full (not used: the reference)"].append(time.perf_counter() - start)
    p50 = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"{len(photos)} photos x {args.rounds} rounds, {embedder.name}, catalog of {len(recommender.catalog):,} "
          f"products, interleaved, BLAS threads: {args.blas_threads}\n")
    print("| step | p50 ms | p90 ms |")
    print("|---|--:|--:|")
    for name, values in times.items():
        print(f"| {name} | {p50[name]:.1f} | {np.percentile(values, 90) * 1000:.1f} |")
    # Per query, then the median: a difference of p50s (each of another query) could come out negative.
    rest = [whole - sum(times[step][i] for step in ("forward", "decode", "picture"))
            for i, whole in enumerate(times["by_image"])]
    print(f"| search, answer and the rest (by_image - forward, decode, picture; per query) | "
          f"{statistics.median(rest) * 1000:.1f} | {np.percentile(rest, 90) * 1000:.1f} |")
    print(f"\nby_image p50 / forward p50 = {p50['by_image'] / p50['forward']:.2f} (goal: at most 1.15)")
    print_answers_against_full_decodes(recommender, sorted(args.photos.glob("*.jpg")))
    return 0


def print_answers_against_full_decodes(recommender: Recommender, paths: list[Path], k: int = 5) -> None:
    """The answers (top k, at colour weights 0, the default and 1) against those of each photo decoded in full, every
    pixel (the reference any reduced decode departs from): ids kept, own product first (a photo's name is its
    product's id), and the mean distance to the own product (how close the query comes to the catalog's photo)."""
    view = recommender._view
    queries = [(path, weight) for path in paths for weight in (0.0, None, 1.0)]

    def answers() -> dict:
        return {(path, weight): recommender.by_image(path.read_bytes(), k=k, colour_weight=weight).results
                for path, weight in queries}

    as_served = answers()
    view._decode = lambda image: open_image(image, view._query_limits)  # this instance only, every pixel
    try:
        in_full = answers()
    finally:
        del view._decode
    kept = sum(len({m.id for m in as_served[q]} & {m.id for m in in_full[q]}) for q in queries)
    print(f"\nAnswers against the photos decoded in full ({len(queries)} queries: each photo at colour weights 0, "
          f"the default and 1; top {k}):")
    print("| decode | ids kept | own product first | mean distance to the own product (weight 0) |")
    print("|---|--:|--:|--:|")
    for name, found in (("as served", as_served), ("in full (reference)", in_full)):
        own = sum(bool(found[q]) and found[q][0].id == q[0].stem for q in queries)
        distances = [next((m.distance for m in found[q] if m.id == q[0].stem), np.nan) for q in queries if q[1] == 0.0]
        shared = kept if name == "as served" else k * len(queries)
        print(f"| {name} | {shared} of {k * len(queries)} | {own} of {len(queries)} | {np.nanmean(distances):.4f} |")


if __name__ == "__main__":
    sys.exit(main())
