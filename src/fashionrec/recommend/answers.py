"""What a query answers: `Recommendations` of `Match`es, and the similarity figure every face shows."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fashionrec.imaging.colour import LAYOUT_DIM, LAYOUT_SHARE
from fashionrec.recommend.query import ColourGain

DEFAULT_K = 5


SIMILARITY_MEANING = ("similarity: the share of this catalog's product pairs that are less alike than this match, "
                      "at the same colour weight (shown as a percentage: 99% means more alike than 99 pairs in 100; "
                      "near copies of the query reach 100%); it ranks as the search does, and a good match reads "
                      "high in any catalog (in a catalog of fewer than 15 products, too few pairs to compare with, it "
                      "is the cosine below). `cosine` (JSON only) is the raw figure: the cosine of the shape vectors "
                      "in the catalog's search space, with colour the weighted mean of it and the colour vectors' "
                      "cosines (1 for the same image)")
"""What the one figure the CLI, the API and the web app show for a match means (they all show `Match.similarity`)."""

TIE = 1e-5  # scores this close are the same figure (float32 sums of a few hundred terms differ by ~1e-6)
PAIR_SAMPLE_PRODUCTS = 400  # products whose pairs (79,800) the figure is read against: resolution ~0.001%
MIN_PAIRS = 100  # fewer sample pairs than this (a catalog of under 15 products): the figure is the cosine


@dataclass(frozen=True)
class Match:
    """One recommended product."""

    id: str
    distance: float  # Euclidean distance between the query and the product's search vector (what search ranks by)
    image: str  # path of the product's image file
    metadata: dict[str, str | None]
    similarity: float  # the figure every face shows (see SIMILARITY_MEANING): 1 = more alike than every pair
    colours: list[dict] = field(default_factory=list)  # dominant colours [{"rgb": "#a31f2b", "share": 0.62}, ...]
    cosine: float = 0.0  # the raw figure (SIMILARITY_MEANING): 1 = the same image


@dataclass(frozen=True)
class PairScores:
    """The parts of the scores of pairs of catalog products (a fixed sample of them), so that the figure of a match
    can be read against them at any colour gain: shape, colour layout and whole-product colour inner products."""

    shape: np.ndarray  # (pairs,) float32
    layout: np.ndarray
    whole: np.ndarray
    _sorted: dict = field(default_factory=dict, compare=False, repr=False)  # gains -> sorted scores (few weights)

    @classmethod
    def of(cls, shape: np.ndarray, colour: np.ndarray | None) -> PairScores:
        """Every pair of the rows of `shape` (unit shape parts) and `colour` (their colour vectors, or None)."""
        upper = np.triu_indices(len(shape), k=1)
        parts = [(shape @ shape.T)[upper]]
        for part in (colour[:, :LAYOUT_DIM], colour[:, LAYOUT_DIM:]) if colour is not None else ():
            parts.append((part @ part.T)[upper])
        while len(parts) < 3:
            parts.append(np.zeros_like(parts[0]))
        return cls(*(np.asarray(part, dtype=np.float32) for part in parts))

    def sorted_scores(self, gain: ColourGain) -> np.ndarray:
        """The pairs' scores at `gain`, sorted: kept per gain, as a shop's queries use a few weights (a sort of 80,000
        scores costs milliseconds; a look-up of the figures microseconds)."""
        key = (gain.layout, gain.whole)
        scores = self._sorted.get(key)  # never read back after a write: a server's threads share this cache
        if scores is None:
            scores = np.sort(self.shape + gain.layout * self.layout + gain.whole * self.whole)
            if len(self._sorted) >= 64:
                self._sorted.clear()
            self._sorted[key] = scores
        return scores

    def figures(self, inner: np.ndarray, gain: ColourGain) -> np.ndarray:
        """SIMILARITY_MEANING for matches whose inner product with the query is `inner`: the share of pairs with a
        lower score at this gain (ties, within TIE of each other, count half: a match in the sample itself ties with
        its own pair, whatever the rounding of either sum)."""
        scores = self.sorted_scores(gain)
        if len(scores) < MIN_PAIRS:  # a share of a few pairs would jump from 0% to 100%: the cosine is all there is
            return np.clip(raw_cosines(inner, gain), 0.0, 1.0).astype(np.float32)
        below = np.searchsorted(scores, inner - TIE, side="left") + np.searchsorted(scores, inner + TIE, side="right")
        return (below / (2.0 * len(scores))).astype(np.float32)


def catalog_pair_scores(shape_part: Callable[[np.ndarray], np.ndarray], colour_dim: int,
                        vectors: np.ndarray) -> PairScores:
    """`PairScores` of the search `vectors` of a catalog's pair sample (`sample_positions`)."""
    return PairScores.of(shape_part(vectors), vectors[:, -colour_dim:] if colour_dim else None)


