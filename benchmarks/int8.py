"""int8 recipes for the catalog's model, by speed and by what they cost in precision (issue 24).

    python benchmarks/int8.py --catalog DIR [--limit N] [--recipes NAME,NAME] [--calibration 160,1000]

Every recipe quantises the graph of the embedding the catalog stores (`features`; the garment maps' outputs are cut
off, as they are not what P@5 measures) with ONNX Runtime, and is measured against that same float graph in this
process:
- speed: the model alone on prepared catalog images at batch 1 and 16, float and int8 timed in alternating rounds
  (this machine is shared: load hits both alike), the ratio of each round's pair, median over the rounds;
- precision: leave-one-out articleType (and baseColour) P@5 over the catalog, copies left out, the vectors whitened
  as the catalog is (as `benchmarks/speed.py` does), against the catalog's own float vectors;
- cos: the mean cosine of each product's int8 vector with its float vector (1 = the same).
Calibration images are catalog images drawn by a seeded permutation (seed 24): the first N of it, so the smaller
sets are inside the larger. `--limit N` scores a seeded sample of N products among themselves (a faster, rougher
run); without it the whole catalog.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.catalog.whitening import fit_whitening
from fashionrec.imaging.decode import open_image
from fashionrec.imaging.preprocess import resize, to_array
from fashionrec.models.embed import load_model
from fashionrec.quality.evaluate import evaluate
from fashionrec.vectors import l2_normalize

SEED = 24
LABELS = ("articleType", "baseColour")
OUTPUT = "features"
STEM = ["/backbone/_conv_stem/Conv"]
# The convolutions (and residual add) whose outputs the embedding pools: the head map, the last block's output and
# the end of the stride-16 stage (`models.efficientnet_lite._Features`).
TAPPED = ["/backbone/_conv_head/Conv", "/backbone/_swish_1/Clip", "/backbone/_blocks.20/_project_conv/Conv",
          "/backbone/_blocks.14/Add"]


@dataclass(frozen=True)
class Recipe:
    """One way to quantise: how it is calibrated and what `quantize_static` (or `quantize_dynamic`) is told."""

    name: str
    method: str = "MinMax"  # onnxruntime.quantization.CalibrationMethod's name, or "dynamic"
    images: int = 1000
    exclude: str = ""  # "stem+tapped", "depthwise", "all-but-1x1" (dynamic: quantise only the 1x1 convolutions)
    per_channel: bool = True
    reduce_range: bool = False
    qoperator: bool = False
    symmetric: bool = False  # int8 activations, symmetric ranges (else uint8, asymmetric)
    weights_only: bool = False  # int8 weights, float activations (the activations' QDQ pairs removed)
    options: dict = field(default_factory=dict)


RECIPES = [
    Recipe("A. QDQ per-channel, MinMax, 160 images (today's)", images=160),
    Recipe("B. as A, 1000 images"),
    Recipe("C. as A, Percentile 99.999, 320 images", method="Percentile", images=320),
    Recipe("D. as C, Percentile 99.99", method="Percentile", images=320, options={"CalibPercentile": 99.99}),
    Recipe("E. as A, Entropy (ONNX Runtime's defaults: 128 bins)", method="Entropy", images=160),
    Recipe("F. as B, stem + tapped convs (head, last block, stride-16 end) in float", exclude="stem+tapped"),
    Recipe("G. as B, depthwise convs in float", exclude="depthwise"),
    Recipe("H. as B, per-tensor weights", per_channel=False),
    Recipe("I. as B, reduce_range (7-bit weights)", reduce_range=True),
    Recipe("J. as B, QOperator format", qoperator=True),
    Recipe("K. as B, symmetric int8 activations", symmetric=True),
    Recipe("L. as B, weights only (activations float)", weights_only=True),
    Recipe("M. dynamic, 1x1 convs only (ConvInteger)", method="dynamic", images=0, exclude="all-but-1x1"),
]


class Pixels:
    """The catalog's images decoded and resized once (uint8, 1.5 GB for 7,254), turned into the model's input exactly
    as `Embedder.prepare` does, batch by batch."""

    def __init__(self, embedder, paths: list[Path]) -> None:
        prep = embedder.spec.preprocessing
        self.prep = prep

        def load(path: Path) -> np.ndarray:
            return np.asarray(resize(open_image(path, embedder.max_pixels, draft_size=prep.draft_size), prep))

        with ThreadPoolExecutor(2) as pool:
            self.images = list(pool.map(load, paths))

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, rows) -> np.ndarray:
        return np.stack([to_array(self.images[row], self.prep) for row in rows])


class Subset:
    """The few catalog attributes `evaluate` reads, restricted to some rows (for `--limit`)."""

    def __init__(self, catalog: Catalog, rows: np.ndarray) -> None:
        self._catalog, self._rows = catalog, rows
        self.model_name, self.columns, self.has_colour = catalog.model_name, catalog.columns, catalog.has_colour
        self.whitening = catalog.whitening
        self.content_hashes = [catalog.content_hashes[row] for row in rows]

    def __len__(self) -> int:
        return len(self._rows)

    def column_values(self, label: str) -> list:
        values = self._catalog.column_values(label)
        return [values[row] for row in self._rows]


def scores(catalog, model_vectors: np.ndarray) -> list[float]:
    """Leave-one-out P@5 per label of model vectors, whitened as the catalog is (`benchmarks/speed.py`)."""
    vectors = model_vectors
    if catalog.whitening is not None:
        vectors = fit_whitening([model_vectors], catalog.whitening.dim, "bench").apply(model_vectors)
    return [s.precision for s in evaluate(catalog, list(LABELS), k=5, vectors=vectors).deduplicated]


def session(path: Path):
    """An ONNX Runtime session as `Embedder` opens one (all cores, every graph optimisation)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def embed(path: Path, pixels: Pixels, rows) -> np.ndarray:
    """Unit vectors of `rows` through the ONNX file at `path`, in batches of 16."""
    model = session(path)
    started = time.perf_counter()
    name = model.get_inputs()[0].name
    rows = list(rows)
    chunks = [model.run([OUTPUT], {name: pixels.batch(rows[i:i + 16])})[0] for i in range(0, len(rows), 16)]
    note(f"embedded {len(rows):,} images in {time.perf_counter() - started:.0f} s")
    return l2_normalize(np.concatenate(chunks).astype(np.float32))


