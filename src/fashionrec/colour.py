"""The colour of a product: a CIELAB histogram of its own pixels, its dominant colours, and the colour vector search
joins to the shape vector.

Why a separate descriptor: the CNN vector ranks by shape, and colour only rides along in it (of a product's five
neighbours about one shares its baseColour). A shopper who wants "this, in red" needs colour as its own part of
the ranking, with a weight they choose (`recommend.Recommender`, `colour_weight`).

How the product's own pixels are found (fashion photos are studio shots on a plain background):
- the background is the median colour of the image's border; pixels within dE 10 of it are not the product;
- shadows are left out too: pixels of the background's chroma (dE over a, b below 6) and up to 30 L darker;
- the rest is weighted towards the centre (a Gaussian, sigma a quarter of the size), where the product is;
- an image where nothing differs from its border (a product filling the frame) counts every pixel, centre-weighted.

The histogram: 4 L x 16 a x 16 b soft bins (a, b in [-80, 80]; each pixel spread over neighbouring bins by a
Gaussian one bin wide), so a small shift of hue or lightness (another camera, another light) moves mass between
neighbouring bins instead of to another bin; L has only 4 bins, so brightness matters little and hue much. It is
computed on a 48 x 64 thumbnail: colour needs few pixels, and the cost stays far below the CNN's.

The colour vector (what search uses): the square root of the histogram (Hellinger: many small bins count), minus
the typical histogram of fashion photos (without it two mostly-white photos look alike whatever the colour of their
product), projected on its 16 main axes of variation, at unit length. The typical histogram and the axes are
constants shipped with the package (`colour_prior.npy`, like ImageNet's channel means), made once from the shared
sample: so a product's colour vector depends on its image alone, and 16 numbers a product keep indexes small (the
1,024-bin histogram ranks the same: docs/QUALITY.md). Its inner product is high for two products sharing an
unusual colour, near zero for unrelated ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from PIL import Image

COLOUR_VERSION = 1  # bump when the histogram changes: stored histograms of another version are computed again
THUMBNAIL = (48, 64)  # (width, height) the histogram is computed at
LUT_BITS = 4  # sRGB quantised to 5 bits a channel for the CIELAB table (at most ~2 dE off)
BINS_L, BINS_AB, AB_LIMIT = 4, 16, 80.0
HISTOGRAM_DIM = BINS_L * BINS_AB * BINS_AB
BACKGROUND_DE, SHADOW_DAB, SHADOW_DL = 10.0, 6.0, 30.0
CENTRE_SIGMA = 0.25
SWATCHES, SWATCH_MIN_SHARE, SWATCH_CELL = 3, 0.08, 20.0  # up to 3 dominant colours, each >= 8% of the product
PRIOR_FILE = "colour_prior.npy"
COLOUR_DIM = 16  # length of the colour vector: the histogram's 16 main axes keep its ranking (docs/QUALITY.md)

_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_XYZ_TO_SRGB = np.linalg.inv(_SRGB_TO_XYZ)


@dataclass(frozen=True)
class Swatch:
    """One dominant colour of a product: its sRGB hex and its share of the product's pixels (0-1)."""

    rgb: str
    share: float

    def to_dict(self) -> dict[str, str | float]:
        return {"rgb": self.rgb, "share": round(self.share, 3)}


@dataclass(frozen=True)
class ColourDescriptor:
    """What the indexer stores for a product's colour: the histogram (sums to 1) and the dominant colours."""

    histogram: np.ndarray  # float32 (HISTOGRAM_DIM,)
    swatches: tuple[Swatch, ...]


def describe(image: Image.Image) -> ColourDescriptor:
    """The colour descriptor of a decoded RGB image (a catalog product or a shopper's photo).

    Example:
        >>> d = describe(Image.new("RGB", (60, 80), "white"))
        >>> d.histogram.shape, round(float(d.histogram.sum()), 3)
        ((1024,), 1.0)
    """
    rgb = np.asarray(image.convert("RGB").resize(THUMBNAIL, Image.BILINEAR), dtype=np.uint8)
    codes = (rgb >> (8 - LUT_BITS)).astype(np.int32)
    codes = (codes[..., 0] << (2 * LUT_BITS)) | (codes[..., 1] << LUT_BITS) | codes[..., 2]
    weights = product_weights(_lab_table()[codes])
    # Pixels summed per quantised colour (an image has a few hundred): the rest works on those alone.
    mass = np.bincount(codes.reshape(-1), weights=weights.reshape(-1), minlength=len(_lab_table()))
    cells = np.flatnonzero(mass > 1e-6)
    return ColourDescriptor(soft_histogram(cells, mass[cells]), dominant_colours(cells, mass[cells]))


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1], shape (..., 3), to CIELAB (D65 white)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ _SRGB_TO_XYZ.T.astype(np.float32) / _WHITE_D65.astype(np.float32)
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_hex(lab: np.ndarray) -> str:
    """One CIELAB colour (3,) as an sRGB hex string such as '#a31f2b' (clipped to the sRGB gamut)."""
    l_star, a_star, b_star = (float(v) for v in lab)
    fy = (l_star + 16) / 116
    f = np.array([fy + a_star / 500, fy, fy - b_star / 200])
    xyz = np.where(f ** 3 > 216 / 24389, f ** 3, (116 * f - 16) / (24389 / 27)) * _WHITE_D65
    linear = np.clip(_XYZ_TO_SRGB @ xyz, 0, 1)
    rgb = np.where(linear > 0.0031308, 1.055 * linear ** (1 / 2.4) - 0.055, 12.92 * linear)
    return "#" + "".join(f"{int(round(float(c) * 255)):02x}" for c in np.clip(rgb, 0, 1))


