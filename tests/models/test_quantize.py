"""models/quantize.py: the int8 model is the float network quantised with the shipped ranges, and stays close to it.

The reference of the int8 model is the float model it is quantised from (itself checked against the package's own
torch network in test_efficientnet_lite): on real photos each int8 vector must point where its float vector does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fashionrec.errors import ModelError
from fashionrec.models import get_spec, quantize
from fashionrec.models.embed import load_model

INT8 = "efficientnet-lite2-int8"


def test_the_int8_model_is_pinned_to_its_shipped_ranges() -> None:
    spec, plain = get_spec(INT8), get_spec("efficientnet-lite2")
    assert spec.int8_ranges == quantize.ranges_digest(quantize.ranges_path("efficientnet-lite2")), (
        "the ranges file changed: put its new digest in models/registry.py (_INT8_RANGES)")
    assert not plain.int8_ranges and plain.fingerprint() == "839d7753", (
        "the float model's id moved: every float catalog would have to be embedded again")
    assert spec.model_id("ab" * 32) != plain.model_id("ab" * 32)  # int8 vectors never mix with float ones
    other = get_spec(INT8, int8_ranges="00000000")  # other ranges: another model, whose vectors never mix either
    assert other.fingerprint() != spec.fingerprint() and other.model_id("ab" * 32) != spec.model_id("ab" * 32)
    assert spec.float_graph == plain.fingerprint()
    assert (spec.dim, spec.preprocessing, spec.taps) == (plain.dim, plain.preprocessing, plain.taps)


def test_ranges_other_than_the_pinned_ones_are_refused(tmp_path: Path, monkeypatch) -> None:
    spec = get_spec(INT8)
    with pytest.raises(ModelError, match="not the int8 ranges this version"):
        quantize.load_ranges("efficientnet-lite2", "00000000", spec.float_graph)
    with pytest.raises(ModelError, match="has no int8 ranges"):
        quantize.load_ranges("efficientnet-lite0", "00000000", spec.float_graph)
    with pytest.raises(ModelError, match="calibrated on another build of efficientnet-lite2"):
        quantize.load_ranges("efficientnet-lite2", spec.int8_ranges, "0ther000")
    shipped = quantize.load_ranges("efficientnet-lite2", spec.int8_ranges, spec.float_graph)
    assert shipped and all(low <= high for low, high in shipped.values())
    monkeypatch.setattr(quantize, "ranges_path", lambda network: tmp_path / "ranges.json")
    quantize.write_ranges(shipped, tmp_path / "ranges.json", spec.float_graph, "test")
    digest = quantize.ranges_digest(tmp_path / "ranges.json")
    assert quantize.load_ranges("efficientnet-lite2", digest, spec.float_graph) == {
        name: (float(np.float32(low)), float(np.float32(high))) for name, (low, high) in shipped.items()}


def _small_graph(path: Path) -> None:
    """features = mean(conv(clip(conv(x)))), and a side output from the first convolution (as the garment maps are
    a side branch of the real graph)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"w1": rng.normal(0, 0.3, (8, 3, 3, 3)), "w2": rng.normal(0, 0.3, (16, 8, 1, 1)),
               "w3": rng.normal(0, 0.3, (2, 8, 1, 1))}
    nodes = [helper.make_node("Conv", ["images", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["a", "lo", "hi"], ["b"], name="relu6"),
             helper.make_node("Conv", ["b", "w2"], ["c"], name="conv2"),
             helper.make_node("ReduceMean", ["c"], ["features"], name="pool", axes=[2, 3], keepdims=0),
             helper.make_node("Conv", ["b", "w3"], ["side"], name="side")]
    initializers = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    initializers += [numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                             ["batch", 3, 16, 16])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 16]),
                               helper.make_tensor_value_info("side", TensorProto.FLOAT, ["batch", 2, 16, 16])],
                              initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_a_graph_quantised_with_its_calibrated_ranges_keeps_its_embedding_and_its_side_branch_float(
        tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    _small_graph(tmp_path / "float.onnx")
    batches = [np.random.default_rng(i).normal(0, 1, (4, 3, 16, 16)).astype(np.float32) for i in range(10)]
    graph = quantize.fold_and_shape(tmp_path / "float.onnx", tmp_path / "folded.onnx")
    ranges = quantize.calibrate(graph, batches, tmp_path)
    quantize.write_ranges(ranges, tmp_path / "ranges.json", "graph", "test")
    assert json.loads((tmp_path / "ranges.json").read_text())["tensors"].keys() == ranges.keys()
    ranges["b"] = (ranges["b"][0], 2 * ranges["b"][1])  # not what calibration found: must be used as given
    quantize.quantize(tmp_path / "float.onnx", ranges, tmp_path / "int8.onnx")
    model = onnx.load(str(tmp_path / "int8.onnx"))
    constants = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    quantised_inputs = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    convs = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    assert convs["conv2"].input[1] in quantised_inputs  # int8 weights on the embedding's path
    assert convs["side"].input[1] == "w3"  # the side branch's weights stay float
    (clip,) = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "b"]
    low, high = ranges["b"]
    assert float(constants[clip.input[1]]) == pytest.approx((max(high, 0) - min(low, 0)) / 255, rel=1e-6)
    runs = [ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"])
            for name in ("float.onnx", "int8.onnx")]
    test = np.random.default_rng(99).normal(0, 1, (8, 3, 16, 16)).astype(np.float32)
    (plain, plain_side), (int8, int8_side) = (run.run(["features", "side"], {"images": test}) for run in runs)
    cosine = (plain * int8).sum(1) / np.linalg.norm(plain, axis=1) / np.linalg.norm(int8, axis=1)
    assert cosine.min() > 0.99 and not np.array_equal(plain, int8)
    assert np.abs(plain_side - int8_side).max() < 0.1 * np.abs(plain_side).max()
    with pytest.raises(ModelError, match="do not fit this graph"):
        quantize.quantize(tmp_path / "float.onnx", {k: v for k, v in ranges.items() if k != "b"},
                          tmp_path / "other.onnx")


def test_int8_vectors_point_where_the_float_model_points_on_real_photos(sample_dir: Path) -> None:
    """Shoppers' full-size photos and catalog packshots: each int8 vector is close to its float vector (measured
    mean cosine 0.997 on the sample), and is nearer its own photo's float vector than any other photo's."""
    photos = sorted((sample_dir / "queries_fullres").glob("*.jpg"))
    photos += sorted((sample_dir / "images").glob("*.jpg"))[::150]
    int8, plain = load_model(INT8), load_model("efficientnet-lite2")
    assert int8.model_id != plain.model_id and int8.locates
    ours, reference = int8.embed_images(photos), plain.embed_images(photos)
    cosine = (ours * reference).sum(1)
    assert cosine.mean() > 0.99 and cosine.min() > 0.97, np.round(cosine, 4).tolist()
    assert np.array_equal((ours @ reference.T).argmax(1), np.arange(len(photos)))