def percent(similarity: float) -> str:
    """The similarity as the CLI table and the web app show it: a percentage to two decimals (good matches sit
    above 99%, where one decimal would show them all alike)."""
    return f"{similarity:.2%}"


def raw_cosines(inner: np.ndarray, gain: ColourGain) -> np.ndarray:
    """The raw figure (`Match.cosine`): inner products over what an exact copy scores (1 + the gains, each times its
    part's share of the unit colour vector), so that the same image is 1 and no colour gives the shape cosine."""
    return (np.asarray(inner, np.float32) / (1.0 + LAYOUT_SHARE * gain.layout + (1 - LAYOUT_SHARE) * gain.whole))


def sample_positions(content_hashes: Sequence[str], size: int = PAIR_SAMPLE_PRODUCTS) -> np.ndarray:
    """Rows of the `size` products with the smallest content hashes, one per distinct image: a sample that a new
    product changes only when it enters it, so the figures stay put as a catalog grows."""
    if hasattr(content_hashes, "smallest_distinct"):  # a snapshot's `catalog.packed.HexDigests`: no dict of them all
        return np.sort(content_hashes.smallest_distinct(size))
    first: dict[str, int] = {}
    for position, digest in enumerate(content_hashes):
        first.setdefault(digest, position)
    return np.sort(np.array([first[d] for d in heapq.nsmallest(size, first)], dtype=np.int64))


@dataclass(frozen=True)
class Recommendations:
    """The answer to one query: the model that produced it and the matches, nearest first."""

    model: str
    results: list[Match]
    notice: str | None = None  # set when a filter matched nothing: which one, and the values there are
    colour_weight: float = 0.0  # how much colour counted (0-1; see `Recommender.by_image`)
    # A photo of a person: the garments found, each with its own answers; `results` are those of `region`.
    regions: tuple[RegionAnswer, ...] = ()
    region: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by the CLI (`--json`) and the REST API: each match's figure is `similarity`."""
        return {"model": self.model, "colour_weight": self.colour_weight, "results": _matches(self.results),
                "notice": self.notice, "region": self.region,
                "regions": [{"kind": r.kind, "box": list(r.box), "score": r.score, "results": _matches(r.results),
                             "notice": r.notice}
                            for r in self.regions]}


@dataclass(frozen=True)
class RegionAnswer:
    """One garment found in a photo of a person: its kind ("top", "bottom", "dress", "shoes", "bag"), its box
    (x0, y0, x1, y1) in the photo's pixels as uploaded (after EXIF rotation), how probable the classifier finds it
    (0-1), and the products most like what is in the box."""

    kind: str
    box: tuple[int, int, int, int]
    score: float
    results: list[Match]
    notice: str | None = None  # as `Recommendations.notice`, for this region's search


def _matches(matches: list[Match]) -> list[dict[str, Any]]:
    """Matches as JSON objects."""
    return [{"id": m.id, "similarity": m.similarity, "cosine": m.cosine, "image": m.image, "metadata": m.metadata,
             "colours": m.colours} for m in matches]
