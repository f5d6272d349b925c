"""The colour of a product: where its colours are, its dominant colours, and the colour vector search joins to
the shape vector.

Why a separate descriptor: the CNN vector ranks by shape, and colour only rides along in it (of a product's five
neighbours about one and a half share its baseColour). A shopper who wants "this, in red" needs colour as its own
part of the ranking, with a weight they choose (`recommend.Recommender`, `colour_weight`).

How the product's own pixels are found (fashion photos are studio shots on a plain background):
- the background is the median colour of the image's border; pixels within dE 10 of it are not the product;
- shadows are left out too: pixels of the background's chroma (dE over a, b below 6) and up to 30 L darker;
- the rest is weighted towards the centre (a Gaussian, sigma a quarter of the size), where the product is;
- an image where nothing differs from its border (a product filling the frame) counts every pixel, centre-weighted.

The histogram (what the catalog stores): each pixel's colour is one of a palette of 128 CIELAB colours (the
nearest; the palette is k-means of fashion photos' product pixels), counted per horizontal band of the image
(8 bands, top to bottom): a colour layout, so "a red top over blue jeans" and "a blue top over red trousers" are
told apart, and the layout of the product's pixels says something of its cut too. It is computed on a 48 x 64
thumbnail through a 4,096-colour CIELAB table: colour needs few pixels, and the cost stays far below the CNN's.

The colour vector (what search uses) has two parts, each the square root of a histogram (Hellinger: many small
bins count), minus the typical one of fashion photos (without it two mostly-white photos look alike whatever the
colour of their product), on its main axes of variation, at unit length:
- the layout: each band's histogram, 64 axes; it raises baseColour at little articleType cost;
- the whole product's histogram, 32 axes; it is what colour alone ranks best by (the strongest setting).
They are joined as [sqrt(0.8) layout; sqrt(0.2) whole], a unit vector. The palette, the typical histograms and the
axes are constants shipped with the package (`colour_prior.npz`, like ImageNet's channel means), made once from
the shared sample (`benchmarks/colour_prior.py`): so a product's colour vector depends on its image alone. The
choices are measured in docs/QUALITY.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from PIL import Image

from fashionrec.vectors import l2_normalize

COLOUR_VERSION = 3  # bump when the histogram changes: stored histograms of another version are computed again
# (3: a photo larger than 3x the thumbnail is box-reduced before it is resampled, `product_pixels`)
THUMBNAIL = (48, 64)  # (width, height) the histogram is computed at
LUT_BITS = 4  # sRGB quantised to 4 bits a channel for the CIELAB table (4,096 colours)
PALETTE_SIZE = 128  # colours of the palette each pixel is counted as
BANDS = 8  # horizontal bands of the image, top to bottom, each with its own histogram
HISTOGRAM_DIM = BANDS * PALETTE_SIZE
BACKGROUND_DE, SHADOW_DAB, SHADOW_DL = 10.0, 6.0, 30.0
CENTRE_SIGMA = 0.25
SWATCHES, SWATCH_MIN_SHARE, SWATCH_CELL = 3, 0.08, 20.0  # up to 3 dominant colours, each >= 8% of the product
PRIOR_FILE = "colour_prior.npz"
LAYOUT_DIM, WHOLE_DIM = 64, 32  # main axes kept of the layout and of the whole product's histogram
LAYOUT_SHARE = 0.8  # the layout's share of the colour vector's squared length (the whole product has the rest)
COLOUR_DIM = LAYOUT_DIM + WHOLE_DIM  # length of the colour vector
PRIOR_ARRAYS = {  # what colour_prior.npz holds, and each array's shape
    "palette": (PALETTE_SIZE, 3), "band_roots_mean": (BANDS, PALETTE_SIZE), "layout_mean": (HISTOGRAM_DIM,),
    "layout_axes": (LAYOUT_DIM, HISTOGRAM_DIM), "whole_roots_mean": (PALETTE_SIZE,),
    "whole_mean": (PALETTE_SIZE,), "whole_axes": (WHOLE_DIM, PALETTE_SIZE)}

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

    It runs in the indexing reader pass beside the CNN's preprocessing, so it is a handful of whole-array steps
    over a 48 x 64 thumbnail and tables made once (well under a millisecond an image).

    Example:
        >>> d = describe(Image.new("RGB", (60, 80), "white"))
        >>> d.histogram.shape, round(float(d.histogram.sum()), 3)
        ((1024,), 1.0)
    """
    codes, weights = product_pixels(image)
    # Pixels summed per quantised colour: the swatches work on those 4,096 sums alone.
    mass = np.bincount(codes.reshape(-1), weights=weights.reshape(-1), minlength=len(_lab_table()))
    return ColourDescriptor(band_histogram(codes, weights, _palette_of_cell()), dominant_colours(mass))


