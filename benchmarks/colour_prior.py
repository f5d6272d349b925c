"""Make `src/fashionrec/colour_prior.npy`: the typical square-rooted colour histogram of fashion product photos,
which `fashionrec.colour.colour_vectors` subtracts (like ImageNet's channel means, a constant of the package).

It is the mean over the shared sample's photos (`../shared/data/fashion-product-images/images`). The file in the
package was made by this script; run it again only if the histogram changes (`colour.COLOUR_VERSION`).

    python benchmarks/colour_prior.py [--images DIR] [--write]   (about 1 min on 2 cores)
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from fashionrec import colour
from fashionrec.images import open_image

SAMPLE = Path(__file__).resolve().parents[2] / "shared/data/fashion-product-images/images"
TARGET = Path(__file__).resolve().parents[1] / "src/fashionrec" / colour.PRIOR_FILE


def histograms(paths: list[Path]) -> np.ndarray:
    """The colour histogram of every image (rows aligned with `paths`)."""
    def one(path: Path) -> np.ndarray:
        return colour.describe(open_image(path, 40_000_000)).histogram

    with ThreadPoolExecutor(2) as pool:
        return np.stack(list(pool.map(one, paths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=SAMPLE)
    parser.add_argument("--write", action="store_true", help=f"write {TARGET}")
    args = parser.parse_args()
    paths = sorted(args.images.glob("*.jpg"))
    mean = np.sqrt(histograms(paths)).mean(0).astype("<f4")
    top = np.argsort(-mean)[:5]
    print(f"{len(paths)} images; heaviest bins of the prior: {top.tolist()} ({mean[top].round(3).tolist()})")
    if args.write:
        np.save(TARGET, mean, allow_pickle=False)
        print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
