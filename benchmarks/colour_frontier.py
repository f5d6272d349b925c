"""Issue 22: is +0.05 baseColour within 0.01 articleType reachable on every catalog? The colour re-rank's frontier.

    python benchmarks/colour_frontier.py --catalog DIR oracle [--sizes 200 400] [--seeds 3] [--rows]
    python benchmarks/colour_frontier.py --catalog DIR layout [--sizes 200 400 1000 2000] [--shops] [--whole] [--rows]

The catalogs are those of `benchmarks/catalogs.py` (seeded random subsets, single-kind shops, the whole sample), each
with its own search space. Every ranking here is the shipped scheme: the shape shortlist of `recommend.query`
(`shortlist_size`), re-ranked by shape + gain x colour similarity; leave-one-out P@5, the query's exact copies left
out, queries whose label no one else shares not counted (as `fashionrec evaluate`). What changes is the colour
similarity put in the re-rank (and, for `margin`, which shortlisted products colour may move):

- oracle: 1 where the two products share their baseColour label, else 0 (a perfect colour);
- soft oracle: a one-hot of the label plus Gaussian noise, the noise set (bisection) so that colour alone ranks
  baseColour as well as the real colour layout does on that catalog (standalone P@5 over the whole catalog);
- layout: the shipped colour layout (`imaging.colour`), and the same without its 64 main axes (1,024 bins);
  `layout` mode also scores a default gain that grows with the catalog's size (`sized_gains`).
Other label-free colour features (names, swatches, perceptual kernels, query expansion, gates) are measured by the
study scripts in benchmarks/colour_frontier_extra/.

For each feature and gain it prints articleType / baseColour change against shape only, averaged over the seeds, and
the "frontier": the largest baseColour change whose articleType change is >= -0.01 on the catalog.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogs import KINDS, catalog_vectors

from fashionrec.catalog import Catalog
from fashionrec.catalog.store import CatalogStore
from fashionrec.config import load_settings
from fashionrec.imaging.colour import COLOUR_DIM, LAYOUT_DIM
from fashionrec.recommend.query import shortlist_size

K = 5
BOUND_TYPE, BOUND_COLOUR = -0.01, 0.05


class Shop:
    """One catalog: its shape similarities, the shortlist of each query, labels, and P@5 of any re-rank."""

    def __init__(self, shape: np.ndarray, types: np.ndarray, colours: np.ndarray, hashes: np.ndarray,
                 listed: int | None = None):
        n = len(shape)
        self.n = n
        sims = shape @ shape.T
        groups = defaultdict(list)
        for row, digest in enumerate(hashes):
            groups[digest].append(row)
        self.excluded = np.zeros((n, n), dtype=bool)
        for rows in groups.values():
            self.excluded[np.ix_(rows, rows)] = True
        sims[self.excluded] = -np.inf
        self.sims = sims
        self.shape = shape
        self.size = shortlist_size(n, 1) if listed is None else listed
        part = np.argpartition(-sims, self.size - 1, axis=1)[:, :self.size]
        order = np.argsort(-np.take_along_axis(sims, part, 1), axis=1, kind="stable")
        self.listed = np.take_along_axis(part, order, 1)  # (n, size), shape order
        self.shape_listed = np.take_along_axis(sims, self.listed, 1)
        self.types, self.colours = types, colours
        copies = np.array([len(groups[h]) for h in hashes])
        self.counted = []
        self.same = []
        for values in (types, colours):
            shared = defaultdict(int)
            for v in values:
                shared[v] += 1
            self.counted.append(np.array([bool(v) and shared[v] > c for v, c in zip(values, copies)]))
            self.same.append(values[self.listed] == values[:, None])  # (n, size)
        finite = sims[np.isfinite(sims)]
        self.spread = float(np.std(finite))

    def precision(self, extra: np.ndarray | None) -> np.ndarray:
        """(articleType, baseColour) P@5 when the shortlist is ranked by shape + extra (n, size)."""
        score = self.shape_listed if extra is None else self.shape_listed + extra
        top = np.argsort(-score, axis=1, kind="stable")[:, :K]
        return np.array([np.take_along_axis(same, top, 1).mean(1)[counted].mean()
                         for same, counted in zip(self.same, self.counted)])

    def within(self, similarity: np.ndarray | None = None) -> np.ndarray:
        """Similarities among each query's shortlisted products (n, size, size), shape unless given (n, n)."""
        if similarity is not None:
            return similarity[self.listed[:, :, None], self.listed[:, None, :]]
        vectors = self.shape[self.listed]
        return np.einsum("qid,qjd->qij", vectors, vectors)

    def gather(self, similarity: np.ndarray) -> np.ndarray:
        """A full (n, n) similarity at each query's shortlist (n, size)."""
        return np.take_along_axis(similarity, self.listed, 1)

    def standalone(self, vectors: np.ndarray) -> float:
        """baseColour P@5 ranking the whole catalog by these vectors alone."""
        sims = vectors @ vectors.T
        sims[self.excluded] = -np.inf
        top = np.argpartition(-sims, K - 1, axis=1)[:, :K]
        return float((self.colours[top] == self.colours[:, None]).mean(1)[self.counted[1]].mean())


