"""How much drift can a fixed search space take? Leave-one-out P@5 when the whitening was fitted on fewer products.

    python benchmarks/drift.py [--catalog DIR] [--data DIR]

A live catalog keeps its search space while products come and go, so products added later are whitened by a
space fitted without them. This measures the cost: the whitening is fitted on part of the sample (the catalog
"as it was") and applied to all of it (the catalog now), and leave-one-out precision@5 over every product is
compared with a whitening fitted on all of it. Drift is `catalog.derived.drift`: products added since the fit as
a share of the products it was fitted on. Two kinds of change:
- new kinds of product: whole articleTypes (a seeded random order) arrive after the fit, the hard case;
- more of the same: a seeded random share of the products arrives after the fit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fashionrec.catalog import Catalog, index_images
from fashionrec.catalog.derived import drift
from fashionrec.catalog.whitening import fit_whitening
from fashionrec.config import load_settings
from fashionrec.demo import find_sample_data
from fashionrec.evaluate import evaluate

DRIFTS = (0.1, 0.25, 0.5, 1.0, 2.0)


def scores(catalog: Catalog, model_vectors: np.ndarray, fitted: np.ndarray, dim: int) -> tuple[float, float]:
    """(articleType, baseColour) P@5 of every product, whitened by a fit on the rows `fitted`."""
    whitening = fit_whitening([model_vectors[fitted]], dim, "bench")
    result = evaluate(catalog, ["articleType", "baseColour"], k=5, vectors=whitening.apply(model_vectors))
    return result.deduplicated[0].precision, result.deduplicated[1].precision


def later_by_article_type(catalog: Catalog, share: float, rng: np.random.Generator) -> np.ndarray:
    """Rows of whole articleTypes (random order) making up about `share` of the catalog: what arrives later."""
    types = np.array(catalog.column_values("articleType"), dtype=object)
    later = np.zeros(len(catalog), dtype=bool)
    for kind in rng.permutation(sorted({str(t) for t in types})):
        if later.mean() >= share:
            break
        later |= types == kind
    return later


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=load_settings().cache_dir / "demo-catalog")
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    data = find_sample_data(args.data)
    index_images(data / "images", args.catalog, metadata=data / "styles.csv", progress=False)
    catalog = Catalog.open(args.catalog)
    dim = catalog.whitening.dim if catalog.whitening else load_settings().whiten_dim
    model_vectors = catalog.model_vectors
    everything = np.arange(len(catalog))
    base = scores(catalog, model_vectors, everything, dim)
    print(f"{len(catalog)} products, {catalog.model_name}, whitened to {dim}; fitted on every product: "
          f"articleType {base[0]:.4f}, baseColour {base[1]:.4f}\n")
    print("| change after the fit | drift | fitted on | articleType P@5 | vs refit | baseColour P@5 | vs refit |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in ("new kinds of product", "more of the same"):
        for wanted in DRIFTS:
            share = wanted / (1 + wanted)  # added / fitted = drift  <=>  added / all = drift / (1 + drift)
            rng = np.random.default_rng(0)
            if kind == "new kinds of product":
                later = later_by_article_type(catalog, share, rng)
            else:
                later = np.zeros(len(catalog), dtype=bool)
                later[rng.choice(len(catalog), int(round(share * len(catalog))), replace=False)] = True
            fitted = np.flatnonzero(~later)
            if len(fitted) < 4 * dim:
                continue
            article, colour = scores(catalog, model_vectors, fitted, dim)
            moved = drift(len(fitted), len(fitted), int(later.sum()))
            print(f"| {kind} | {moved:.2f} | {len(fitted):,} | {article:.4f} | {article - base[0]:+.4f} | "
                  f"{colour:.4f} | {colour - base[1]:+.4f} |", flush=True)


if __name__ == "__main__":
    main()
