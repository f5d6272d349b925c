"""First study for issue 15 (colour): how much baseColour a colour descriptor joined to the shape vector buys,
and at what articleType cost. A research script, not yet a feature: nothing here is used by fashionrec.

Leave-one-out on a catalog with metadata (the query's exact copies left out, as `fashionrec evaluate` does),
P@5 of articleType and baseColour for [shape; sqrt(w) * colour], whose inner product is
shape.shape' + w * colour.colour' (what every search backend can rank by with one index).

The descriptor: the product's own pixels in CIELAB. The background is the border's median colour; pixels within
dE 10 of it are left out, and so are shadows (the background's chroma, dE(ab) < 6, up to 30 L darker). The
rest is weighted towards the centre (Gaussian, sigma 0.25 of the size) into a soft 4 L x 16 a x 16 b histogram
(a, b in [-80, 80]), square-rooted, unit length; "centred" subtracts the catalog mean first.

    python benchmarks/colour_study.py [--catalog DIR]   (default: the demo catalog; about 1 min on 2 cores)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from fashionrec.catalog.catalog import Catalog
from fashionrec.config import load_settings
from fashionrec.demo import demo_catalog_dir
from fashionrec.vectors import l2_normalize as unit
from fashionrec.quality.evaluate import evaluate
from fashionrec.imaging.decode import open_image

SIZE = (60, 80)  # every image is read at the shared sample's size: colour needs few pixels


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (..., 3) -> CIELAB (D65)."""
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    to_xyz = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def product_weights(lab: np.ndarray, near: float = 10.0) -> np.ndarray:
    """Per-pixel weights (n, h, w): the product's own pixels, centre-weighted; background and shadow get 0."""
    n, h, w, _ = lab.shape
    border = np.concatenate([lab[:, 0], lab[:, -1], lab[:, :, 0], lab[:, :, -1]], axis=1)
    background = np.median(border, axis=1)[:, None, None]
    product = np.linalg.norm(lab - background, axis=-1) > near
    chroma_gap = np.linalg.norm(lab[..., 1:] - background[..., 1:], axis=-1)
    shadow = (chroma_gap < 6) & (lab[..., 0] < background[..., 0]) & (lab[..., 0] > background[..., 0] - 30)
    yy, xx = np.mgrid[0:h, 0:w]
    centre = np.exp(-(((yy - (h - 1) / 2) / h) ** 2 + ((xx - (w - 1) / 2) / w) ** 2) / (2 * 0.25 ** 2))
    weights = (product & ~shadow) * centre
    weights[weights.sum((1, 2)) < 1e-6] = centre  # nothing told apart from the background: the whole image
    return weights


def soft_histogram(lab: np.ndarray, weights: np.ndarray, bins_l: int = 4, bins_ab: int = 16) -> np.ndarray:
    """Gaussian soft-binned L x a x b histogram (one bin step of spread), per image."""
    n = len(lab)
    pixels, w = lab.reshape(n, -1, 3).astype(np.float32), weights.reshape(n, -1).astype(np.float32)

    def kernel(values: np.ndarray, centres: np.ndarray) -> np.ndarray:
        k = np.exp(-0.5 * ((values[..., None] - centres) / (centres[1] - centres[0])) ** 2)
        return k / k.sum(-1, keepdims=True)

    kl = kernel(pixels[..., 0], np.linspace(0, 100, bins_l, dtype=np.float32)) * w[..., None]
    ab = np.linspace(-80, 80, bins_ab, dtype=np.float32)
    ka, kb = kernel(pixels[..., 1], ab), kernel(pixels[..., 2], ab)
    la = (kl[..., :, None] * ka[..., None, :]).reshape(n, pixels.shape[1], -1)
    return np.matmul(la.transpose(0, 2, 1), kb).reshape(n, -1)


def colour_descriptors(catalog: Catalog, max_pixels: int, chunk: int = 200) -> np.ndarray:
    """The soft histogram of every product (row-aligned with the catalog)."""
    out = []
    for start in range(0, len(catalog), chunk):
        images = np.stack([np.asarray(open_image(catalog.image_path(i), max_pixels).resize(SIZE), np.float32)
                           for i in catalog.ids[start:start + chunk]]) / 255
        lab = srgb_to_lab(images)
        out.append(soft_histogram(lab, product_weights(lab)))
    return np.vstack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, default=None)
    args = parser.parse_args()
    settings = load_settings()
    catalog = Catalog.open(args.catalog or demo_catalog_dir(settings))
    shape = catalog.vectors

    def score(vectors: np.ndarray) -> str:
        e = evaluate(catalog, ["articleType", "baseColour"], k=5, vectors=vectors.astype(np.float32))
        return " | ".join(f"{s.precision:.4f}" for s in e.deduplicated)

    colour = unit(np.sqrt(colour_descriptors(catalog, settings.max_image_pixels)))
    centred = unit(colour - colour.mean(0))
    print("| vectors | w | articleType P@5 | baseColour P@5 |\n|---|---:|---:|---:|")
    print(f"| shape only | 0 | {score(shape)} |")
    for name, c in (("colour alone", colour), ("centred colour alone", centred)):
        print(f"| {name} | - | {score(c)} |")
    curves = (("joined", colour, (0.1, 0.25, 0.5, 1.0, 1.5)), ("joined, centred", centred, (0.1, 0.15, 0.25, 1.5)))
    for name, c, weights in curves:
        for w in weights:
            print(f"| {name} | {w} | {score(np.hstack([shape, np.sqrt(w) * c]))} |", flush=True)


if __name__ == "__main__":
    main()
