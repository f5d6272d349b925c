"""models/garments: the class activation maps of the exported graph against the package's own network, and the
boxes read from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fashionrec.config import load_settings
from fashionrec.imaging.preprocess import preprocess
from fashionrec.models.efficientnet_lite import load_network
from fashionrec.models.export import network_name
from fashionrec.models.garments import CLASS_IDS, GARMENT_CLASSES, find_garments, upsample
from fashionrec.models.weights import locate_weights
from tests.conftest import draw_product


def test_the_graphs_garment_maps_are_the_untouched_networks_cam(lite0) -> None:
    """Each class map's mean is the package network's logit of that class, the log-norm its logits' log-sum-exp,
    and the embedding is what the graph without them gives."""
    network = load_network(network_name(lite0.spec), locate_weights(lite0.spec, load_settings()))
    images = np.stack([preprocess(draw_product(seed, (120, 160)), lite0.spec.preprocessing) for seed in (1, 2)])
    vectors, maps, log_norm = lite0.embed_and_locate(images)
    with torch.no_grad():
        logits = network(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(maps.mean(axis=(2, 3)), logits[:, list(CLASS_IDS)], atol=2e-3)
    np.testing.assert_allclose(log_norm, torch.logsumexp(torch.from_numpy(logits), 1).numpy(), atol=2e-3)
    np.testing.assert_array_equal(vectors, lite0.embed_batch(images))


def test_a_kinds_box_is_where_its_map_peaks() -> None:
    maps = np.full((len(CLASS_IDS), 8, 8), -5.0, dtype=np.float32)
    jean = CLASS_IDS.index(GARMENT_CLASSES["bottom"][0])
    maps[jean, 5:7, 2:4] = 200.0  # a strong blob low and left in the padded square
    found = find_garments(maps, log_norm=float(np.log(np.exp(maps.mean(axis=(1, 2))).sum())), photo_size=(600, 800),
                          min_score=0.05, limit=3)
    assert [g.kind for g in found] == ["bottom"]
    x0, y0, x1, y1 = found[0].box
    # The 800-high photo fills the square's height; its 600 width sits centred (100 px of padding each side).
    assert 0 <= x0 < x1 <= 300 and 450 <= y0 < y1 <= 800


def test_limit_and_score_floor() -> None:
    maps = np.zeros((len(CLASS_IDS), 4, 4), dtype=np.float32)
    log_norm = float(np.log(1000.0))  # every class (of 1,000) equally probable: each kind far below 0.05
    assert find_garments(maps, log_norm, (60, 80), min_score=0.05, limit=3) == []
    assert [g.kind for g in find_garments(maps, log_norm, (60, 80), min_score=0.0, limit=2)] == ["top", "dress"]


@pytest.mark.parametrize("factor", [2, 8])
def test_upsampling_is_bilinear_between_cell_centres(factor: int) -> None:
    grid = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert np.allclose(upsample(np.ones((3, 5)), factor), 1.0)
    fine = upsample(grid, factor)
    assert fine.shape == (4 * factor, 4 * factor) and fine.min() == 0 and fine.max() == 15
    # A linear ramp stays linear: each fine cell is the ramp at its own centre (clamped at the borders).
    centres = np.clip((np.arange(4 * factor) + 0.5) / factor - 0.5, 0, 3)
    assert np.allclose(fine, 4 * centres[:, None] + centres[None, :])