def frontier(rows: list[tuple[float, np.ndarray]]) -> tuple[float, float, float]:
    """(gain, articleType change, baseColour change) of the best baseColour change with articleType >= -0.01."""
    best = (0.0, 0.0, 0.0)
    for gain, change in rows:
        if change[0] >= BOUND_TYPE - 1e-12 and change[1] > best[2]:
            best = (gain, float(change[0]), float(change[1]))
    return best


class Sample:
    """The indexed sample: model vectors, colour vectors, histograms, labels, hashes, master categories."""

    def __init__(self, catalog_dir: Path):
        catalog = Catalog.open(catalog_dir)
        self.model = catalog.model_vectors
        self.colour = catalog.vectors[:, -COLOUR_DIM:]
        with CatalogStore(catalog.catalog_dir, reading=True) as store:
            found = store.colours_of(list(catalog.ids))
        self.histograms = np.stack([found[i] for i in catalog.ids]).astype(np.float32)
        values = {name: np.array([v or "" for v in catalog.column_values(name)], dtype=object)
                  for name in ("articleType", "baseColour", "masterCategory")}
        self.types, self.colours, self.kinds = values["articleType"], values["baseColour"], values["masterCategory"]
        self.hashes = np.array(catalog.content_hashes, dtype=object)
        self.whiten_dim = load_settings().whiten_dim

    def __len__(self) -> int:
        return len(self.model)

    def catalogs(self, sizes: list[int], seeds: int, shops: bool, whole: bool) -> list[tuple[str, list[np.ndarray]]]:
        found = [(f"{size} random", [np.sort(np.random.default_rng(seed).choice(len(self), size, replace=False))
                                     for seed in range(seeds)]) for size in sizes]
        if shops:
            found += [(f"{kind} only", [np.flatnonzero(self.kinds == kind)]) for kind in KINDS]
        return found + ([("whole sample", [np.arange(len(self))])] if whole else [])

    def shop(self, rows: np.ndarray, listed: int | None = None) -> tuple[Shop, np.ndarray]:
        """(the catalog of these rows, its colour vectors)."""
        vectors = catalog_vectors(self.model[rows], self.colour[rows], self.whiten_dim)
        shape = vectors[:, :-COLOUR_DIM]
        return Shop(shape, self.types[rows], self.colours[rows], self.hashes[rows], listed), vectors[:, -COLOUR_DIM:]


GAINS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)


def one_hot(values: np.ndarray) -> np.ndarray:
    names = sorted(set(values) - {""})
    index = {name: i for i, name in enumerate(names)}
    hot = np.zeros((len(values), len(names)), dtype=np.float32)
    for row, value in enumerate(values):
        if value:
            hot[row, index[value]] = 1
    return hot


