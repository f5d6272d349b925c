"""What a query may ask, checked once for every face: how many results (k), and the colour weight (0-1) and the gain
it means."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fashionrec.config import (
    COLOUR_LAYOUT_FULL,
    COLOUR_SHORTLIST,
    COLOUR_SHORTLIST_MIN,
    COLOUR_SHORTLIST_SHARE,
    COLOUR_SIZE_FROM,
    COLOUR_SIZE_RISE,
    COLOUR_SIZE_TO,
    COLOUR_WHOLE_FROM,
    COLOUR_WHOLE_FULL,
    Settings,
)
from fashionrec.errors import FashionrecError
from fashionrec.imaging.colour import COLOUR_DIM, LAYOUT_DIM
from fashionrec.search.block import Shortlist

if TYPE_CHECKING:
    from fashionrec.catalog.catalog import Catalog


def check_k(k: object, limit: int | None = None, name: str = "k") -> int:
    """The one check of how many results a query asks for: a whole number from 1 (to `limit`, the `max_k` setting,
    where a face bounds it before anything is loaded).

    Raises:
        FashionrecError: anything else, naming `name` (the CLI says -k) and the setting that raises the limit.
    """
    bounded = "" if limit is None else f" and at most {limit} (the limit is set by FASHIONREC_MAX_K)"
    if (not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1
            or (limit is not None and k > limit)):
        raise FashionrecError(f"{name} must be a whole number of at least 1{bounded}, got {k!r}")
    return int(k)


@dataclass(frozen=True)
class ColourGain:
    """How much a query's colour counts against its shape: the gains of the two parts of its colour vector (the
    colour layout, band by band, and the whole product's colour; `imaging.colour`). A query is [shape; gains x
    colour], so its inner product with a product is shape + layout x layout' + whole x whole'."""

    layout: float = 0.0
    whole: float = 0.0

    def __bool__(self) -> bool:
        """Whether colour counts at all (a query with colour is re-ranked within a shape shortlist)."""
        return self.layout > 0 or self.whole > 0

    @property
    def weights(self) -> np.ndarray:
        """The factor of each element of the colour vector (what `Catalog.query_vector` multiplies it by)."""
        weights = np.full(COLOUR_DIM, self.whole, dtype=np.float32)
        weights[:LAYOUT_DIM] = self.layout
        return weights


def colour_gain(colour_weight: float | None, settings: Settings, has_colour: bool = True, *,
                products: int) -> tuple[float, ColourGain]:
    """The one place the colour weight a shopper sets (0-1) becomes the gains a query applies to its colour part, in
    a catalog of `products` products.

    Returns (the weight asked, 0-1, the settings' default for None; its `ColourGain`: the layout's gain rises with
    the weight to `config.COLOUR_LAYOUT_FULL` at `config.COLOUR_WHOLE_FROM`, and with the catalog's size
    (`size_factor`), the whole product's colour comes in above that, to `config.COLOUR_WHOLE_FULL` at 1; no gain
    for a catalog without colour). Everything downstream
    of this function takes the gain, under that name (`Catalog.query_vector`, `answers.Calibration`).

    Raises:
        FashionrecError: not a number from 0 to 1.
    """
    weight = settings.colour_weight if colour_weight is None else colour_weight
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating)) or not 0 <= weight <= 1:
        raise FashionrecError(f"the colour weight must be a number from 0 (shape only) to 1 (colour counts most), "
                              f"got {colour_weight!r}")
    weight = float(weight)
    if not has_colour:
        return weight, ColourGain()
    layout = min(COLOUR_LAYOUT_FULL, COLOUR_LAYOUT_FULL * min(weight / COLOUR_WHOLE_FROM, 1.0) * size_factor(products))
    whole = COLOUR_WHOLE_FULL * max(weight - COLOUR_WHOLE_FROM, 0.0) / (1.0 - COLOUR_WHOLE_FROM)
    return weight, ColourGain(layout, whole)


def size_factor(products: int) -> float:
    """How much more the colour layout may count in a catalog of `products` (1 up to `config.COLOUR_SIZE_FROM`,
    rising with the log of the size to `config.COLOUR_SIZE_RISE` at `config.COLOUR_SIZE_TO`): the same weight then
    costs about the same articleType on every catalog (a larger one has more of the query's kind to choose from)."""
    if products <= COLOUR_SIZE_FROM:
        return 1.0
    rise = min(1.0, float(np.log(products / COLOUR_SIZE_FROM) / np.log(COLOUR_SIZE_TO / COLOUR_SIZE_FROM)))
    return 1.0 + (COLOUR_SIZE_RISE - 1.0) * rise


def shortlist_size(products: int, k: int) -> int:
    """How many of the products nearest in shape a query with colour re-ranks: `config.COLOUR_SHORTLIST_SHARE` of
    the catalog, at least COLOUR_SHORTLIST_MIN, at most COLOUR_SHORTLIST (and never fewer than the k asked for)."""
    share = int(np.ceil(COLOUR_SHORTLIST_SHARE * products))
    return max(k, min(products, COLOUR_SHORTLIST, max(COLOUR_SHORTLIST_MIN, share)))


def colour_ranking(catalog: Catalog, gain: ColourGain) -> tuple[Callable[[np.ndarray], np.ndarray], Shortlist | None]:
    """How a whole-catalog search (`search.block.block_neighbours`: evaluation, similar-all) ranks as every face
    does: (its `as_query`, the rows weighed by `gain`; its shape `Shortlist` when colour counts, else None)."""
    def as_query(rows: np.ndarray) -> np.ndarray:
        return catalog.query_vector(rows, gain.weights)

    def shape_only(rows: np.ndarray) -> np.ndarray:
        return catalog.query_vector(rows, 0.0)

    return as_query, Shortlist(shape_only, shortlist_size(len(catalog), 1)) if gain else None