def product_weights(lab: np.ndarray) -> np.ndarray:
    """Per-pixel weights (h, w): the product's own pixels, centre-weighted; background and shadow get 0."""
    h, w, _ = lab.shape
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    background = np.median(border, axis=0)
    gap = lab - background
    chroma_gap = gap[..., 1] ** 2 + gap[..., 2] ** 2
    product = chroma_gap + gap[..., 0] ** 2 > BACKGROUND_DE ** 2
    shadow = (chroma_gap < SHADOW_DAB ** 2) & (gap[..., 0] < 0) & (gap[..., 0] > -SHADOW_DL)
    centre = _centre_weights(h, w)
    weights = (product & ~shadow) * centre
    return weights if weights.sum() > 1e-6 else centre


@lru_cache(maxsize=4)
def _centre_weights(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-(((yy - (h - 1) / 2) / h) ** 2 + ((xx - (w - 1) / 2) / w) ** 2) / (2 * CENTRE_SIGMA ** 2)).astype(
        np.float32)


def soft_histogram(cells: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """The soft L x a x b histogram of quantised colours `cells` weighing `mass`, summing to 1 (HISTOGRAM_DIM,)."""
    spread_l, spread_a, spread_b = _spread_tables()
    mass = mass.astype(np.float32)
    la = (spread_l[cells] * mass[:, None])[:, :, None] * spread_a[cells][:, None, :]
    histogram = (la.reshape(len(cells), -1).T @ spread_b[cells]).reshape(-1)
    return histogram / max(float(histogram.sum()), 1e-12)


@lru_cache(maxsize=1)
def _lab_table() -> np.ndarray:
    """CIELAB of every quantised sRGB colour (LUT_BITS per channel, each cell's centre): (2**(3*LUT_BITS), 3)."""
    levels = (np.arange(2 ** LUT_BITS, dtype=np.float32) + 0.5) / 2 ** LUT_BITS
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    return srgb_to_lab(np.stack([r, g, b], -1).reshape(-1, 3)).astype(np.float32)


@lru_cache(maxsize=1)
def _spread_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every quantised colour, its soft assignment to the L, a and b bins (Gaussian, one bin step wide)."""
    lab = _lab_table()
    centres_l = np.linspace(0, 100, BINS_L, dtype=np.float32)
    centres_ab = np.linspace(-AB_LIMIT, AB_LIMIT, BINS_AB, dtype=np.float32)
    return _soft_assign(lab[:, 0], centres_l), _soft_assign(lab[:, 1], centres_ab), _soft_assign(lab[:, 2], centres_ab)


def _soft_assign(values: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Each value spread over the bins by a Gaussian one bin step wide; rows sum to 1."""
    k = np.exp(-0.5 * ((values[:, None] - centres[None, :]) / (centres[1] - centres[0])) ** 2)
    return (k / k.sum(1, keepdims=True)).astype(np.float32)


def dominant_colours(cells: np.ndarray, mass: np.ndarray) -> tuple[Swatch, ...]:
    """Up to SWATCHES colours covering most of the product: its quantised colours grouped in cubes of SWATCH_CELL
    units of L, a and b; the heaviest cubes (each at least SWATCH_MIN_SHARE of the product), each shown as the
    mean colour of its pixels."""
    total = float(mass.sum())
    if total <= 0:
        return ()
    lab = _lab_table()[cells]
    cube = np.floor((lab + np.array([0.0, 128.0, 128.0], np.float32)) / SWATCH_CELL).astype(np.int64)
    code = (cube[:, 0] * 64 + cube[:, 1]) * 64 + cube[:, 2]
    groups, inverse = np.unique(code, return_inverse=True)
    group_mass = np.bincount(inverse, weights=mass, minlength=len(groups))
    swatches = []
    for group in np.argsort(-group_mass, kind="stable")[:SWATCHES]:
        share = group_mass[group] / total
        if share < SWATCH_MIN_SHARE:
            break
        members = inverse == group
        mean = (lab[members] * mass[members, None]).sum(0) / group_mass[group]
        swatches.append(Swatch(lab_to_hex(mean), float(share)))
    return tuple(swatches)


@lru_cache(maxsize=1)
def _prior() -> tuple[np.ndarray, np.ndarray]:
    """(the typical square-rooted histogram of fashion photos (HISTOGRAM_DIM,), its main axes of variation
    (COLOUR_DIM, HISTOGRAM_DIM)): constants of the package, made from the shared sample by
    `benchmarks/colour_prior.py`."""
    with resources.files("fashionrec").joinpath(PRIOR_FILE).open("rb") as handle:
        prior = np.load(handle, allow_pickle=False)
    if prior.shape != (1 + COLOUR_DIM, HISTOGRAM_DIM):
        raise ValueError(f"{PRIOR_FILE} holds shape {prior.shape}, not ({1 + COLOUR_DIM}, {HISTOGRAM_DIM})")
    return prior[0].astype(np.float32), prior[1:].astype(np.float32)


def colour_vectors(histograms: np.ndarray) -> np.ndarray:
    """Histograms (n, HISTOGRAM_DIM) or (HISTOGRAM_DIM,) to colour vectors (COLOUR_DIM): the square root, minus the
    typical one, along its main axes, at unit length.

    A histogram of zeros (no colour known) gives a zero vector: it adds nothing to any ranking.
    """
    mean, axes = _prior()
    histograms = np.asarray(histograms, dtype=np.float32)
    known = histograms.sum(-1, keepdims=True) > 0
    projected = ((np.sqrt(np.maximum(histograms, 0)) - mean) @ axes.T) * known
    norms = np.linalg.norm(projected, axis=-1, keepdims=True)
    return (projected / np.maximum(norms, 1e-12)).astype(np.float32)