def soft_oracle(shop: Shop, target: float, seed: int = 0) -> tuple[np.ndarray, float]:
    """(a noisy one-hot of the baseColour label, unit rows, whose standalone baseColour P@5 is `target`; its noise)."""
    hot = one_hot(shop.colours)
    noise = np.random.default_rng(seed).standard_normal(hot.shape).astype(np.float32)

    def vectors(sigma: float) -> np.ndarray:
        v = hot + sigma * noise
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    low, high = 0.0, 5.0
    for _ in range(18):
        mid = (low + high) / 2
        low, high = (mid, high) if shop.standalone(vectors(mid)) > target else (low, mid)
    return vectors((low + high) / 2), (low + high) / 2


def margin_extra(shop: Shop, colour: np.ndarray, gain: float, margin: float) -> np.ndarray:
    """Colour moves only the shortlisted products within `margin` (x the catalog's shape-similarity spread) of the
    query's K-th shape neighbour; the others keep their shape score and fall below them."""
    kth = shop.shape_listed[:, K - 1:K]
    near = shop.shape_listed >= kth - margin * shop.spread
    return np.where(near, gain * colour, -10.0)


def table(title: str, results: dict[str, dict[str, list[tuple[float, np.ndarray]]]], show_rows: bool) -> None:
    """results[catalog][feature] = [(gain, change averaged over seeds)]: frontier per feature and catalog."""
    names = list(results)
    features = list(next(iter(results.values())))
    print(f"\n{title}: best baseColour change at articleType change >= {BOUND_TYPE} (gain; type / colour)\n")
    print("| feature | " + " | ".join(names) + " |")
    print("|---|" + "--:|" * len(names))
    for feature in features:
        cells = []
        for name in names:
            gain, dt, dc = frontier(results[name][feature])
            mark = "**" if dc >= BOUND_COLOUR else ""
            cells.append(f"{gain:g}: {dt:+.4f} / {mark}{dc:+.4f}{mark}")
        print(f"| {feature} | " + " | ".join(cells) + " |", flush=True)
    if show_rows:
        for name in names:
            for feature in features:
                print(f"  {name} {feature}: " + ", ".join(f"{g:g}: {c[0]:+.3f}/{c[1]:+.3f}"
                                                        for g, c in results[name][feature]))


def sweep(shop: Shop, base: np.ndarray, extra: Callable[[float], np.ndarray], gains=GAINS) -> list[np.ndarray]:
    return [shop.precision(extra(g)) - base for g in gains]


def run_oracle(sample: Sample, sizes: list[int], seeds: int, shops: bool, whole: bool, rows_too: bool) -> None:
    results: dict = {}
    standalone: dict = {}
    for name, subsets in sample.catalogs(sizes, seeds, shops, whole):
        per: dict[str, list[list[np.ndarray]]] = defaultdict(list)
        alone = []
        for rows in subsets:
            shop, colour = sample.shop(rows)
            base = shop.precision(None)
            same = shop.same[1].astype(np.float32)
            layout = colour[:, :LAYOUT_DIM]
            lay_alone = shop.standalone(layout)
            soft, sigma = soft_oracle(shop, lay_alone)
            soft_listed = shop.gather(soft @ soft.T)
            lay_listed = shop.gather(layout @ layout.T)
            alone.append([lay_alone, shop.standalone(colour), shop.standalone(one_hot(shop.colours)), sigma])
            per["oracle, shortlist shipped"].append(sweep(shop, base, lambda g, x=same: g * x))
            per["soft oracle (layout's standalone P@5)"].append(sweep(shop, base, lambda g, x=soft_listed: g * x))
            per["real colour layout (shipped)"].append(sweep(shop, base, lambda g, x=lay_listed: g * x))
            for margin in (0.1, 0.2, 0.3, 0.5):
                per[f"oracle, margin {margin} spread"].append(
                    sweep(shop, base, lambda g, x=same, m=margin, c=shop: margin_extra(c, x, g, m)))
            for target in (0.35, 0.4, 0.45, 0.5, 0.6):
                noisy_vectors = soft_oracle(shop, target)[0]
                noisy = shop.gather(noisy_vectors @ noisy_vectors.T)
                per[f"soft oracle, standalone {target}"].append(sweep(shop, base, lambda g, x=noisy: g * x))
            for size in (10, 40, 100):
                if size < shop.n:
                    sub = sample.shop(rows, size)[0]
                    sub_same = sub.same[1].astype(np.float32)
                    per[f"oracle, shortlist {size}"].append(
                        sweep(sub, base, lambda g, x=sub_same: g * x))
        results[name] = {feature: list(zip(GAINS, np.mean(runs, axis=0))) for feature, runs in per.items()}
        standalone[name] = np.mean(alone, axis=0)
    print("standalone baseColour P@5 (whole catalog ranked by colour alone): layout / joined colour vector / label "
          "oracle; soft oracle's noise sigma")
    for name, values in standalone.items():
        print(f"  {name}: {values[0]:.4f} / {values[1]:.4f} / {values[2]:.4f}; sigma {values[3]:.3f}")
    table("Oracle", results, rows_too)


