"""`fashionrec tune`: a small projection trained on the catalog's own labels, over its frozen vectors.

Linear discriminant analysis (closed form, seconds on a CPU) finds the directions that separate the label's
classes (e.g. articleType) in the catalog's search space. The tuned vector is the original vector plus those
directions with a weight. The weight is chosen on a held-out split of products. It must raise the label's
precision@k without costing the look: the look label's (baseColour) precision@k may drop by at most
`LOOK_TOLERANCE`. If no weight qualifies, nothing is saved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fashionrec.catalog import Catalog
from fashionrec.catalog.store import CatalogStore
from fashionrec.catalog.tuning import FITTED_ON_KEY, LABEL_KEY, MATRIX_KEY, WEIGHT_KEY, Tuning
from fashionrec.catalog.whitening import products_fingerprint
from fashionrec.errors import FashionrecError
from fashionrec.evaluate import score_label
from fashionrec.search import top_neighbours

WEIGHTS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
LOOK_TOLERANCE = 0.01
MAX_DIRECTIONS = 128
SHRINKAGE = 0.1  # within-class scatter is blended with this share of its mean variance, for stability


@dataclass(frozen=True)
class TuneReport:
    """What tuning measured on the held-out products, and what it saved."""

    label: str
    look_label: str
    k: int
    held_out: int  # held-out products used as queries
    directions: int
    before: tuple[float, float]  # (label P@k, look P@k) without tuning
    after: tuple[float, float]  # with the chosen weight (equal to `before` when nothing was saved)
    weight: float  # 0: nothing saved
    tried: list[tuple[float, float, float]] = field(default_factory=list)  # (weight, label P@k, look P@k)


def fit_lda(vectors: np.ndarray, labels: Sequence[object], directions: int) -> np.ndarray:
    """(d, m) directions maximising between-class over (shrunk) within-class scatter.

    Raises:
        FashionrecError: fewer than two classes with two or more products.
    """
    members: dict[object, list[int]] = defaultdict(list)
    for row, value in enumerate(labels):
        if value is not None:
            members[value].append(row)
    classes = [rows for rows in members.values() if len(rows) >= 2]
    if len(classes) < 2:
        raise FashionrecError("tuning needs at least two classes with two or more products each")
    data = vectors.astype(np.float64)
    overall = data[[r for rows in classes for r in rows]].mean(axis=0)
    within = np.zeros((data.shape[1], data.shape[1]))
    between = np.zeros_like(within)
    for rows in classes:
        block = data[rows]
        centre = block.mean(axis=0)
        within += (block - centre).T @ (block - centre)
        between += len(rows) * np.outer(centre - overall, centre - overall)
    within = (1 - SHRINKAGE) * within + SHRINKAGE * np.trace(within) / len(within) * np.eye(len(within))
    lower = np.linalg.cholesky(within)
    whitened_between = np.linalg.solve(lower, np.linalg.solve(lower, between).T).T
    values, axes = np.linalg.eigh(whitened_between)
    keep = np.argsort(values)[::-1][: min(directions, len(classes) - 1, MAX_DIRECTIONS)]
    return np.linalg.solve(lower.T, axes[:, keep]).astype(np.float32)


def tune(catalog: Catalog, label: str = "articleType", look_label: str = "baseColour", k: int = 5,
         held_out: float = 0.2, seed: int = 0) -> tuple[TuneReport, Tuning | None]:
    """Choose a tuning on a held-out split; returns the report and the tuning fitted on every product (or None).

    Raises:
        FashionrecError: a label the catalog does not have, or too few labelled products.
    """
    for column in (label, look_label):
        if column not in catalog.columns:
            raise FashionrecError(f"the catalog has no column {column}; its columns are: {', '.join(catalog.columns)}")
    if catalog.tuning is not None:
        raise FashionrecError(f"the catalog is tuned for {catalog.tuning.label} already; "
                              "remove that first with: fashionrec tune --reset --catalog " + str(catalog.catalog_dir))
    vectors = catalog.vectors
    values = {c: np.array(catalog.column_values(c), dtype=object) for c in (label, look_label)}
    order = np.random.default_rng(seed).permutation(len(catalog))
    test = np.sort(order[: max(1, int(held_out * len(catalog)))])
    train = np.sort(order[len(test):])
    directions = fit_lda(vectors[train], values[label][train], MAX_DIRECTIONS)

    def scores(candidate: np.ndarray) -> tuple[float, float]:
        found = top_neighbours(candidate, test, min(k, len(catalog) - 1))
        return tuple(score_label(c, values[c], test, found, k, {}).precision for c in (label, look_label))

    before = scores(vectors)
    tried = [(w, *scores(Tuning(label, directions, w, "").apply(vectors))) for w in WEIGHTS]
    allowed = [t for t in tried if t[2] >= before[1] - LOOK_TOLERANCE and t[1] > before[0]]
    best = max(allowed, key=lambda t: t[1], default=None)
    report = TuneReport(label, look_label, k, len(test), directions.shape[1], before,
                        (best[1], best[2]) if best else before, best[0] if best else 0.0, tried)
    if best is None:
        return report, None
    everything = fit_lda(vectors, values[label], MAX_DIRECTIONS)
    fingerprint = products_fingerprint(catalog.ids, catalog.content_hashes)
    return report, Tuning(label, everything, best[0], fingerprint)


def save_tuning(catalog: Catalog, tuning: Tuning) -> None:
    """Store a tuning in the catalog; `Catalog.open` applies it from then on (until the products change)."""
    with CatalogStore(catalog.catalog_dir) as store:
        store.put_arrays({MATRIX_KEY: tuning.matrix}, {LABEL_KEY: tuning.label, WEIGHT_KEY: repr(tuning.weight),
                                                      FITTED_ON_KEY: tuning.fitted_on})


def remove_tuning(catalog: Catalog) -> None:
    """Forget the catalog's tuning: search goes back to the (whitened) model vectors."""
    with CatalogStore(catalog.catalog_dir) as store:
        store.delete_arrays([MATRIX_KEY], [LABEL_KEY, WEIGHT_KEY, FITTED_ON_KEY])
