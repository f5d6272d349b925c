"""Keras' own ResNet50 pipeline, used as the reference that fashionrec's `resnet50` must match.

Keras runs on its torch backend (no TensorFlow needed). Its ImageNet file cannot be downloaded here, so
the reference uses seeded random weights (batch-norm statistics randomised too, so no layer is an
identity) and writes them in the legacy HDF5 layout of `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402


def build_reference(seed: int = 0) -> keras.Model:
    """ResNet50(weights=None, include_top=False) + GlobalMaxPooling2D, with seeded non-trivial weights."""
    keras.utils.set_random_seed(seed)
    base = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(224, 224, 3))
    rng = np.random.default_rng(seed)
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.5, 1.5, channels).astype("float32"),
                rng.normal(0.0, 0.1, channels).astype("float32"),
                rng.normal(0.0, 0.1, channels).astype("float32"),
                rng.uniform(0.5, 1.5, channels).astype("float32"),
            ])
    pooled = keras.layers.GlobalMaxPooling2D()(base.output)
    return keras.Model(base.input, pooled)


def write_legacy_h5(model: keras.Model, path: Path) -> None:
    """Write the ResNet50 layers' weights as Keras 2 did for the published ImageNet file.

    Root attribute `layer_names`; one group per layer with attribute `weight_names`
    (`conv1_conv/kernel:0`, ...) and one dataset per weight at that name.
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.GlobalMaxPooling2D)]
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = np.array([layer.name.encode() for layer in layers])
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = b"2.2.4"
        for layer in layers:
            group = handle.create_group(layer.name)
            names = [f"{layer.name}/{weight.name}:0" for weight in layer.weights]
            group.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S")
            for name, weight in zip(names, layer.weights):
                group.create_dataset(name, data=keras.ops.convert_to_numpy(weight))


def keras_embed(model: keras.Model, paths: list[Path]) -> np.ndarray:
    """The reference recipe exactly: load_img(224x224) -> img_to_array -> preprocess_input -> predict."""
    batch = np.stack([
        keras.utils.img_to_array(keras.utils.load_img(path, target_size=(224, 224))) for path in paths
    ])
    features = model.predict(keras.applications.resnet50.preprocess_input(batch), verbose=0)
    features = np.asarray(features, dtype=np.float64)
    return features / np.linalg.norm(features, axis=1, keepdims=True)