def sized_gains(products: int) -> dict[str, float]:
    """The default's layout gain in a catalog of `products` (`recommend.query.colour_gain`: it grows with the
    catalog, a bigger catalog holding more of the query's kind in its shortlist), and the rule before it (0.3)."""
    from fashionrec.recommend.query import colour_gain

    shipped = colour_gain(None, load_settings(), products=products)[1].layout
    return {"default (shipped, by size)": shipped, "default before (0.3 at every size)": 0.3}


FINE = tuple(np.round(np.concatenate([np.arange(0.1, 0.5, 0.025), np.arange(0.5, 1.05, 0.1)]), 3))


def run_layout(sample: Sample, sizes: list[int], seeds: int, shops: bool, whole: bool, rows_too: bool) -> None:
    """The shipped colour layout's frontier on every catalog, and the gain that reaches +0.05 / the whole-sample
    figures: is there one gain for all, or a gain that grows with the catalog?"""
    from fashionrec.imaging.colour import _prior, layout_roots
    from fashionrec.vectors import l2_normalize
    prior = _prior()
    full = l2_normalize(layout_roots(sample.histograms, prior["band_roots_mean"]) - prior["layout_mean"])
    results: dict = {}
    bases = {}
    for name, subsets in sample.catalogs(sizes, seeds, shops, whole):
        per: dict[str, list] = defaultdict(list)
        base_runs = []
        for rows in subsets:
            shop, colour = sample.shop(rows)
            base = shop.precision(None)
            base_runs.append(base)
            for feature, vectors in (("layout (shipped)", colour[:, :LAYOUT_DIM]), ("layout, 1024 bins", full[rows])):
                listed = shop.gather(vectors @ vectors.T)
                per[feature].append(sweep(shop, base, lambda g, x=listed: g * x, FINE))
            listed_layout = shop.gather(colour[:, :LAYOUT_DIM] @ colour[:, :LAYOUT_DIM].T)
            for rule, gain in sized_gains(len(rows)).items():
                per[rule].append([shop.precision(gain * listed_layout) - base] * len(FINE))
        results[name] = {feature: list(zip(FINE, np.mean(runs, axis=0))) for feature, runs in per.items()}
        bases[name] = np.mean(base_runs, axis=0)
        print(f"  {name}: shape only {bases[name][0]:.4f} / {bases[name][1]:.4f}", flush=True)
    table("Colour layout", results, rows_too)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("mode", choices=["oracle", "layout"])
    parser.add_argument("--sizes", type=int, nargs="*", default=[200, 400])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shops", action="store_true", help="also the single-kind shops")
    parser.add_argument("--whole", action="store_true", help="also the whole sample")
    parser.add_argument("--rows", action="store_true", help="also print every gain's change")
    args = parser.parse_args()
    sample = Sample(args.catalog)
    if args.mode == "oracle":
        run_oracle(sample, args.sizes, args.seeds, args.shops, args.whole, args.rows)
    elif args.mode == "layout":
        run_layout(sample, args.sizes, args.seeds, args.shops, args.whole, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
