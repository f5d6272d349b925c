"""What the colour descriptor costs at indexing time (issue 15: at most 5% of indexing time).

    python benchmarks/colour_cost.py [--images 600] [--rounds 3] [--model efficientnet-lite2] [--data DIR]

Indexes the first N sample images end to end into a fresh catalog, alternating rounds with the colour computed in
the reader pass (as shipped) and without it (the reader's colour call and the run's backfill switched off, this
script only), and prints the median seconds of each and the share colour adds. Also times `colour.describe` alone
on the decoded images, one thread. Run it on an idle machine: other load moves both columns.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from fashionrec import colour
from fashionrec.catalog import build, index_images
from fashionrec.demo import find_sample_data
from fashionrec.images import open_image


def index_seconds(images_dir: Path, work: Path, model: str, limit: int, with_colour: bool) -> float:
    """Seconds of one whole index run (model loaded and cached before: the first round is a warm-up)."""
    shipped = (build.describe_colour, build.backfill_colours)
    if not with_colour:
        build.describe_colour = lambda image: None
        build.backfill_colours = lambda *args, **kwargs: 0
    target = work / f"c-{time.monotonic_ns()}"
    try:
        report = index_images(images_dir, target, model=model, limit=limit, progress=False)
    finally:
        build.describe_colour, build.backfill_colours = shipped
        shutil.rmtree(target, ignore_errors=True)
    return report.pipeline_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="efficientnet-lite2")
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    images_dir = find_sample_data(args.data) / "images"
    work = Path(tempfile.mkdtemp(prefix="fashionrec-colour-"))
    try:
        index_seconds(images_dir, work, args.model, 32, True)  # warm-up: builds or loads the model
        timings: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):
            for with_colour in (False, True):
                timings[with_colour].append(index_seconds(images_dir, work, args.model, args.images, with_colour))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    decoded = [open_image(path, 40_000_000) for path in sorted(images_dir.glob("*.jpg"))[:200]]
    started = time.perf_counter()
    for image in decoded:
        colour.describe(image)
    describe_ms = (time.perf_counter() - started) / len(decoded) * 1000
    off, on = statistics.median(timings[False]), statistics.median(timings[True])
    print(f"cores: {os.cpu_count()}; {args.model}; {args.images} images; median of {args.rounds} alternating rounds")
    print("| indexing | seconds (median) | images/s | rounds |\n|---|---:|---:|---|")
    for name, value, rounds in (("without colour", off, timings[False]), ("with colour (shipped)", on, timings[True])):
        print(f"| {name} | {value:.2f} | {args.images / value:.1f} | {', '.join(f'{r:.2f}' for r in rounds)} |")
    print(f"\ncolour adds {100 * (on - off) / off:+.1f}% to indexing time; colour.describe alone: "
          f"{describe_ms:.2f} ms an image (one thread)")


if __name__ == "__main__":
    main()
