"""The reference recipe is exact: fashionrec's resnet50 gives Keras' own vectors on real images.

Keras' ImageNet file cannot be downloaded here, so Keras generates the weights (seeded, batch-norm
statistics randomised) and they travel through an HDF5 file in the legacy layout of that file, which
Keras' own loader reads back identically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_products

keras_reference = pytest.importorskip("tests.models.keras_reference", reason="keras (torch backend) is needed")


@pytest.fixture(scope="module")
def reference_model():
    return keras_reference.build_reference(seed=0)


def test_the_h5_file_has_keras_legacy_layout(keras_resnet50_h5: Path, reference_model) -> None:
    reloaded = keras_reference.build_reference(seed=1)
    reloaded.load_weights(keras_resnet50_h5)  # Keras' own legacy-HDF5 loader
    for ours, theirs in zip(reference_model.weights, reloaded.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def _exactness_images(sample_dir: Path | None, tmp_path: Path) -> list[Path]:
    if sample_dir is None:
        return write_products(tmp_path, range(8))
    images = sorted((sample_dir / "images").glob("*.jpg"))
    from PIL import Image

    greys = [p for p in images[:600] if Image.open(p).mode == "L"][:3]
    return images[:9] + greys


@pytest.mark.parametrize("data", ["real", "drawn"])
def test_vectors_match_keras(data: str, request, keras_resnet50_h5: Path, reference_model, tmp_path: Path) -> None:
    from fashionrec.models.embed import load_model

    sample = request.getfixturevalue("sample_dir") if data == "real" else None
    paths = _exactness_images(sample, tmp_path)
    expected = keras_reference.keras_embed(reference_model, paths)
    embedder = load_model("resnet50", weights=keras_resnet50_h5)
    ours = embedder.embed_images(paths)
    assert ours.shape == (len(paths), 2048)
    cosine = np.sum(ours * expected, axis=1)
    assert cosine.min() >= 0.9999, f"per-image cosine to Keras: {np.round(cosine, 6).tolist()}"


def test_a_file_of_another_network_is_refused(tmp_path: Path) -> None:
    import h5py

    from fashionrec.models.embed import load_model
    from fashionrec.errors import ModelError

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = np.array([b"dense"])
        group = handle.create_group("dense")
        group.attrs["weight_names"] = np.array([b"dense/kernel:0"])
        group.create_dataset("dense/kernel:0", data=np.zeros((2, 2), np.float32))
    with pytest.raises(ModelError, match="no layer 'conv1_conv'"):
        load_model("resnet50", weights=path)
