"""Make `src/fashionrec/colour_prior.npy`: the typical square-rooted colour histogram of fashion product photos
and its main axes of variation, which `fashionrec.colour.colour_vectors` subtracts and projects on (constants of
the package, like ImageNet's channel means).

Row 0 is the mean over the shared sample's photos (`../shared/data/fashion-product-images/images`), rows 1-16 the
first principal axes of the centred square-rooted histograms. The file in the package was made by this script; run
it again only if the histogram changes (`colour.COLOUR_VERSION`).

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
    roots = np.sqrt(histograms(paths))
    mean = roots.mean(0)
    _, singular, axes = np.linalg.svd(roots - mean, full_matrices=False)
    kept = (singular[:colour.COLOUR_DIM] ** 2).sum() / (singular ** 2).sum()
    print(f"{len(paths)} images; the {colour.COLOUR_DIM} main axes hold {kept:.1%} of the variance")
    if args.write:
        np.save(TARGET, np.vstack([mean, axes[:colour.COLOUR_DIM]]).astype("<f4"), allow_pickle=False)
        print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
