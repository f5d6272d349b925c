"""int8 models: the exported float graph quantised with activation ranges shipped in the package.

Static int8 needs each activation's range, which calibration images give. Calibrating on the user's catalog would
make the model, and so its vectors, depend on that catalog: two shops' vectors, or one catalog before and after a
hundred products were added, would no longer compare. So the ranges are constants made once from the shared sample
(`benchmarks/int8_ranges.py`, as `imaging/colour_prior.npz` is), shipped beside this module, and their digest is in
the model id (`ModelSpec.int8_ranges`): new ranges are a new model, whose catalogs are embedded again. The file also
names the float graph it was calibrated on (its fingerprint), so ranges of an older export are refused.

The recipe is recipe A of docs/PERFORMANCE.md section 9, the cheapest of those within 0.01 P@5 of float: QDQ,
per-channel int8 weights, uint8 activations, MinMax ranges over 160 catalog photos. Only the nodes the embedding is
computed from are quantised; the garment maps' convolution and the classifier's log-sum-exp (`models.garments`) stay
float, but they read the int8 backbone's head map, so the maps differ from float's (by 10% on average, section 9).

int8 kernels differ by CPU (VNNI or not) and execution provider, so one int8 model id can give slightly different
vectors on two machines (measured: mean cosine 0.9995 between ONNX Runtime's fused int8 kernels and plain
quantise-dequantise execution): index a catalog and serve it on the same kind of machine.

Needs `onnx` and ONNX Runtime's quantisation tools (1.32 or later), at export time only (`fashionrec[export]`);
running the int8 file needs ONNX Runtime alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fashionrec.errors import ModelError

if TYPE_CHECKING:
    import onnx

RANGES_FORMAT = 2  # 2: names the float graph the ranges were calibrated on
CALIBRATION_CHUNK = 32  # images the calibrator sees at once
FEATURES = "features"  # the embedding's output (`models.export.OUTPUT_NAME`)
MIN_ONNXRUNTIME = "1.32"  # the first with `calibration_cache_path` and `save_tensors_data`
Ranges = dict[str, tuple[float, float]]


def ranges_path(network: str) -> Path:
    """The shipped ranges of a network's graph, e.g. `models/int8_ranges_efficientnet-lite2.json`."""
    return Path(__file__).with_name(f"int8_ranges_{network}.json")


def ranges_digest(path: Path) -> str:
    """The short digest a spec pins (`ModelSpec.int8_ranges`): other ranges are another model."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def load_ranges(network: str, digest: str, float_graph: str) -> Ranges:
    """The shipped activation ranges of `network`, checked against the digest its spec pins and the float graph
    they are for.

    Args:
        network: e.g. "efficientnet-lite2".
        digest: the digest the int8 spec pins (`ModelSpec.int8_ranges`).
        float_graph: the fingerprint of the float graph about to be quantised (`ModelSpec.fingerprint` of the float
            spec): ranges calibrated on another export do not fit it, even where the tensor names agree.

    Raises:
        ModelError: the file is missing, is not the one the spec was registered with, or is for another graph.
    """
    path = ranges_path(network)
    if not path.is_file():
        raise ModelError(f"{network} has no int8 ranges ({path.name} is not in the package): reinstall fashionrec")
    if ranges_digest(path) != digest:
        raise ModelError(f"{path} is not the int8 ranges this version of fashionrec was made with "
                         f"(digest {ranges_digest(path)}, expected {digest}): reinstall fashionrec")
    data = json.loads(path.read_text())
    if data.get("float_graph") != float_graph:
        raise ModelError(f"{path.name} was calibrated on another build of {network} (graph "
                         f"{data.get('float_graph')}, this one is {float_graph}); use {network} (float), or make the "
                         "ranges again with benchmarks/int8_ranges.py from a source checkout")
    return {name: (float(low), float(high)) for name, (low, high) in data["tensors"].items()}


def write_ranges(ranges: Ranges, target: Path, float_graph: str, made_from: str) -> None:
    """Write ranges as the package ships them: one tensor a line, sorted, float32-exact, with the float graph they
    are for (`load_ranges`) and what they were made from."""
    lines = [f"  {json.dumps(name)}: [{float(np.float32(low))!r}, {float(np.float32(high))!r}]"
             for name, (low, high) in sorted(ranges.items())]
    head = (f'{{"format": {RANGES_FORMAT}, "float_graph": {json.dumps(float_graph)}, '
            f'"made_from": {json.dumps(made_from)}, "tensors": {{\n')
    target.write_text(head + ",\n".join(lines) + "\n}}\n")


def fold_and_shape(float_onnx: Path, target: Path) -> Path:
    """Write the float graph as the quantiser wants it to `target`: constants folded (ONNX Runtime's basic level),
    shapes inferred.

    The folding matters: the exporter writes TF's "same" padding as a small computed subgraph before each strided
    convolution, and quantised unfolded the int8 model ran no faster than float (measured 0.92-0.98x against
    1.66-2.18x folded). The shipped ranges are keyed by the tensor names of this folded graph, so `quantize`
    checks that they still fit.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(float_onnx), str(target))
    return target