def note(text: str) -> None:
    """Progress, on stderr."""
    print(text, file=sys.stderr, flush=True)


def float_graph(embedder, work: Path) -> Path:
    """The embedder's graph cut to its embedding output, shape-inferred and folded for quantisation."""
    import onnx
    import onnx.utils
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(embedder.onnx_path))
    cut = onnx.utils.Extractor(model).extract_model([model.graph.input[0].name], [OUTPUT])
    onnx.save(cut, str(work / "features.onnx"))
    quant_pre_process(str(work / "features.onnx"), str(work / "float.onnx"))
    return work / "float.onnx"


class _Batches:
    """A calibration reader over prepared batches (ONNX Runtime's `CalibrationDataReader` protocol)."""

    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self.items = iter([{name: batch} for batch in batches])

    def get_next(self):
        return next(self.items, None)


def calibrate(graph: Path, method: str, pixels: Pixels, rows: list[int], work: Path):
    """A calibrator that has seen every activation over `rows`, 32 images at a time (the histogram calibrators keep
    every activation of what they are given in memory)."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    method = CalibrationMethod[method]
    started = time.perf_counter()
    calibrator = create_calibrator(graph, None, augmented_model_path=str(work / "augmented.onnx"),
                                   calibrate_method=method)
    for first in range(0, len(rows), 32):
        chunk = rows[first:first + 32]
        calibrator.collect_data(_Batches("images", [pixels.batch(chunk[i:i + 8]) for i in range(0, len(chunk), 8)]))
    note(f"calibration: {method.name} data of {len(rows)} images in {time.perf_counter() - started:.0f} s")
    return calibrator


def ranges(calibrator, recipe: Recipe):
    """The recipe's activation ranges from a calibrator's data; percentiles share one set of histograms."""
    from onnxruntime.quantization import CalibrationMethod, TensorsData

    if recipe.method != "Percentile":
        return calibrator.compute_data()
    collector = calibrator.collector
    collector.percentile = recipe.options.get("CalibPercentile", 99.999)
    return TensorsData(CalibrationMethod[recipe.method], collector.compute_collection_result())


def excluded(graph: Path, how: str) -> list[str]:
    """Names of the nodes a recipe keeps in float."""
    import onnx

    model = onnx.load(str(graph))
    if how == "stem+tapped":
        return STEM + TAPPED
    if how == "depthwise":
        return [n.name for n in model.graph.node if n.op_type == "Conv"
                and any(a.name == "group" and a.i > 1 for a in n.attribute)]
    return []


def one_by_one(graph: Path) -> list[str]:
    """Names of the 1x1 convolutions."""
    import onnx

    model = onnx.load(str(graph))
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "Conv" and shapes[n.input[1]][2:] == [1, 1]]


def quantise(recipe: Recipe, graph: Path, ranges, target: Path) -> Path:
    """Write the recipe's int8 model to `target`."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
        save_tensors_data,
    )

    if recipe.method == "dynamic":
        quantize_dynamic(str(graph), str(target), op_types_to_quantize=["Conv"], per_channel=recipe.per_channel,
                         nodes_to_quantize=one_by_one(graph), weight_type=QuantType.QUInt8)
        return target
    cache = target.with_suffix(".ranges.json")
    save_tensors_data(ranges, cache)
    # Weights only: the ReLU6 clips must stay (QDQ drops them where the activation's range already clips).
    extra = {"ActivationSymmetric": recipe.symmetric, "QDQKeepRemovableActivations": recipe.weights_only}
    quantize_static(str(graph), str(target), None, calibration_cache_path=cache,
                    calibrate_method=CalibrationMethod[recipe.method],
                    quant_format=QuantFormat.QOperator if recipe.qoperator else QuantFormat.QDQ,
                    per_channel=recipe.per_channel, reduce_range=recipe.reduce_range,
                    activation_type=QuantType.QInt8 if recipe.symmetric else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=excluded(graph, recipe.exclude),
                    extra_options=extra)
    if recipe.weights_only:
        _drop_activation_qdq(target)
    return target


