"""Make `src/fashionrec/imaging/colour_prior.npz`: the constants `fashionrec.imaging.colour` needs (like ImageNet's channel means),
from the shared sample's photos (`../shared/data/fashion-product-images/images`):

- `palette`: 128 CIELAB colours, k-means of the product pixels of every photo (weighted, seeded);
- `band_roots_mean`, `whole_roots_mean`: the typical square-rooted histogram of each band and of the whole product;
- `layout_mean`, `layout_axes`, `whole_mean`, `whole_axes`: the mean and the main axes (64 and 32) of the centred
  layout and whole-product parts (`colour.layout_roots`, `colour.whole_roots`).

No labels are used. The file in the package was made by this script; run it again only if the histogram changes
(then bump `colour.COLOUR_VERSION`: stored histograms are recomputed on the next index run).

    python benchmarks/colour_prior.py [--images DIR] [--write]   (under a minute on 2 cores)
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from fashionrec.imaging import colour
from fashionrec.imaging.decode import open_image

SAMPLE = Path(__file__).resolve().parents[2] / "shared/data/fashion-product-images/images"
TARGET = Path(colour.__file__).with_name(colour.PRIOR_FILE)  # src/fashionrec/imaging/colour_prior.npz
KMEANS_ROUNDS, SEED = 30, 0


def pixels(paths: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(quantised colours, product weights) of every image's thumbnail (`colour.product_pixels`)."""
    def one(path: Path) -> tuple[np.ndarray, np.ndarray]:
        return colour.product_pixels(open_image(path, 40_000_000))

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, paths))


def fit_palette(mass: np.ndarray) -> np.ndarray:
    """k-means (Lloyd, seeded) of the CIELAB table's colours weighted by their product-pixel mass: the palette."""
    lab = colour._lab_table().astype(np.float64)
    weights = mass.astype(np.float64) + 1e-9
    rng = np.random.default_rng(SEED)
    centres = lab[rng.choice(len(lab), colour.PALETTE_SIZE, replace=False, p=weights / weights.sum())]
    for _ in range(KMEANS_ROUNDS):
        nearest = ((lab[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(colour.PALETTE_SIZE):
            members = nearest == j
            if members.any():
                centres[j] = (lab[members] * weights[members, None]).sum(0) / weights[members].sum()
    return centres.astype(np.float32)


def main_axes(rows: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, the first `count` principal axes, the share of the variance they hold)."""
    mean = rows.mean(0)
    _, singular, axes = np.linalg.svd(rows - mean, full_matrices=False)
    return mean, axes[:count], float((singular[:count] ** 2).sum() / (singular ** 2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=SAMPLE)
    parser.add_argument("--write", action="store_true", help=f"write {TARGET}")
    args = parser.parse_args()
    paths = sorted(args.images.glob("*.jpg"))
    seen = pixels(paths)
    cells = len(colour._lab_table())
    mass = sum(np.bincount(codes.reshape(-1), weights=w.reshape(-1), minlength=cells) for codes, w in seen)
    palette = fit_palette(mass)
    table = colour.palette_of_cell(palette)
    histograms = np.stack([colour.band_histogram(codes, w, table) for codes, w in seen])
    bands = histograms.reshape(len(paths), colour.BANDS, colour.PALETTE_SIZE)
    band_roots_mean = np.sqrt(bands / np.maximum(bands.sum(-1, keepdims=True), 1e-12)).mean(0)
    whole = bands.sum(1)
    whole_roots_mean = np.sqrt(whole / whole.sum(-1, keepdims=True)).mean(0)
    layout_mean, layout_axes, layout_kept = main_axes(colour.layout_roots(histograms, band_roots_mean),
                                                      colour.LAYOUT_DIM)
    whole_mean, whole_axes, whole_kept = main_axes(colour.whole_roots(histograms, whole_roots_mean), colour.WHOLE_DIM)
    print(f"{len(paths)} images; the layout's {colour.LAYOUT_DIM} axes hold {layout_kept:.1%} of its variance, "
          f"the whole product's {colour.WHOLE_DIM} {whole_kept:.1%}")
    prior = {"palette": palette, "band_roots_mean": band_roots_mean, "layout_mean": layout_mean,
             "layout_axes": layout_axes, "whole_roots_mean": whole_roots_mean, "whole_mean": whole_mean,
             "whole_axes": whole_axes}
    for name, shape in colour.PRIOR_ARRAYS.items():
        assert prior[name].shape == shape, (name, prior[name].shape, shape)
    if args.write:
        np.savez(TARGET, **{name: array.astype("<f4") for name, array in prior.items()})
        print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
