"""Do the defaults hold on other shops' catalogs? Shape only against colour weights, on many catalogs.

    python benchmarks/catalogs.py --catalog DIR [--sizes 200 400 1000 2000] [--seeds 3] [--weights W ...]
        [--shrinkage A | --raw]

A shop that installs fashionrec has another catalog than the shared sample: 300 products, only shoes, other photos.
This builds such catalogs from an indexed catalog of the sample (its stored model vectors, colours and labels, so
nothing is embedded again): seeded random subsets of each size, the single-kind shops (masterCategory Footwear,
Apparel, Accessories) and the whole sample. Each is treated as its own catalog, as fashionrec builds it: its own
search space (`catalog.whitening`, fitted on its products), its colour vectors, and ranked as every face ranks:
the query's colour part weighed by the colour weight (`recommend.query.colour_gain`), colour re-ranking the shape
shortlist (`recommend.query.colour_ranking`). Leave-one-out precision@5 of articleType and baseColour, the query's
exact copies left out (as `fashionrec evaluate`), averaged over the seeds: shape only (weight 0) against the
weights given (default: the setting, and 1).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from fashionrec.catalog import Catalog
from fashionrec.catalog import whitening
from fashionrec.catalog.whitening import fit_whitening, whitening_dim
from fashionrec.config import load_settings
from fashionrec.imaging.colour import COLOUR_DIM
from fashionrec.recommend.query import ColourGain, colour_gain, shortlist_size
from fashionrec.search.block import Shortlist, top_neighbours
from fashionrec.vectors import l2_normalize

LABELS = ("articleType", "baseColour")
KINDS = ("Footwear", "Apparel", "Accessories")
K = 5


def precision_at_k(vectors: np.ndarray, labels: list[np.ndarray], hashes: np.ndarray, gain: ColourGain,
                   k: int = K) -> list[float]:
    """Leave-one-out P@k per label, ranked as every face ranks (`recommend.query.colour_ranking`: the colour gain,
    the shape shortlist), the query's exact copies left out (as `fashionrec evaluate`)."""
    groups = defaultdict(list)
    for row, digest in enumerate(hashes):
        groups[digest].append(row)
    colour = slice(vectors.shape[1] - COLOUR_DIM, None)

    def weighed(weights):
        def as_query(rows: np.ndarray) -> np.ndarray:
            rows = rows.copy()
            rows[:, colour] *= weights
            return rows
        return as_query

    shortlist = Shortlist(weighed(0.0), shortlist_size(len(vectors), 1)) if gain else None
    found = top_neighbours(vectors, np.arange(len(vectors)), k, lambda q: groups[hashes[q]], weighed(gain.weights),
                           shortlist)
    scores = []
    for values in labels:
        shared = {value: (values == value).sum() for value in set(values)}
        hits = [float(np.mean(values[found[row]] == values[row])) for row in range(len(vectors))
                if values[row] and shared[values[row]] > len(groups[hashes[row]])]  # someone else shares it
        scores.append(float(np.mean(hits)) if hits else float("nan"))
    return scores


def catalog_vectors(model: np.ndarray, colour: np.ndarray, wanted_dim: int) -> np.ndarray:
    """A catalog's search vectors as fashionrec makes them: its own search space, then its colour vectors."""
    dim = whitening_dim(len(model), wanted_dim, model.shape[1])
    shape = fit_whitening([model], dim, "").apply(model) if dim else l2_normalize(model)
    return np.concatenate([shape, colour], axis=1).astype(np.float32)


def shops(catalog: Catalog, sizes: list[int], seeds: int) -> list[tuple[str, list[np.ndarray]]]:
    """(name, the rows of each of its seeded catalogs): random subsets, single-kind shops, the whole sample."""
    kinds = np.array([v or "" for v in catalog.column_values("masterCategory")], dtype=object)
    found = [(f"{size} random", [np.sort(np.random.default_rng(seed).choice(len(catalog), size, replace=False))
                                 for seed in range(seeds)]) for size in sizes]
    found += [(f"{kind} only", [np.flatnonzero(kinds == kind)]) for kind in KINDS]
    return found + [("whole sample", [np.arange(len(catalog))])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True, help="an indexed catalog of the shared sample")
    parser.add_argument("--sizes", type=int, nargs="*", default=[200, 400, 1000, 2000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--weights", type=float, nargs="*", default=None,
                        help="colour weights (0-1) compared with shape only (default: the setting and 1)")
    parser.add_argument("--shrinkage", type=float, default=None,
                        help="fit the search spaces with this shrinkage instead of catalog.whitening.SHRINKAGE (> 0)")
    parser.add_argument("--raw", action="store_true", help="rank the model's own vectors (no search space)")
    args = parser.parse_args()
    if args.shrinkage is not None:
        if args.shrinkage <= 0:
            sys.exit("--shrinkage must be above 0")
        whitening.SHRINKAGE = args.shrinkage
    settings = load_settings()
    catalog = Catalog.open(args.catalog)
    if not catalog.has_colour:
        sys.exit("the catalog has no colour: run fashionrec index on it first")
    weights = args.weights if args.weights else [settings.colour_weight, 1.0]
    model = catalog.model_vectors
    colour = catalog.vectors[:, -COLOUR_DIM:]
    labels = [np.array([v or "" for v in catalog.column_values(label)], dtype=object) for label in LABELS]
    hashes = np.array(catalog.content_hashes, dtype=object)
    print(f"{catalog.model_name}, leave-one-out P@{K} (articleType / baseColour), exact copies left out, averaged "
          f"over {args.seeds} seeds for random subsets; change against shape only (colour weight 0)\n")
    print("| catalog | products | shape only | " + " | ".join(f"weight {w:g} | change" for w in weights) + " |")
    print("|---|--:|--:|" + "--:|--:|" * len(weights))
    for name, subsets in shops(catalog, args.sizes, args.seeds):
        scores: dict[float, list] = {w: [] for w in [0.0, *weights]}
        for rows in subsets:
            vectors = catalog_vectors(model[rows], colour[rows], 0 if args.raw else settings.whiten_dim)
            for w in scores:
                gain = colour_gain(w, settings, products=len(rows))[1]
                scores[w].append(precision_at_k(vectors, [values[rows] for values in labels], hashes[rows], gain))
        shape = np.mean(scores[0.0], axis=0)
        cells = [f"{shape[0]:.4f} / {shape[1]:.4f}"]
        for w in weights:
            mean = np.mean(scores[w], axis=0)
            cells += [f"{mean[0]:.4f} / {mean[1]:.4f}", f"{mean[0] - shape[0]:+.4f} / {mean[1] - shape[1]:+.4f}"]
        print(f"| {name} | {len(subsets[0]):,} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
