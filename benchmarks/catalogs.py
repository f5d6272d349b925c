"""Do the defaults hold on other shops' catalogs? Shape only against the default colour weight, on many catalogs.

    python benchmarks/catalogs.py --catalog DIR [--sizes 200 400 1000 2000] [--seeds 3] [--weight W]

A shop that installs fashionrec has another catalog than the shared sample: 300 products, only shoes, other photos.
This builds such catalogs from an indexed catalog of the sample (its stored model vectors, colours and labels, so
nothing is embedded again): seeded random subsets of each size, the single-kind shops (masterCategory Footwear,
Apparel, Accessories) and the whole sample. Each is treated as its own catalog, as fashionrec would build it: its
own search space (PCA-whitened to FASHIONREC_WHITEN_DIM when it has 4 products per dimension, else the model's
vectors), its colour part, the query [shape; g * colour] of the colour weight (`recommend.query.colour_gain`).
Leave-one-out precision@5 of articleType and baseColour, the query's exact copies left out (as `fashionrec
evaluate`), averaged over the seeds: shape only (weight 0) against the weight given (default: the setting).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from fashionrec.catalog import Catalog
from fashionrec.catalog.whitening import fit_whitening, whitening_dim
from fashionrec.config import load_settings
from fashionrec.imaging.colour import COLOUR_DIM
from fashionrec.recommend.query import colour_gain
from fashionrec.vectors import l2_normalize

LABELS = ("articleType", "baseColour")
KINDS = ("Footwear", "Apparel", "Accessories")
K = 5


def precision_at_k(vectors: np.ndarray, labels: list[np.ndarray], hashes: np.ndarray, k: int = K) -> list[float]:
    """Leave-one-out P@k per label of `vectors` ranked by inner product, exact copies of the query left out."""
    groups = defaultdict(list)
    for row, digest in enumerate(hashes):
        groups[digest].append(row)
    hits = [[] for _ in labels]
    for start in range(0, len(vectors), 1024):
        scores = vectors[start:start + 1024] @ vectors.T
        for offset in range(len(scores)):
            row = start + offset
            scores[offset, groups[hashes[row]]] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        for offset, found in enumerate(top):
            row = start + offset
            for index, values in enumerate(labels):
                wanted = values[row]
                if wanted and (values == wanted).sum() > len(groups[hashes[row]]):  # someone else shares it
                    hits[index].append(float(np.mean(values[found] == wanted)))
    return [float(np.mean(h)) if h else float("nan") for h in hits]


def catalog_vectors(model: np.ndarray, colour: np.ndarray, wanted_dim: int, gain: float) -> np.ndarray:
    """A catalog's ranking vectors: its own search space, then [shape; sqrt(g) colour], whose inner products rank
    as [shape; g colour] . [shape; colour] do."""
    dim = whitening_dim(len(model), wanted_dim, model.shape[1])
    shape = fit_whitening([model], dim, "").apply(model) if dim else l2_normalize(model)
    return np.concatenate([shape, np.sqrt(gain) * colour], axis=1).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True, help="an indexed catalog of the shared sample")
    parser.add_argument("--sizes", type=int, nargs="*", default=[200, 400, 1000, 2000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--weight", type=float, default=None, help="the colour weight, 0-1 (default: the setting)")
    args = parser.parse_args()
    settings = load_settings()
    catalog = Catalog.open(args.catalog)
    if not catalog.has_colour:
        sys.exit("the catalog has no colour: run fashionrec index on it first")
    weight, gain = colour_gain(args.weight, settings)
    model = catalog.model_vectors
    colour = catalog.vectors[:, -COLOUR_DIM:]
    labels = [np.array([v or "" for v in catalog.column_values(label)], dtype=object) for label in LABELS]
    hashes = np.array(catalog.content_hashes, dtype=object)
    kinds = np.array([v or "" for v in catalog.column_values("masterCategory")], dtype=object)
    shops: list[tuple[str, list[np.ndarray]]] = []
    for size in args.sizes:
        shops.append((f"{size} random", [np.sort(np.random.default_rng(seed).choice(len(catalog), size, replace=False))
                                         for seed in range(args.seeds)]))
    for kind in KINDS:
        shops.append((f"{kind} only", [np.flatnonzero(kinds == kind)]))
    shops.append(("whole sample", [np.arange(len(catalog))]))
    print(f"{catalog.model_name}, colour weight {weight:g} (gain {gain:g}), leave-one-out P@{K}, exact copies left "
          f"out, averaged over {args.seeds} seeds for random subsets\n")
    print("| catalog | products | whitened | articleType shape | articleType default | change | baseColour shape | "
          "baseColour default | change |")
    print("|---|--:|---|--:|--:|--:|--:|--:|--:|")
    for name, subsets in shops:
        scores = {0.0: [], gain: []}
        for rows in subsets:
            for g in scores:
                vectors = catalog_vectors(model[rows], colour[rows], settings.whiten_dim, g)
                scores[g].append(precision_at_k(vectors, [values[rows] for values in labels], hashes[rows]))
        shape, chosen = (np.mean(scores[g], axis=0) for g in (0.0, gain))
        whitened = "yes" if whitening_dim(len(subsets[0]), settings.whiten_dim, model.shape[1]) else "no"
        print(f"| {name} | {len(subsets[0]):,} | {whitened} | {shape[0]:.4f} | {chosen[0]:.4f} | "
              f"{chosen[0] - shape[0]:+.4f} | {shape[1]:.4f} | {chosen[1]:.4f} | {chosen[1] - shape[1]:+.4f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