def calibrate(graph: Path, batches: Iterable[np.ndarray], work: Path) -> Ranges:
    """Every activation's MinMax range over the prepared image batches (N, 3, S, S) given, on a `fold_and_shape`d
    graph (`work`: a folder for ONNX Runtime's augmented copy of it)."""
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


def quantize(float_onnx: Path, ranges: Ranges, target: Path) -> None:
    """Write the int8 graph of `float_onnx` to `target`, quantised with exactly the activation ranges given.

    Raises:
        ModelError: an activation the embedding is computed from has no range (the ranges were made for another
            graph: another exporter, or another ONNX Runtime's folding), the quantiser refuses the graph, or `onnx` or
            a recent enough ONNX Runtime is missing.
    """
    onnx, tools = _quantisation_tools()
    with tempfile.TemporaryDirectory(prefix="fashionrec-int8-") as work:
        graph = fold_and_shape(float_onnx, Path(work) / "folded.onnx")
        model = onnx.load(str(graph))
        keep_float = not_feeding(model, FEATURES)
        missing = sorted(activations(model, keep_float) - ranges.keys())
        if missing:
            raise ModelError(f"the int8 ranges do not fit this graph (activations without a range: {len(missing)}, "
                             f"e.g. {missing[0]!r}): it was exported by other versions of torch or ONNX Runtime than "
                             "the ranges were made with; use the float model, or make the ranges again with "
                             "benchmarks/int8_ranges.py from a source checkout")
        cache = Path(work) / "ranges.json"
        wanted = {name: tools.TensorData(lowest=np.float32(low), highest=np.float32(high))
                  for name, (low, high) in ranges.items()}
        tools.save_tensors_data(tools.TensorsData(tools.CalibrationMethod.MinMax, wanted), cache)
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.WARNING))  # not its hundreds of "Increased scale" lines under -v
        try:
            tools.quantize_static(str(graph), str(target), None, calibration_cache_path=cache,
                                  calibrate_method=tools.CalibrationMethod.MinMax, quant_format=tools.QuantFormat.QDQ,
                                  per_channel=True, activation_type=tools.QuantType.QUInt8,
                                  weight_type=tools.QuantType.QInt8, nodes_to_exclude=sorted(keep_float))
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"ONNX Runtime could not quantise the graph: {exc}") from None
        finally:
            root.setLevel(level)


def _quantisation_tools():  # -> (onnx, onnxruntime.quantization)
    """`onnx` and ONNX Runtime's quantiser, or a message saying which one to install."""
    try:
        import onnx
    except ImportError:
        raise ModelError("building an int8 model needs onnx: pip install 'fashionrec[export]'") from None
    import onnxruntime
    from onnxruntime import quantization

    if not hasattr(quantization, "save_tensors_data"):
        raise ModelError(f"building an int8 model needs ONNX Runtime {MIN_ONNXRUNTIME} or later (this is "
                         f"{onnxruntime.__version__}): pip install 'onnxruntime>={MIN_ONNXRUNTIME}'")
    return onnx, quantization


def activations(model: onnx.ModelProto, excluded: set[str]) -> set[str]:
    """Names of the tensors that nodes outside `excluded` read or write, but constants and tensors known not to be
    float (a Shape's output): those the quantiser needs a range for. A tensor of unknown type counts as float, so a
    range missing for it is noticed here, not left to the quantiser (which skips or refuses it)."""
    import onnx

    constants = {i.name for i in model.graph.initializer}
    typed = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.value_info,
                                                              *model.graph.output]}
    return {name for node in model.graph.node if node.name not in excluded
            for name in [*node.input, *node.output]
            if name and name not in constants and typed.get(name, onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT}


def not_feeding(model: onnx.ModelProto, output: str) -> set[str]:
    """Names of the nodes `output` is not computed from (the garment maps' branch). Every node of an exported graph
    is named (torch names each after its module)."""
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
