"""What the colour descriptor costs at indexing time (issue 15: at most 5% of indexing time).

    python benchmarks/colour_cost.py [--images 600] [--rounds 3] [--model efficientnet-lite2] [--data DIR]

Indexes the first N sample images end to end into a fresh catalog, alternating rounds with the colour computed in
the reader pass (as shipped) and without it (the reader's colour call and the run's backfill switched off, this
script only), and prints the median seconds of each and the share colour adds, in wall time (the pipeline) and in
CPU time (the whole process, every thread: less moved by other load on the machine). Also times `colour.describe`
alone on the decoded images, one thread (median of 5 passes). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from fashionrec.imaging import colour
from fashionrec.index import read, run
from fashionrec.index.run import index_images
from fashionrec.demo import find_sample_data
from fashionrec.imaging.decode import open_image


def index_seconds(images_dir: Path, work: Path, model: str, limit: int, with_colour: bool) -> tuple[float, float]:
    """(wall seconds of the pipeline, CPU seconds of the whole run) of one index run (model loaded and cached
    before: the first round is a warm-up)."""
    shipped = (read.describe_colour, run.backfill_colours)
    if not with_colour:
        read.describe_colour = lambda image: None
        run.backfill_colours = lambda *args, **kwargs: 0
    target = work / f"c-{time.monotonic_ns()}"
    cpu = time.process_time()
    try:
        report = index_images(images_dir, target, model=model, limit=limit, progress=False)
        cpu = time.process_time() - cpu
    finally:
        read.describe_colour, run.backfill_colours = shipped
        shutil.rmtree(target, ignore_errors=True)
    return report.pipeline_seconds, cpu


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
        timings: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for _ in range(args.rounds):
            for with_colour in (False, True):
                timings[with_colour].append(index_seconds(images_dir, work, args.model, args.images, with_colour))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    decoded = [open_image(path, 40_000_000) for path in sorted(images_dir.glob("*.jpg"))[:300]]
    passes = []
    for _ in range(5):
        started = time.perf_counter()
        for image in decoded:
            colour.describe(image)
        passes.append((time.perf_counter() - started) / len(decoded) * 1000)
    print(f"cores: {os.cpu_count()}; {args.model}; {args.images} images; median of {args.rounds} alternating rounds")
    print("| indexing | wall s (median) | images/s | CPU s (median) | wall s of the rounds | CPU s of the rounds |")
    print("|---|---:|---:|---:|---|---|")
    medians = {}
    for with_colour, name in ((False, "without colour"), (True, "with colour (shipped)")):
        walls, cpus = zip(*timings[with_colour])
        medians[with_colour] = statistics.median(walls), statistics.median(cpus)
        print(f"| {name} | {medians[with_colour][0]:.2f} | {args.images / medians[with_colour][0]:.1f} | "
              f"{medians[with_colour][1]:.2f} | {', '.join(f'{w:.2f}' for w in walls)} | "
              f"{', '.join(f'{c:.2f}' for c in cpus)} |")
    (wall_off, cpu_off), (wall_on, cpu_on) = medians[False], medians[True]
    print(f"\ncolour adds {100 * (wall_on - wall_off) / wall_off:+.1f}% wall time and "
          f"{100 * (cpu_on - cpu_off) / cpu_off:+.1f}% CPU time to indexing; colour.describe alone: "
          f"{statistics.median(passes):.2f} ms an image (one thread)")


if __name__ == "__main__":
    main()
