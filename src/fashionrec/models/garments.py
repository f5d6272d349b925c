"""Where the garments are in a photo, from the classifier's own class activation maps (CAM), no other model.

The EfficientNet-Lite classifier is a linear layer on the average of its head map, so applying that layer at each
position of the map (a 1x1 convolution) says where each ImageNet class is seen (Zhou et al., "Learning Deep
Features for Discriminative Localization", 2016). The exported graph returns, beside the embedding and from the
same forward pass, these maps for the ImageNet classes of garments grouped below by kind, and the log-sum-exp of
all 1,000 logits, so each kind's probability is the sum of its classes' softmax.

A kind's box: its probability-weighted class map, upsampled, cut at `PEAK_SHARE` of its peak, and the connected
part around the peak. Measured on the 23 VITON-HD pairs (benchmarks/onmodel.py, issue 23): cuts at 0.5-0.7 of
the peak gave the worn top's product in the top 5 for 15-16 of 23, 0.4 and 0.8 fewer; 0.6 is the middle.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from fashionrec.config import GARMENT_KINDS
from fashionrec.models.spec import ModelSpec

# ImageNet-1k class indices of what is worn, by the kind a shopper would call it.
GARMENT_CLASSES: dict[str, tuple[int, ...]] = {
    # cardigan, jersey (T-shirt), sweatshirt, lab coat, trench coat, poncho, fur coat, military uniform,
    # brassiere, bulletproof vest, suit, stole
    "top": (474, 610, 841, 617, 869, 735, 568, 652, 459, 465, 834, 824),
    # jean, miniskirt, overskirt, hoopskirt, sarong, swimming trunks
    "bottom": (608, 655, 689, 601, 775, 842),
    # gown, abaya, academic gown, kimono, pajama, vestment, maillot (two), bikini
    "dress": (578, 399, 400, 614, 697, 887, 638, 639, 445),
    # running shoe, loafer, cowboy boot, clog, sandal, sock
    "shoes": (770, 630, 514, 502, 774, 806),
    # purse, backpack, mailbag, wallet
    "bag": (748, 414, 636, 893),
}
KINDS: tuple[str, ...] = GARMENT_KINDS
assert tuple(GARMENT_CLASSES) == KINDS, "the class table names the kinds of config.GARMENT_KINDS, in that order"
CLASS_IDS: tuple[int, ...] = tuple(c for kind in KINDS for c in GARMENT_CLASSES[kind])
GARMENT_MAPS = "garment_maps"  # the graph's output: class maps of CLASS_IDS (N, C, h, w), bias included
LOG_NORM = "log_norm"  # the graph's output: log-sum-exp of the 1,000 ImageNet logits (N,)
PEAK_SHARE = 0.6
UPSAMPLE = 8


def classes_tag() -> str:
    """A short digest of the class list: the exported graph's file is named by it, so a new list builds anew."""
    return hashlib.sha256(",".join(map(str, CLASS_IDS)).encode()).hexdigest()[:8]


def locates_garments(spec: ModelSpec) -> bool:
    """Whether the exported graph also says where garments are: EfficientNet-Lite (its ImageNet classifier ships
    with the weights) seen once, its head map first. ResNet50 is Keras' include_top=False network: no classifier.
    """
    return spec.family == "efficientnet-lite" and not spec.mirror and spec.taps[0] == "head"


@dataclass(frozen=True)
class Garment:
    """A kind of garment seen in a photo: its probability and its box (x0, y0, x1, y1) in the photo's pixels."""

    kind: str
    score: float
    box: tuple[int, int, int, int]


def find_garments(maps: np.ndarray, log_norm: float, photo_size: tuple[int, int], min_score: float,
                  limit: int) -> list[Garment]:
    """The kinds seen in one photo with a probability of at least `min_score`, at most `limit`, most probable
    first, each with its box.

    Args:
        maps: the class maps of `CLASS_IDS` (C, h, w) for the photo padded on white to the model's square input,
            centred (the `pad` resize of EfficientNet-Lite), bias included: a class's logit is its map's mean.
        log_norm: log-sum-exp of the photo's 1,000 logits.
        photo_size: the photo's (width, height), in which the boxes are given.
    """
    probabilities = np.exp(maps.mean(axis=(1, 2)) - log_norm)
    spans = dict(zip(KINDS, np.split(np.arange(len(CLASS_IDS)), np.cumsum([len(GARMENT_CLASSES[k]) for k in KINDS])[:-1])))
    scores = {kind: min(1.0, float(probabilities[rows].sum())) for kind, rows in spans.items()}  # float32 sums
    kept = sorted((kind for kind in KINDS if scores[kind] >= min_score), key=lambda kind: -scores[kind])[:limit]
    return [Garment(kind, scores[kind], _box(np.tensordot(probabilities[spans[kind]], maps[spans[kind]], axes=1),
                                             photo_size)) for kind in kept]


def _box(kind_map: np.ndarray, photo_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box, in the photo's pixels, of the connected part of the map above `PEAK_SHARE` of its peak."""
    fine = upsample(np.maximum(kind_map, 0.0), UPSAMPLE)
    ys, xs = _component(fine >= PEAK_SHARE * fine.max(), np.unravel_index(int(np.argmax(fine)), fine.shape))
    width, height = photo_size
    side = max(width, height)  # the padded square, in photo pixels; the photo sits centred in it
    cell = side / fine.shape[0]
    left, top = (side - width) / 2, (side - height) / 2
    x0, x1 = xs.min() * cell - left, (xs.max() + 1) * cell - left
    y0, y1 = ys.min() * cell - top, (ys.max() + 1) * cell - top
    box = (max(0, round(x0)), max(0, round(y0)), min(width, round(x1)), min(height, round(y1)))
    return box if box[2] > box[0] and box[3] > box[1] else (0, 0, width, height)


def upsample(grid: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear upsampling of a 2-d map by an integer factor, cell centres aligned (as `align_corners=False`)."""
    height, width = grid.shape

    def axis(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        at = np.clip((np.arange(n * factor) + 0.5) / factor - 0.5, 0, n - 1)
        low = np.floor(at).astype(int)
        return low, np.minimum(low + 1, n - 1), at - low

    y0, y1, wy = axis(height)
    x0, x1, wx = axis(width)
    rows = grid[y0] * (1 - wy)[:, None] + grid[y1] * wy[:, None]
    return rows[:, x0] * (1 - wx)[None, :] + rows[:, x1] * wx[None, :]


def _component(mask: np.ndarray, start: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the 4-connected part of `mask` that holds `start`."""
    seen = np.zeros_like(mask, dtype=bool)
    seen[start] = True
    todo = [tuple(int(v) for v in start)]
    while todo:
        y, x = todo.pop()
        for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
            if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                seen[ny, nx] = True
                todo.append((ny, nx))
    return np.nonzero(seen)
