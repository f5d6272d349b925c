"""Keras' ResNet50 (include_top=False) rebuilt in torch, layer for layer, loaded from Keras' HDF5 file.

The layers carry Keras' own names (`conv1_conv`, `conv2_block1_1_bn`, ...) so weights are matched by
name, the way Keras lays out `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`. Padding follows
Keras exactly: zero padding 3 before the 7x7 stem, zero padding 1 before the 3x3 max pool, strides on
the first 1x1 convolution of each stage, batch norm epsilon 1.001e-5.
Imported only to build the ONNX file (needs torch and h5py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fashionrec.errors import ModelError

BN_EPSILON = 1.001e-5
# (stage name, filters, blocks, stride of the first block), as in keras.applications.resnet.ResNet50.
STAGES = (("conv2", 64, 3, 1), ("conv3", 128, 4, 2), ("conv4", 256, 6, 2), ("conv5", 512, 3, 2))


class KerasResNet50(nn.Module):
    """ResNet50 v1 with Keras' layer names; returns the last feature map (N, 2048, 7, 7) for 224 input."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleDict()
        self._conv("conv1_conv", 3, 64, 7, stride=2)
        self._bn("conv1_bn", 64)
        in_channels = 64
        for stage, filters, blocks, stride in STAGES:
            for index in range(1, blocks + 1):
                name = f"{stage}_block{index}"
                if index == 1:
                    self._conv(f"{name}_0_conv", in_channels, 4 * filters, 1, stride=stride)
                    self._bn(f"{name}_0_bn", 4 * filters)
                self._conv(f"{name}_1_conv", in_channels, filters, 1, stride=stride if index == 1 else 1)
                self._bn(f"{name}_1_bn", filters)
                self._conv(f"{name}_2_conv", filters, filters, 3, padding=1)
                self._bn(f"{name}_2_bn", filters)
                self._conv(f"{name}_3_conv", filters, 4 * filters, 1)
                self._bn(f"{name}_3_bn", 4 * filters)
                in_channels = 4 * filters

    def _conv(self, name: str, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        """Register a biased convolution under its Keras name."""
        self.layers[name] = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)

    def _bn(self, name: str, channels: int) -> None:
        """Register a batch norm with Keras' epsilon under its Keras name."""
        self.layers[name] = nn.BatchNorm2d(channels, eps=BN_EPSILON)

    def _block(self, x: torch.Tensor, name: str, shortcut_conv: bool) -> torch.Tensor:
        """Keras `block1`: bottleneck 1x1 -> 3x3 -> 1x1, plus the (projected) shortcut."""
        layer = self.layers
        shortcut = layer[f"{name}_0_bn"](layer[f"{name}_0_conv"](x)) if shortcut_conv else x
        x = F.relu(layer[f"{name}_1_bn"](layer[f"{name}_1_conv"](x)))
        x = F.relu(layer[f"{name}_2_bn"](layer[f"{name}_2_conv"](x)))
        x = layer[f"{name}_3_bn"](layer[f"{name}_3_conv"](x))
        return F.relu(shortcut + x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Caffe-preprocessed BGR images (N, 3, 224, 224) to the last feature map."""
        x = F.pad(x, (3, 3, 3, 3))
        x = F.relu(self.layers["conv1_bn"](self.layers["conv1_conv"](x)))
        x = F.max_pool2d(F.pad(x, (1, 1, 1, 1)), kernel_size=3, stride=2)
        for stage, _filters, blocks, _stride in STAGES:
            for index in range(1, blocks + 1):
                x = self._block(x, f"{stage}_block{index}", shortcut_conv=index == 1)
        return x


def read_keras_h5(path: Path) -> dict[str, list[np.ndarray]]:
    """Read a Keras legacy HDF5 weights file into {layer name: [arrays in Keras' order]}.

    Raises:
        ModelError: the file is not a Keras weights file.
    """
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            root = handle["model_weights"] if "model_weights" in handle else handle
            names = [_text(n) for n in root.attrs["layer_names"]]
            return {
                name: [np.asarray(root[name][_text(w)]) for w in root[name].attrs["weight_names"]]
                for name in names
                if len(root[name].attrs.get("weight_names", [])) > 0
            }
    except (OSError, KeyError) as exc:
        raise ModelError(f"{path} is not a readable Keras weights file ({exc})") from None


def _text(value: bytes | str) -> str:
    """HDF5 attributes hold bytes or str depending on the writer."""
    return value.decode() if isinstance(value, bytes) else value


def load_keras_weights(model: KerasResNet50, weights: dict[str, list[np.ndarray]]) -> None:
    """Copy Keras arrays into the torch layers (kernels HWIO -> OIHW; BN gamma, beta, mean, var).

    Raises:
        ModelError: a layer is missing from the file or has the wrong shape.
    """
    with torch.no_grad():
        for name, layer in model.layers.items():
            if name not in weights:
                raise ModelError(f"the weights file has no layer {name!r}: it is not a Keras ResNet50 file")
            arrays = weights[name]
            if isinstance(layer, nn.Conv2d):
                targets = [(layer.weight, arrays[0].transpose(3, 2, 0, 1)), (layer.bias, arrays[1])]
            else:
                targets = [(layer.weight, arrays[0]), (layer.bias, arrays[1]),
                           (layer.running_mean, arrays[2]), (layer.running_var, arrays[3])]
            for tensor, array in targets:
                if tuple(tensor.shape) != array.shape:
                    raise ModelError(f"layer {name!r} has shape {array.shape}, expected {tuple(tensor.shape)}")
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))


def build(weights_path: Path) -> nn.Module:
    """The Keras ResNet50 feature extractor with the weights of `weights_path`, in eval mode."""
    model = KerasResNet50()
    load_keras_weights(model, read_keras_h5(weights_path))
    return model.eval()
