"""int8 models: the exported float graph quantised with activation ranges shipped in the package.

Static int8 needs each activation's range, which calibration images give. Calibrating on the user's catalog would
make the model, and so its vectors, depend on that catalog: two shops' vectors, or one catalog before and after a
hundred products were added, would no longer compare. So the ranges are constants made once from the shared sample
(`benchmarks/int8_ranges.py`, as `imaging/colour_prior.npz` is), shipped beside this module, and their digest is in
the model id (`ModelSpec.int8`): new ranges are a new model, whose catalogs are embedded again.

The recipe is recipe A of docs/PERFORMANCE.md section 9, the cheapest of those within 0.01 P@5 of float: QDQ,
per-channel int8 weights, uint8 activations, MinMax ranges over 160 catalog photos. Only what the embedding is
computed from is quantised: the garment maps and the classifier's log-sum-exp (`models.garments`) stay in float,
so a photo's garments are found as the float model finds them.

Needs `onnx` and ONNX Runtime's quantisation tools, at export time only (`fashionrec[export]`); running the int8 file
needs ONNX Runtime alone.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fashionrec.errors import ModelError

RANGES_FORMAT = 1
CALIBRATION_CHUNK = 32  # images the calibrator sees at once
FEATURES = "features"  # the embedding's output (`models.export.OUTPUT_NAME`)


def ranges_path(network: str) -> Path:
    """The shipped ranges of a network's graph, e.g. `models/int8_ranges_efficientnet-lite2.json`."""
    return Path(__file__).with_name(f"int8_ranges_{network}.json")


def ranges_digest(path: Path) -> str:
    """The short digest a spec pins (`ModelSpec.int8`): other ranges are another model."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def load_ranges(network: str, digest: str) -> dict[str, tuple[float, float]]:
    """The shipped activation ranges of `network`, checked against the digest its spec pins.

    Raises:
        ModelError: the file is missing or is not the one the spec was registered with.
    """
    path = ranges_path(network)
    if not path.is_file():
        raise ModelError(f"{network} has no int8 ranges ({path.name} is not in the package): reinstall fashionrec")
    if ranges_digest(path) != digest:
        raise ModelError(f"{path} is not the int8 ranges this version of fashionrec was made with "
                         f"(digest {ranges_digest(path)}, expected {digest}): reinstall fashionrec")
    data = json.loads(path.read_text())
    return {name: (float(low), float(high)) for name, (low, high) in data["tensors"].items()}


def write_ranges(ranges: dict[str, tuple[float, float]], target: Path, made_from: str) -> None:
    """Write ranges as the package ships them: sorted, float32-exact, with what they were made from."""
    lines = [f"  {json.dumps(name)}: [{float(np.float32(low))!r}, {float(np.float32(high))!r}]"
             for name, (low, high) in sorted(ranges.items())]
    head = f'{{"format": {RANGES_FORMAT}, "made_from": {json.dumps(made_from)}, "tensors": {{\n'
    target.write_text(head + ",\n".join(lines) + "\n}}\n")


def shaped(float_onnx: Path, target: Path) -> Path:
    """The float graph as the quantiser wants it: shapes inferred, constants folded (ONNX Runtime's basic level).

    The folding matters: the exporter writes TF's "same" padding as a small computed subgraph before each strided
    convolution, and quantised unfolded the int8 model ran no faster than float (measured 0.92-0.98x against
    1.66-2.18x folded). The shipped ranges are keyed by the tensor names of this folded graph, so `quantize`
    checks that they still fit.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(float_onnx), str(target))
    return target


def calibrate(graph: Path, batches: Iterable[np.ndarray], work: Path) -> dict[str, tuple[float, float]]:
    """Every activation's MinMax range over the prepared image batches (N, 3, S, S) given, on a `shaped` graph."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    calibrator = create_calibrator(graph, None, augmented_model_path=str(work / "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.MinMax)
    name, chunk = _input_name(graph), []
    for batch in batches:  # a few batches at a time: the calibrator holds every activation of what it is given
        chunk.append({name: batch})
        if sum(len(item[name]) for item in chunk) >= CALIBRATION_CHUNK:
            calibrator.collect_data(_Reader(chunk))
            chunk = []
    if chunk:
        calibrator.collect_data(_Reader(chunk))
    data = calibrator.compute_data()
    return {tensor: (float(np.asarray(value.range_value[0]).min()), float(np.asarray(value.range_value[1]).max()))
            for tensor, value in data.data.items()}


def quantize(float_onnx: Path, ranges: dict[str, tuple[float, float]], target: Path) -> None:
    """Write the int8 graph of `float_onnx` to `target` with the given activation ranges.

    Raises:
        ModelError: an activation the embedding is computed from has no range (the ranges were made for another
            graph: another exporter, or another EXPORT_VERSION), or ONNX Runtime's quantiser is missing.
    """
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            TensorData,
            TensorsData,
            quantize_static,
            save_tensors_data,
        )
    except ImportError:
        raise ModelError("building an int8 model needs onnx: pip install 'fashionrec[export]'") from None
    with tempfile.TemporaryDirectory(prefix="fashionrec-int8-") as work:
        graph = shaped(float_onnx, Path(work) / "shaped.onnx")
        model = onnx.load(str(graph))
        keep_float = not_feeding(model, FEATURES)
        missing = sorted(activations(model, keep_float) - ranges.keys())
        if missing:
            raise ModelError(f"the int8 ranges do not fit this graph ({len(missing)} activations have none, e.g. "
                             f"{missing[0]!r}): they were made for another export; make them again with "
                             "benchmarks/int8_ranges.py")
        cache = Path(work) / "ranges.json"
        wanted = {name: TensorData(lowest=np.float32(low), highest=np.float32(high))
                  for name, (low, high) in ranges.items()}
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, wanted), cache)
        quantize_static(str(graph), str(target), None, calibration_cache_path=cache,
                        calibrate_method=CalibrationMethod.MinMax, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=sorted(keep_float))


def activations(model, excluded: set[str]) -> set[str]:
    """Names of the float tensors that nodes outside `excluded` read or write (initializers aside): those the
    quantiser gives a range to."""
    import onnx

    constants = {i.name for i in model.graph.initializer}
    floats = {v.name for v in [*model.graph.input, *model.graph.value_info, *model.graph.output]
              if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    return {name for node in model.graph.node if node.name not in excluded
            for name in [*node.input, *node.output] if name and name not in constants and name in floats}


def not_feeding(model, output: str) -> set[str]:
    """Names of the nodes `output` is not computed from (the garment maps' branch)."""
    producer = {name: node for node in model.graph.node for name in node.output}
    needed, todo = set(), [output]
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in needed:
            continue
        needed.add(node.name)
        todo.extend(node.input)
    return {node.name for node in model.graph.node if node.name not in needed}


def _input_name(graph: Path) -> str:
    import onnx

    return onnx.load(str(graph), load_external_data=False).graph.input[0].name


class _Reader:
    """A calibration reader over input dicts (ONNX Runtime's `CalibrationDataReader` protocol)."""

    def __init__(self, items: Iterable[dict[str, np.ndarray]]) -> None:
        self._items = iter(items)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)
