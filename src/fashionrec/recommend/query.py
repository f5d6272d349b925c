"""What a query may ask, checked once for every face: how many results (k), and the colour weight (0-1) and the gain
it means."""

from __future__ import annotations

import numpy as np

from fashionrec.config import COLOUR_FULL, Settings
from fashionrec.errors import FashionrecError


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


def colour_gain(colour_weight: float | None, settings: Settings, has_colour: bool = True) -> tuple[float, float]:
    """The one place the colour weight a shopper sets (0-1) becomes the gain a query applies to its colour part.

    Returns (the weight asked, 0-1, the settings' default for None; the gain g: the query is [shape; g * colour],
    `config.COLOUR_FULL` at weight 1, and 0 for a catalog without colour). Everything downstream of this function
    takes the gain, under that name (`Catalog.query_vector`, `answers.similarity_scores`).

    Raises:
        FashionrecError: not a number from 0 to 1.
    """
    weight = settings.colour_weight if colour_weight is None else colour_weight
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating)) or not 0 <= weight <= 1:
        raise FashionrecError(f"the colour weight must be a number from 0 (shape only) to 1 (colour counts most), "
                              f"got {colour_weight!r}")
    return float(weight), float(weight) * COLOUR_FULL if has_colour else 0.0