def _drop_activation_qdq(path: Path) -> None:
    """Remove every QuantizeLinear -> DequantizeLinear pair on an activation, so only the weights stay int8."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    constants = {i.name for i in graph.initializer}
    quantised = {n.output[0]: n.input[0] for n in graph.node
                 if n.op_type == "QuantizeLinear" and n.input[0] not in constants}
    outputs = {output.name for output in graph.output}
    rename, keep = {}, []
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.output[0] in quantised:
            continue
        if node.op_type == "DequantizeLinear" and node.input[0] in quantised:
            if node.output[0] in outputs:  # a graph output keeps its name
                keep.append(onnx.helper.make_node("Identity", [quantised[node.input[0]]], [node.output[0]]))
            else:
                rename[node.output[0]] = quantised[node.input[0]]
            continue
        keep.append(node)
    for node in keep:
        node.input[:] = [rename.get(name, name) for name in node.input]
    del graph.node[:]
    graph.node.extend(keep)
    onnx.save(model, str(path))


def rates(paths: list[Path], sample: np.ndarray, rounds: int, seconds: float) -> dict[int, list[list[float]]]:
    """Images/s of each model per batch size, per round; the models alternate within a round, in turn first."""
    sessions = [session(path) for path in paths]
    name = sessions[0].get_inputs()[0].name
    out: dict[int, list[list[float]]] = {}
    for batch_size in (1, 16):
        batch = sample[:batch_size]
        for model in sessions:
            model.run([OUTPUT], {name: batch})
        out[batch_size] = []
        for r in range(rounds):
            order = list(range(len(sessions)))
            order = order[r % len(order):] + order[:r % len(order)]
            got = [0.0] * len(sessions)
            for i in order:
                done, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds:
                    sessions[i].run([OUTPUT], {name: batch})
                    done += batch_size
                got[i] = done / (time.perf_counter() - start)
            out[batch_size].append(got)
    return out


@dataclass
class Bench:
    """What every recipe is measured against: the float graph, the decoded images, the float vectors and scores."""

    graph: Path
    pixels: Pixels
    view: object  # the catalog, or a `Subset` of it
    rows: list[int]  # the scored products' places in `pixels`
    calibration: list[int]  # the calibration order's places in `pixels`
    reference: np.ndarray  # the catalog's float vectors of the scored products
    base: list[float]
    work: Path
    rounds: int
    seconds: float
    min_speedup: float
    calibrators: dict = field(default_factory=dict)
    fp32: dict = field(default_factory=lambda: {1: [], 16: []})


def measure(recipe: Recipe, bench: Bench) -> str:
    """Build one recipe, time it against the float graph, score it; its table row."""
    started = time.perf_counter()
    calibrator = None
    if recipe.method != "dynamic":
        key = (recipe.method, recipe.images)
        if key not in bench.calibrators:
            bench.calibrators[key] = calibrate(bench.graph, key[0], bench.pixels, bench.calibration[:recipe.images],
                                               bench.work)
        calibrator = bench.calibrators[key]
    model = quantise(recipe, bench.graph, calibrator and ranges(calibrator, recipe),
                     bench.work / f"{recipe.name[0]}.onnx")
    built = time.perf_counter() - started
    timed = rates([bench.graph, model], bench.pixels.batch(bench.rows[:16]), bench.rounds, bench.seconds)
    for b in timed:
        bench.fp32[b] += [r[0] for r in timed[b]]
    speed = {b: (statistics.median(r[1] for r in timed[b]), statistics.median(r[1] / r[0] for r in timed[b]))
             for b in timed}
    row = (f"| {recipe.name} | {speed[1][0]:.1f} | {speed[16][0]:.1f} | {speed[1][1]:.2f} | {speed[16][1]:.2f} | ")
    if max(speed[1][1], speed[16][1]) < bench.min_speedup:  # not worth the whole catalog: the cosine of a few
        few = bench.rows[:256]
        cos = float((embed(model, bench.pixels, few) * bench.reference[:len(few)]).sum(1).mean())
        return row + f"not scored (slower than {bench.min_speedup:.2f}x) | | | | {cos:.4f} ({len(few)}) | {built:.0f} |"
    vectors = embed(model, bench.pixels, bench.rows)
    got = scores(bench.view, vectors)
    cos = float((vectors * bench.reference).sum(1).mean())
    return row + (f"{got[0]:.4f} | {got[0] - bench.base[0]:+.4f} | {got[1]:.4f} | {got[1] - bench.base[1]:+.4f} | "
                  f"{cos:.4f} | {built:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True, help="an indexed catalog (its model is quantised)")
    parser.add_argument("--limit", type=int, help="score a seeded sample of this many products (default: all)")
    parser.add_argument("--recipes", help="comma-separated recipe letters (default: all), e.g. A,B,F")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds per batch size")
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds per model per round")
    parser.add_argument("--min-speedup", type=float, default=1.0,
                        help="a recipe slower than this at both batch sizes is not scored on the whole catalog")
    args = parser.parse_args()
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # not the quantiser's warnings about initializers it left unused
    started = time.perf_counter()
    catalog = Catalog.open(args.catalog)
    embedder = load_model(catalog.model_name)
    chosen = [r for r in RECIPES if not args.recipes or r.name.split(".")[0] in args.recipes.split(",")]
    everyone = np.arange(len(catalog))
    rows = everyone if not args.limit else np.sort(np.random.default_rng(SEED).choice(everyone, args.limit, False))
    order = np.random.default_rng(SEED).permutation(len(catalog))
    wanted = sorted(set(rows.tolist()) | set(order[:max(r.images for r in chosen)].tolist()))
    pixels = Pixels(embedder, [catalog.image_path_at(i) for i in wanted])
    note(f"decoded {len(wanted):,} images in {time.perf_counter() - started:.0f} s")
    at = {row: i for i, row in enumerate(wanted)}
    work = Path(tempfile.mkdtemp(prefix="fashionrec-int8-"))
    view = catalog if not args.limit else Subset(catalog, rows)
    bench = Bench(float_graph(embedder, work), pixels, view, [at[r] for r in rows.tolist()],
                  [at[r] for r in order.tolist() if r in at], catalog.model_vectors[rows], [], work, args.rounds,
                  args.seconds, args.min_speedup)
    check = embed(bench.graph, pixels, bench.rows[:64])
    note(f"float graph vs the catalog's vectors: min cos {float((check * bench.reference[:64]).sum(1).min()):.6f}")
    bench.base = scores(view, bench.reference)
    lines = [(f"{catalog.model_name}; {len(rows):,} products scored; calibration: the first N of a seeded "
              f"permutation (seed {SEED}) of the catalog's {len(catalog):,} images; {args.rounds} alternating timing "
              f"rounds of {args.seconds} s per model and batch size."), "",
             ("| recipe | img/s b1 | img/s b16 | x fp32 b1 | x fp32 b16 | articleType P@5 | change | baseColour P@5 "
              "| change | cos | build s |"), "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| fp32 (the float graph) | | | 1.00 | 1.00 | {bench.base[0]:.4f} | | {bench.base[1]:.4f} | | 1.0000 | |"]
    print("\n".join(lines), flush=True)
    for recipe in chosen:
        lines.append(measure(recipe, bench))
        print(lines[-1], flush=True)
    note(f"{(time.perf_counter() - started) / 60:.1f} min")
    lines[4] = lines[4].replace("| | | 1.00", f"| {statistics.median(bench.fp32[1]):.1f} | "
                                f"{statistics.median(bench.fp32[16]):.1f} | 1.00")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
