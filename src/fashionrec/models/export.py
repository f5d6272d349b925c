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
from typing import Literal

from fashionrec.errors import ModelError
from fashionrec.models.garments import GARMENT_MAPS, LOG_NORM, locates_garments
from fashionrec.models.spec import ModelSpec

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "features"
OPSET = 17
GEM_P = 3.0
GEM_EPS = 1e-6


Output = Literal["pooled", "maps", "logits"]


def export_onnx(spec: ModelSpec, weights_path: Path, target: Path, output: Output = "pooled") -> None:
    """Build `spec` with the given weights in torch and write it to `target` as ONNX, atomically.

    The graph takes preprocessed images (N, 3, S, S) and returns, by `output`:
    - "pooled": pooled, not yet normalised, features (N, dim), what fashionrec embeds with;
    - "maps": the spec's feature maps before pooling (a list of (N, C, h, w)), so a benchmark can compare poolings
      from one pass;
    - "logits": the ImageNet logits (N, 1000) of the whole network, classifier kept, so a test can compare the
      exported graph with the reference implementation its weights were trained in.
    The batch dimension is dynamic. An int8 spec's "pooled" graph is then quantised (`models.quantize`): what it
    embeds with; its "maps" and "logits" stay float.

    Raises:
        ModelError: torch (or a builder's package) is not installed; an int8 spec's ranges are missing, modified or
            for another graph, or cannot be applied (`models.quantize.quantize`).
    """
    try:
        import torch
    except ImportError:
        raise ModelError(
            f"the ONNX file for {spec.name} is not built yet and building it needs torch: "
            "pip install torch==2.13.0 'fashionrec[export]'"
        ) from None
    quantised = bool(spec.int8_ranges) and output == "pooled"  # the other outputs are float diagnostics
    if quantised:  # checked before the slow export: ranges missing, modified or for another graph
        from fashionrec.models import quantize

        ranges = quantize.load_ranges(network_name(spec), spec.int8_ranges, spec.float_graph)
    backbone = _build_backbone(spec, weights_path, classifier=output == "logits")
    network = (_pooled(backbone, spec.pooling, spec.mirror) if output == "pooled" else backbone).eval()
    names = [OUTPUT_NAME] if output != "maps" else [f"{OUTPUT_NAME}_{tap}" for tap in spec.taps]
    if output == "pooled" and locates_garments(spec):
        network = _with_garments(network, backbone.network._fc).eval()
        names = [OUTPUT_NAME, GARMENT_MAPS, LOG_NORM]
    sample = torch.zeros(1, 3, spec.input_size, spec.input_size)
    target.parent.mkdir(parents=True, exist_ok=True)
    parts = [_part_file(target) for _ in range(2 if quantised else 1)]
    log.info("building the %s model for ONNX Runtime, once on this machine (15-40 s): %s", spec.name, target)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                network, (sample,), parts[0],
                input_names=[INPUT_NAME], output_names=names,
                dynamic_axes={INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in names}},
                opset_version=OPSET, dynamo=False,
            )
        if quantised:
            quantize.quantize(Path(parts[0]), ranges, Path(parts[1]))
        os.replace(parts[-1], target)
    finally:
        for part in parts:
            if os.path.exists(part):
                os.unlink(part)


def _part_file(target: Path) -> str:
    """A new temporary file beside `target`, published by rename once whole."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=target.stem, suffix=".onnx.part")
    os.close(fd)
    return name


def _build_backbone(spec: ModelSpec, weights_path: Path, classifier: bool = False):  # -> torch.nn.Module
    """The torch network for the spec's family: its list of feature maps, or the whole classifier (`classifier`)."""
    if spec.family == "keras-resnet50":
        if classifier or spec.taps != ("head",):
            raise ModelError("resnet50 is built as Keras' include_top=False network: its last feature map only")
        from fashionrec.models import resnet50

        return _listed(resnet50.build(weights_path))
    from fashionrec.models import efficientnet_lite

    return efficientnet_lite.build(network_name(spec), weights_path, classifier=classifier, taps=spec.taps)


def _listed(backbone):  # -> torch.nn.Module
    """A one-map network as a network returning a list of maps (as every feature extractor here does)."""
    import torch

    class Listed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [self.backbone(x)]

    return Listed()


def _with_garments(pooled, classifier):  # -> torch.nn.Module
    """The pooled network, plus from the same pass the class maps of the garment classes and the logits' log-sum-exp
    (`models.garments`): the classifier applied at each position of the head map, and to its average."""
    import torch

    from fashionrec.models.garments import CLASS_IDS

    class Located(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pooled = pooled
            rows = torch.tensor(CLASS_IDS)
            self.register_buffer("weight", classifier.weight.detach()[rows][:, :, None, None].clone())
            self.register_buffer("bias", classifier.bias.detach()[rows].clone())
            self.classifier = classifier

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            maps = self.pooled.backbone(x)
            head = maps[0]
            garments = torch.nn.functional.conv2d(head, self.weight, self.bias)
            log_norm = torch.logsumexp(self.classifier(head.mean(dim=(2, 3))), dim=1)
            return self.pooled.join(maps), garments, log_norm

    return Located()


def network_name(spec: ModelSpec) -> str:
    """The package's name of an EfficientNet-Lite spec's network (e.g. "efficientnet-lite2")."""
    return spec.weights.package.removesuffix("-pytorch-model")


def _pooled(backbone, pooling: str, mirror: bool = False):  # -> torch.nn.Module
    """Wrap a network returning feature maps with global max, average or GeM pooling (and mirror averaging).

    Several maps are pooled one by one, each brought to unit length (so none outweighs the others by its channel
    count or scale), and concatenated.
    """
    import torch
    from torch.nn.functional import normalize

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not mirror:
                return self.pool(x)
            plain, mirrored = torch.chunk(self.pool(torch.cat([x, torch.flip(x, dims=[3])])), 2)
            return normalize(plain, dim=1, eps=1e-12) + normalize(mirrored, dim=1, eps=1e-12)

        def pool(self, x: torch.Tensor) -> torch.Tensor:
            return self.join(self.backbone(x))

        def join(self, maps: list[torch.Tensor]) -> torch.Tensor:
            pooled = [self.pool_map(one) for one in maps]
            if len(pooled) == 1:
                return pooled[0]
            return torch.cat([normalize(vectors, dim=1, eps=1e-12) for vectors in pooled], dim=1)

        @staticmethod
        def pool_map(maps: torch.Tensor) -> torch.Tensor:
            if pooling == "max":
                return maps.amax(dim=(2, 3))
            if pooling == "gem":  # generalised mean, p = 3: between average (p = 1) and max (p -> inf)
                return maps.clamp(min=GEM_EPS).pow(GEM_P).mean(dim=(2, 3)).pow(1.0 / GEM_P)
            return maps.mean(dim=(2, 3))

    return Pooled()
