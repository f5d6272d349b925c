"""Indexing throughput per backbone on this machine: model alone (ceiling) vs end to end from JPEG files.

    python benchmarks/index_speed.py [--images N] [--data DIR] [--models NAME,NAME,...]

`--models` picks and orders the backbones (default: every registered one); a name given twice is measured twice,
so two models can be compared in alternating runs on a machine whose speed drifts
(e.g. `--models efficientnet-lite2,efficientnet-lite2-int8,efficientnet-lite2,efficientnet-lite2-int8`).

Prints a table. ResNet50's speed does not depend on its weights, so when Keras' ImageNet file is
absent the script writes random weights in Keras' HDF5 layout and uses those.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from fashionrec.index.run import index_images
from fashionrec.config import load_settings
from fashionrec.demo import find_sample_data
from fashionrec.models.embed import load_model
from fashionrec.errors import WeightsNotFoundError
from fashionrec.models import get_spec, list_models
from fashionrec.models.weights import locate_weights


def random_resnet50_h5(path: Path) -> Path:
    """Random ResNet50 weights in the legacy layout of Keras' file (speed does not depend on values)."""
    import h5py

    from fashionrec.models.resnet50 import KerasResNet50

    model = KerasResNet50()
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = np.array([name.encode() for name in model.layers])
        for name, layer in model.layers.items():
            group = handle.create_group(name)
            if name.endswith("_conv"):
                arrays = {"kernel": layer.weight.detach().numpy().transpose(2, 3, 1, 0), "bias": layer.bias.detach().numpy()}
            else:
                arrays = {"gamma": layer.weight.detach().numpy(), "beta": layer.bias.detach().numpy(),
                          "moving_mean": layer.running_mean.numpy(), "moving_variance": layer.running_var.numpy()}
            names = [f"{name}/{key}:0" for key in arrays]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            for weight_name, array in zip(names, arrays.values()):
                group.create_dataset(weight_name, data=array)
    return path


def ceiling(embedder, batch_size: int, seconds: float = 8.0) -> float:
    """Images/s of the ONNX model alone on ready tensors, steady state."""
    size = embedder.spec.input_size
    batch = np.random.default_rng(0).normal(0, 50, (batch_size, 3, size, size)).astype(np.float32)
    embedder.embed_batch(batch)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        embedder.embed_batch(batch)
        done += batch_size
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="real sample images to index per backbone")
    parser.add_argument("--data", type=Path, help="the fashion-product-images folder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", help="comma-separated backbones, in order, repeats allowed (default: all)")
    args = parser.parse_args()
    images_dir = find_sample_data(args.data) / "images"
    settings = load_settings()
    work = Path(tempfile.mkdtemp(prefix="fashionrec-bench-"))
    rows = []
    try:
        specs = [get_spec(name) for name in args.models.split(",")] if args.models else list_models()
        for run, spec in enumerate(specs):
            weights = None
            try:
                locate_weights(get_spec(spec.name), settings)
            except WeightsNotFoundError:
                weights = random_resnet50_h5(work / "resnet50-random.h5")
            embedder = load_model(spec.name, weights=weights)
            model_only = ceiling(embedder, args.batch_size)
            report = index_images(images_dir, work / f"{run}-{spec.name}", model=spec.name, weights=weights,
                                  batch_size=args.batch_size, limit=args.images, progress=False)
            rows.append((spec.name, f"{spec.input_size}", f"{model_only:.1f}", f"{report.images_per_second:.1f}",
                         f"{report.images_per_second / model_only:.2f}", str(report.embedded),
                         "random" if weights else "published"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = ("model", "input", "model alone img/s", "index end-to-end img/s", "ratio", "images", "weights")
    print(f"cores: {os.cpu_count()}, batch size {args.batch_size}, images from {images_dir}")
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main()
