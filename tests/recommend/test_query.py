"""recommend/query.py: the colour weight becomes its gains in one place, by the catalog's size too."""

from __future__ import annotations

import pytest

from fashionrec.config import COLOUR_LAYOUT_FULL, COLOUR_SIZE_FROM, COLOUR_SIZE_RISE, COLOUR_SIZE_TO, load_settings
from fashionrec.errors import FashionrecError
from fashionrec.recommend.query import colour_gain, size_factor


def test_the_layout_gain_grows_with_the_catalog_between_two_sizes_and_then_stays() -> None:
    settings = load_settings()
    gains = {n: colour_gain(0.12, settings, products=n)[1] for n in (10, 400, COLOUR_SIZE_FROM, 1_000,
                                                                    COLOUR_SIZE_TO, 1_000_000)}
    assert gains[10] == gains[400] == gains[COLOUR_SIZE_FROM]  # small shops: what was measured on them
    assert gains[COLOUR_SIZE_FROM].layout < gains[1_000].layout < gains[COLOUR_SIZE_TO].layout
    assert gains[COLOUR_SIZE_TO] == gains[1_000_000]  # flat past the largest catalog measured
    assert gains[COLOUR_SIZE_TO].layout == pytest.approx(COLOUR_SIZE_RISE * gains[400].layout)
    assert all(gain.whole == 0 for gain in gains.values())  # the whole product's colour only above W 0.5
    assert size_factor(COLOUR_SIZE_FROM) == 1.0 and size_factor(COLOUR_SIZE_TO) == pytest.approx(COLOUR_SIZE_RISE)


def test_the_strongest_setting_is_the_same_on_every_catalog_and_bad_weights_are_refused() -> None:
    settings = load_settings()
    strongest = {colour_gain(1.0, settings, products=n)[1] for n in (50, 5_000, 100_000)}
    assert len(strongest) == 1 and next(iter(strongest)).layout == COLOUR_LAYOUT_FULL  # capped, not raised
    assert not colour_gain(0.0, settings, products=100_000)[1]  # shape only stays shape only
    assert not colour_gain(0.5, settings, has_colour=False, products=100_000)[1]
    for bad in (-0.1, 1.5, "red", True):
        with pytest.raises(FashionrecError, match="colour weight"):
            colour_gain(bad, settings, products=100)
