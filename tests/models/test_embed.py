"""models/embed.py: every backbone gives finite unit vectors, batch-independent, from any image source."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.vectors import l2_normalize
from fashionrec.models.embed import load_model
from fashionrec.models import list_models
from tests.conftest import draw_product


def _input_by_hand(name: str, picture: Image.Image) -> np.ndarray:
    """A picture already at the model's input size, normalised in numpy as each family was trained: EfficientNet-Lite
    (pixel - 127) / 128 in RGB (TF's efficientnet_lite_builder), Keras ResNet50 caffe mode (BGR minus the ImageNet
    means). At the input size no resize policy changes a pixel."""
    pixels = np.asarray(picture, dtype=np.float64)
    if name == "resnet50":
        chw = pixels[..., ::-1].transpose(2, 0, 1) - np.array([103.939, 116.779, 123.68])[:, None, None]
    else:
        chw = (pixels.transpose(2, 0, 1) - 127.0) / 128.0
    return chw.astype(np.float32)


@pytest.mark.parametrize("name", [spec.name for spec in list_models()])
def test_every_backbone_on_random_input(name: str, keras_resnet50_h5: Path) -> None:
    """Each backbone's vectors equal the model file run directly by ONNX Runtime, normalised in numpy: on random
    input, and on a photo preprocessed by hand (so decoding, channel order and normalisation are checked too)."""
    import onnxruntime as ort

    embedder = load_model(name, weights=keras_resnet50_h5 if name == "resnet50" else None)
    size = embedder.spec.input_size
    batch = np.random.default_rng(0).normal(0, 50, (3, 3, size, size)).astype(np.float32)
    vectors = embedder.embed_batch(batch)
    assert vectors.shape == (3, embedder.spec.dim) and vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    session = ort.InferenceSession(str(embedder.onnx_path), providers=["CPUExecutionProvider"])

    def by_hand(inputs: np.ndarray) -> np.ndarray:
        raw = session.run(None, {session.get_inputs()[0].name: inputs})[0].astype(np.float64)
        return raw / np.linalg.norm(raw, axis=1, keepdims=True)

    np.testing.assert_allclose(vectors, by_hand(batch), atol=1e-5)
    assert min(np.abs(vectors[i] - vectors[j]).max() for i, j in ((0, 1), (0, 2), (1, 2))) > 1e-4  # each its own
    pictures = [draw_product(seed, (size, size)) for seed in (5, 6)]
    photos = []
    for picture in pictures:
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")  # lossless: the decoded pixels are the drawn ones
        photos.append(buffer.getvalue())
    expected = by_hand(np.stack([_input_by_hand(name, picture) for picture in pictures]))
    np.testing.assert_allclose(embedder.embed_images(photos), expected, atol=1e-5)
    assert float(expected[0] @ expected[1]) < 0.9999  # the two photos are told apart


def test_rows_do_not_depend_on_the_batch(lite0) -> None:
    images = [draw_product(seed) for seed in range(10)]
    together = lite0.embed_images(images)
    alone = np.stack([lite0.embed_image(image) for image in images])
    split = np.concatenate([lite0.embed_images(images[:3]), lite0.embed_images(images[3:])])
    assert np.array_equal(together, alone) and np.array_equal(together, split)


def test_similar_images_are_nearer_than_different_ones(lite0) -> None:
    red = draw_product(3)
    vectors = lite0.embed_images([red, red.resize((120, 160)), draw_product(4)])
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_the_onnx_file_is_built_once_and_reused(lite0) -> None:
    again = load_model("efficientnet-lite0")
    assert again.onnx_path == lite0.onnx_path and again.model_id == lite0.model_id
    assert lite0.model_id.startswith("efficientnet-lite0:")


def test_l2_normalize_leaves_zero_rows_finite() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_bad_batch_shape_is_refused(lite0) -> None:
    with pytest.raises(ValueError, match="expected a batch"):
        lite0.embed_batch(np.zeros((1, 3, 10, 10), np.float32))


def test_the_mirrored_model_adds_the_mirrored_image() -> None:
    plain, mirrored = load_model("efficientnet-lite2"), load_model("efficientnet-lite2-mirrored")
    batch = np.stack([plain.prepare(draw_product(seed, (120, 160))) for seed in (1, 2, 3)])
    expected = plain.embed_batch(batch) + plain.embed_batch(np.ascontiguousarray(batch[..., ::-1]))
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(mirrored.embed_batch(batch), expected, atol=1e-5)
    assert mirrored.model_id != plain.model_id


def test_the_default_recipe_joins_three_average_pooled_maps(tmp_path: Path) -> None:
    """The shipped graph equals the recipe measured in docs/QUALITY.md, computed here from the raw feature maps."""
    import onnxruntime as ort

    from fashionrec.config import load_settings
    from fashionrec.models import get_spec
    from fashionrec.models.export import export_onnx
    from fashionrec.models.weights import locate_weights

    embedder = load_model("efficientnet-lite2")
    spec = get_spec("efficientnet-lite2")
    assert spec.taps == ("head", "last", "mid") and spec.pooling == "avg" and embedder.dim == 1280 + 352 + 120
    export_onnx(spec, locate_weights(spec, load_settings()), tmp_path / "maps.onnx", output="maps")
    batch = np.stack([embedder.prepare(draw_product(seed, (120, 160))) for seed in (1, 2, 3)])
    maps = ort.InferenceSession(str(tmp_path / "maps.onnx")).run(None, {"images": batch})
    assert [m.shape[1] for m in maps] == [1280, 352, 120] and maps[2].shape[2] == 17
    expected = l2_normalize(np.concatenate([l2_normalize(m.mean(axis=(2, 3))) for m in maps], axis=1))
    np.testing.assert_allclose(embedder.embed_batch(batch), expected, atol=1e-5)
