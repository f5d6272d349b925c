"""models/efficientnet_lite.py and export.py: the exported graph is the network the weights were trained for.

For every registered EfficientNet-Lite network, the ONNX graph fashionrec exports (with its classifier kept for
the test) must give the ImageNet logits of the package's own untouched torch network on the same inputs: same
top-1 class, logits cosine >= 0.9999. Version 1 of the export swapped every ReLU6 for Swish; its graph gave
other classes on every real photo (ImageNet class 852, 'tennis ball', for 9 of the 17 shoppers' photos), which
this test catches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the export needs torch")

from fashionrec.config import load_settings  # noqa: E402
from fashionrec.imaging.preprocess import load_model_input  # noqa: E402
from fashionrec.models import get_spec, list_models  # noqa: E402
from fashionrec.models.efficientnet_lite import load_network  # noqa: E402
from fashionrec.models.export import export_onnx, network_name  # noqa: E402
from fashionrec.models.weights import locate_weights  # noqa: E402
from tests.conftest import draw_product  # noqa: E402

# One spec per distinct network (the mirrored and int8 models share lite2's network; int8 is checked in test_quantize).
LITE_SPECS = {network_name(s): s.name for s in list_models() if s.family == "efficientnet-lite" and not s.int8_ranges}


def _logits_pair(spec_name: str, images: list, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(exported ONNX logits, the package's own torch logits) for the same preprocessed images."""
    import onnxruntime as ort

    spec = get_spec(spec_name)
    weights = locate_weights(spec, load_settings())
    onnx_path = tmp_path / f"{spec.name}-logits.onnx"
    export_onnx(spec, weights, onnx_path, output="logits")
    batch = np.stack([load_model_input(image, spec.preprocessing, 10**9) for image in images])
    ours = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"images": batch})[0]
    with torch.no_grad():
        reference = load_network(network_name(spec), weights)(torch.from_numpy(batch)).numpy()
    return ours, reference


def _assert_same_network(ours: np.ndarray, reference: np.ndarray) -> None:
    cosine = np.sum(ours * reference, axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert np.array_equal(ours.argmax(axis=1), reference.argmax(axis=1)), (
        f"top-1 differs: ours {ours.argmax(axis=1).tolist()}, package {reference.argmax(axis=1).tolist()}")
    assert cosine.min() >= 0.9999, f"logits cosine per image: {np.round(cosine, 6).tolist()}"


@pytest.mark.parametrize("network", sorted(LITE_SPECS))
def test_exported_logits_equal_the_package_network_on_real_photos(network: str, sample_dir: Path,
                                                                  tmp_path: Path) -> None:
    photos = sorted((sample_dir / "queries_fullres").glob("*.jpg"))
    catalog_images = sorted((sample_dir / "images").glob("*.jpg"))[::600]
    ours, reference = _logits_pair(LITE_SPECS[network], photos + catalog_images, tmp_path)
    _assert_same_network(ours, reference)
    # The shoppers' photos are real clothing: the untouched network's top-1 is garment-like, not one class for all.
    assert len(set(reference[: len(photos)].argmax(axis=1).tolist())) >= 6


@pytest.mark.parametrize("network", sorted(LITE_SPECS))
def test_exported_logits_equal_the_package_network_on_drawn_images(network: str, tmp_path: Path) -> None:
    images = [draw_product(seed, (120, 160)) for seed in range(6)]
    _assert_same_network(*_logits_pair(LITE_SPECS[network], images, tmp_path))


def test_relu6_is_kept_and_only_memory_efficient_swish_is_swapped() -> None:
    from efficientnet_lite_pytorch.utils import MemoryEfficientSwish, Swish

    from fashionrec.models.efficientnet_lite import build, traceable

    spec = get_spec("efficientnet-lite0")
    network = build(network_name(spec), locate_weights(spec, load_settings()), classifier=True)
    kinds = {type(module).__name__ for module in network.modules()}
    assert "ReLU6" in kinds and "Swish" not in kinds and "MemoryEfficientSwish" not in kinds

    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act, self.keep = MemoryEfficientSwish(), torch.nn.ReLU6()

    swapped = traceable(Holder())
    assert isinstance(swapped.act, Swish) and isinstance(swapped.keep, torch.nn.ReLU6)
    x = torch.linspace(-4, 4, 9)
    torch.testing.assert_close(swapped.act(x), MemoryEfficientSwish()(x))