def product_pixels(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(each thumbnail pixel's quantised colour, an index into the CIELAB table (h, w); its weight as part of the
    product (h, w): 0 for background and shadow, more towards the centre)."""
    image = image if image.mode == "RGB" else image.convert("RGB")
    # reducing_gap: a large photo is first box-reduced by a whole factor (fast), then resampled.
    rgb = np.asarray(image.resize(THUMBNAIL, Image.BILINEAR, reducing_gap=3.0), dtype=np.int32)
    codes = ((rgb[..., 0] >> (8 - LUT_BITS)) << (2 * LUT_BITS)) | ((rgb[..., 1] >> (8 - LUT_BITS)) << LUT_BITS) \
        | (rgb[..., 2] >> (8 - LUT_BITS))
    return codes, product_weights(np.take(_lab_table(), codes, axis=0))


def band_histogram(codes: np.ndarray, weights: np.ndarray, palette_of_cell: np.ndarray) -> np.ndarray:
    """The product's pixels counted per band (top to bottom) and palette colour, summing to 1 (HISTOGRAM_DIM,)."""
    index = _band_offsets(codes.shape[0])[:, None] + palette_of_cell[codes]
    histogram = np.bincount(index.reshape(-1), weights=weights.reshape(-1), minlength=HISTOGRAM_DIM)
    return (histogram / max(float(histogram.sum()), 1e-12)).astype(np.float32)


@lru_cache(maxsize=4)
def _band_offsets(rows: int) -> np.ndarray:
    """For each row of a thumbnail `rows` high, the index of its band's first histogram bin."""
    return (np.arange(rows) * BANDS // rows) * PALETTE_SIZE


def palette_of_cell(palette: np.ndarray) -> np.ndarray:
    """For every colour of the CIELAB table, the index of the nearest palette colour (CIELAB distance)."""
    lab = _lab_table()
    distances = (lab ** 2).sum(1)[:, None] - 2 * lab @ palette.T + (palette ** 2).sum(1)[None, :]
    return distances.argmin(1).astype(np.int64)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1], shape (..., 3), to CIELAB (D65 white)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ _SRGB_TO_XYZ.T.astype(np.float32) / _WHITE_D65.astype(np.float32)
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_hex(lab: np.ndarray) -> str:
    """One CIELAB colour (3,) as an sRGB hex string such as '#a31f2b' (clipped to the sRGB gamut). Plain Python:
    it runs for each swatch of each product, where numpy's per-call cost would dominate."""
    l_star, a_star, b_star = (float(v) for v in lab)
    fy = (l_star + 16) / 116
    xyz = [(f ** 3 if f ** 3 > 216 / 24389 else (116 * f - 16) / (24389 / 27)) * white
           for f, white in zip((fy + a_star / 500, fy, fy - b_star / 200), _WHITE_D65.tolist())]
    digits = []
    for row in _XYZ_TO_SRGB.tolist():
        linear = min(1.0, max(0.0, sum(m * v for m, v in zip(row, xyz))))
        value = 1.055 * linear ** (1 / 2.4) - 0.055 if linear > 0.0031308 else 12.92 * linear
        digits.append(f"{int(round(min(1.0, max(0.0, value)) * 255)):02x}")
    return "#" + "".join(digits)


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


@lru_cache(maxsize=1)
def _lab_table() -> np.ndarray:
    """CIELAB of every quantised sRGB colour (LUT_BITS per channel, each cell's centre): (2**(3*LUT_BITS), 3)."""
    levels = (np.arange(2 ** LUT_BITS, dtype=np.float32) + 0.5) / 2 ** LUT_BITS
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    return srgb_to_lab(np.stack([r, g, b], -1).reshape(-1, 3)).astype(np.float32)


def dominant_colours(mass: np.ndarray) -> tuple[Swatch, ...]:
    """Up to SWATCHES colours covering most of the product, from its pixels summed per quantised colour (mass over
    the CIELAB table): the colours grouped in cubes of SWATCH_CELL units of L, a and b; the heaviest cubes (each at
    least SWATCH_MIN_SHARE of the product), each shown as the mean colour of its pixels."""
    total = float(mass.sum())
    if total <= 0:
        return ()
    cube_of_cell, cubes = _cube_table()
    cube_mass = np.bincount(cube_of_cell, weights=mass, minlength=cubes)
    swatches = []
    for cube in np.argsort(-cube_mass, kind="stable")[:SWATCHES]:
        share = cube_mass[cube] / total
        if share < SWATCH_MIN_SHARE:
            break
        members = cube_of_cell == cube
        mean = mass[members] @ _lab_table()[members] / cube_mass[cube]
        swatches.append(Swatch(lab_to_hex(mean), float(share)))
    return tuple(swatches)


@lru_cache(maxsize=1)
def _cube_table() -> tuple[np.ndarray, int]:
    """(for every colour of the CIELAB table, the index of its SWATCH_CELL cube, in cube order; how many cubes)."""
    cube = np.floor((_lab_table() + np.array([0.0, 128.0, 128.0], np.float32)) / SWATCH_CELL).astype(np.int64)
    _, index = np.unique((cube[:, 0] * 64 + cube[:, 1]) * 64 + cube[:, 2], return_inverse=True)
    return index.reshape(-1), int(index.max()) + 1


@lru_cache(maxsize=1)
def _prior() -> dict[str, np.ndarray]:
    """The palette, typical histograms and main axes (`PRIOR_ARRAYS`): constants of the package, made from the
    shared sample by `benchmarks/colour_prior.py`."""
    with resources.files("fashionrec.imaging").joinpath(PRIOR_FILE).open("rb") as handle, \
            np.load(handle, allow_pickle=False) as stored:
        prior = {name: stored[name].astype(np.float32) for name in stored.files}
    for name, shape in PRIOR_ARRAYS.items():
        if prior.get(name, np.zeros(0)).shape != shape:
            raise ValueError(f"{PRIOR_FILE}: {name} should have shape {shape}")
    return prior


@lru_cache(maxsize=1)
def _palette_of_cell() -> np.ndarray:
    return palette_of_cell(_prior()["palette"])


def layout_roots(histograms: np.ndarray, band_roots_mean: np.ndarray) -> np.ndarray:
    """Each band's histogram, square-rooted, minus the typical one, at unit length, the bands joined at unit length
    (..., HISTOGRAM_DIM): the layout part before its axes. A band without product pixels becomes minus the typical
    band at unit length: 'nothing here' is itself part of the layout (a shoe leaves the top bands empty)."""
    bands = np.asarray(histograms, dtype=np.float32).reshape(*np.shape(histograms)[:-1], BANDS, PALETTE_SIZE)
    shares = bands / np.maximum(bands.sum(-1, keepdims=True), 1e-12)
    centred = l2_normalize(np.sqrt(shares) - band_roots_mean)
    return centred.reshape(*centred.shape[:-2], HISTOGRAM_DIM) / np.sqrt(BANDS)


def whole_roots(histograms: np.ndarray, whole_roots_mean: np.ndarray) -> np.ndarray:
    """The whole product's histogram, square-rooted, minus the typical one, at unit length (..., PALETTE_SIZE)."""
    bands = np.asarray(histograms, dtype=np.float32).reshape(*np.shape(histograms)[:-1], BANDS, PALETTE_SIZE)
    whole = bands.sum(-2)
    return l2_normalize(np.sqrt(whole / np.maximum(whole.sum(-1, keepdims=True), 1e-12)) - whole_roots_mean)


def colour_vectors(histograms: np.ndarray) -> np.ndarray:
    """Histograms (n, HISTOGRAM_DIM) or (HISTOGRAM_DIM,) to colour vectors (COLOUR_DIM): [sqrt(LAYOUT_SHARE)
    layout; sqrt(1 - LAYOUT_SHARE) whole product], each part on its main axes at unit length.

    A histogram of zeros (no colour known) gives a zero vector: it adds nothing to any ranking.
    """
    prior = _prior()
    histograms = np.asarray(histograms, dtype=np.float32)
    known = histograms.sum(-1, keepdims=True) > 0
    layout = layout_roots(histograms, prior["band_roots_mean"]) - prior["layout_mean"]
    whole = whole_roots(histograms, prior["whole_roots_mean"]) - prior["whole_mean"]
    layout, whole = l2_normalize(layout @ prior["layout_axes"].T), l2_normalize(whole @ prior["whole_axes"].T)
    joined = np.concatenate([np.sqrt(LAYOUT_SHARE) * layout, np.sqrt(1 - LAYOUT_SHARE) * whole], axis=-1)
    return (joined * known).astype(np.float32)
