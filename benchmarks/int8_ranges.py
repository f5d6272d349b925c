"""Make `src/fashionrec/models/int8_ranges_<network>.json`: the activation ranges the int8 model is quantised with.

The ranges are constants shipped with the package (`fashionrec.models.quantize` says why not per catalog), made once
from the shared sample's photos (`../shared/data/fashion-product-images/images`) as docs/PERFORMANCE.md's recipe A
calibrates: MinMax over 160 photos, the first 160 of a seeded permutation (seed 24) of the sorted file names, each
prepared as `Embedder.prepare` prepares a catalog image. No labels are used. Only the activations the embedding is
computed from are kept (the garment maps stay float).

After writing, put the printed digest in `models/registry.py` (`_INT8_RANGES`): the int8 model's id changes, so its
catalogs are embedded again.

    python benchmarks/int8_ranges.py [--network efficientnet-lite2] [--images DIR] [--count 160] [--write]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from fashionrec.models import quantize
from fashionrec.models.embed import load_model

SAMPLE = Path(__file__).resolve().parents[2] / "shared/data/fashion-product-images/images"
SEED = 24


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="efficientnet-lite2", help="the float model whose graph is calibrated")
    parser.add_argument("--images", type=Path, default=SAMPLE, help="the calibration photos' folder")
    parser.add_argument("--count", type=int, default=160, help="how many photos to calibrate on")
    parser.add_argument("--write", action="store_true", help="write the package's file (default: a temporary one)")
    args = parser.parse_args()
    paths = sorted(args.images.glob("*.jpg"))
    if len(paths) < args.count:
        raise SystemExit(f"{args.images} has {len(paths)} .jpg photos; {args.count} are needed")
    chosen = [paths[i] for i in np.random.default_rng(SEED).permutation(len(paths))[:args.count]]
    embedder = load_model(args.network)
    with tempfile.TemporaryDirectory(prefix="fashionrec-ranges-") as work:
        graph = quantize.fold_and_shape(embedder.onnx_path, Path(work) / "folded.onnx")
        batches = (np.stack([embedder.prepare(p) for p in chosen[i:i + 8]]) for i in range(0, len(chosen), 8))
        ranges = quantize.calibrate(graph, batches, Path(work))
        import onnx

        model = onnx.load(str(graph))
        needed = quantize.activations(model, quantize.not_feeding(model, quantize.FEATURES))
    target = quantize.ranges_path(args.network) if args.write else Path(tempfile.mkdtemp()) / "ranges.json"
    made_from = (f"{args.network} ({embedder.model_id}): MinMax over {args.count} photos of {args.images.name}, "
                 f"seed {SEED}")
    quantize.write_ranges({name: ranges[name] for name in needed}, target, embedder.spec.float_graph, made_from)
    print(f"{len(needed)} activation ranges written to {target}; digest {quantize.ranges_digest(target)}")


if __name__ == "__main__":
    main()
