"""`fashionrec tune`: small projections trained on the catalog's own labels, over its frozen search vectors.

Two projections are fitted, and the search vector becomes [v; w_lda LDA(v); w_head HEAD(v)] (each projection at
unit length), so the look (the whole vector) is kept and the labels are emphasised:
- LDA: linear discriminant analysis of the label (e.g. articleType), in closed form: the directions that
  separate its classes.
- HEAD: a linear embedding (256-d) trained with two softmax heads at once, one for the label and one for the
  look label (e.g. baseColour), on its unit-length output (numpy, full-batch Adam, strong weight decay; about
  half a minute for 6,000 products on 2 cores). A head that learns the look label too raises both.

The weights are chosen on a held-out split of the products (seeded): the projections are fitted on the rest, and
the held-out products query the whole catalog. The chosen weights must raise the label's precision@k while the
look label's precision@k drops by at most `LOOK_TOLERANCE`; among those, the weights that raise the two together
the most (the highest sum of both precisions) win: a shop wants the kind of product and its look. The
projections are then fitted again on every product and saved. If no weights qualify, nothing is saved.
Measured on the shared sample: docs/QUALITY.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.catalog.space import untuned_space
from fashionrec.catalog.tuning import Tuning, TuningPart
from fashionrec.errors import FashionrecError
from fashionrec.quality.evaluate import score_label
from fashionrec.search.block import top_neighbours

LDA_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0)
HEAD_WEIGHTS = (0.0, 1.0, 2.0, 4.0)
LOOK_TOLERANCE = 0.01
MAX_DIRECTIONS = 128
SHRINKAGE = 0.1  # within-class scatter is blended with this share of its mean variance, for stability


@dataclass(frozen=True)
class HeadSettings:
    """How the label head is trained: generic settings, not chosen on any one catalog."""

    dim: int = 256
    steps: int = 100
    learning_rate: float = 0.01
    weight_decay: float = 0.03  # strong: without it the head overfits (held-out articleType falls below untuned)
    scale: float = 16.0  # softmax temperature on the unit-length embedding
    seed: int = 0


@dataclass(frozen=True)
class TuneReport:
    """What tuning measured on the held-out products, and what it chose."""

    label: str
    look_label: str
    k: int
    held_out: int  # held-out products used as queries
    before: tuple[float, float]  # (label P@k, look P@k) without tuning
    after: tuple[float, float]  # with the chosen weights (equal to `before` when nothing qualified)
    weights: dict[str, float]  # the chosen weight of each projection ({}: nothing qualified)
    tried: list[tuple[dict[str, float], float, float]] = field(default_factory=list)  # (weights, label, look P@k)

    @property
    def kept(self) -> bool:
        """Whether some weights qualified (and so a tuning is saved, unless it is a dry run)."""
        return bool(self.weights)


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


def fit_head(vectors: np.ndarray, labels: Sequence[Sequence[object]], settings: HeadSettings = HeadSettings()
             ) -> np.ndarray:
    """(d, dim) linear embedding trained so that its unit-length output predicts every label (softmax heads).

    Full-batch Adam on the summed cross-entropies; rows without a label's value are left out of that label's loss.

    Raises:
        FashionrecError: no label has two classes.
    """
    rng = np.random.default_rng(settings.seed)
    x = np.asarray(vectors, dtype=np.float32)
    weights = [(rng.standard_normal((x.shape[1], settings.dim)) / np.sqrt(x.shape[1])).astype(np.float32)]
    targets = []
    for values in labels:
        classes = {value: i for i, value in enumerate(sorted({v for v in values if v is not None}, key=str))}
        if len(classes) < 2:
            continue
        target = np.array([classes.get(v, -1) for v in values])
        targets.append(target)
        weights += [(rng.standard_normal((len(classes), settings.dim)) * 0.01).astype(np.float32),
                    np.zeros(len(classes), dtype=np.float32)]
    if not targets:
        raise FashionrecError("tuning needs a label with at least two classes")
    moments = [(np.zeros_like(w), np.zeros_like(w)) for w in weights]
    for step in range(1, settings.steps + 1):
        gradients = _head_gradients(x, weights, targets, settings)
        for w, g, (m, v) in zip(weights, gradients, moments):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            w -= settings.learning_rate * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return weights[0]


def _head_gradients(x: np.ndarray, weights: list[np.ndarray], targets: list[np.ndarray],
                    settings: HeadSettings) -> list[np.ndarray]:
    """Gradients of the summed cross-entropies (plus weight decay) for [embedding, (classes, bias) per label]."""
    hidden = x @ weights[0]
    norms = np.maximum(np.linalg.norm(hidden, axis=1, keepdims=True), 1e-12)
    unit = hidden / norms
    d_unit = np.zeros_like(unit)
    gradients: list[np.ndarray] = []
    for index, target in enumerate(targets):
        classes, bias = weights[1 + 2 * index], weights[2 + 2 * index]
        rows = target >= 0
        logits = settings.scale * unit[rows] @ classes.T + bias
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        probabilities[np.arange(rows.sum()), target[rows]] -= 1
        d_logits = probabilities / max(1, rows.sum())
        gradients += [settings.scale * d_logits.T @ unit[rows] + settings.weight_decay * classes, d_logits.sum(axis=0)]
        d_unit[rows] += settings.scale * d_logits @ classes
    d_hidden = (d_unit - unit * np.sum(d_unit * unit, axis=1, keepdims=True)) / norms
    return [x.T @ d_hidden + settings.weight_decay * weights[0], *gradients]


def tune(catalog: Catalog, label: str = "articleType", look_label: str = "baseColour", k: int = 5,
         held_out: float = 0.2, seed: int = 0, head: HeadSettings = HeadSettings()) -> tuple[TuneReport, Tuning | None]:
    """Choose a tuning on a held-out split; returns the report and the tuning fitted on every product (or None).

    Raises:
        FashionrecError: a label the catalog does not have, a catalog tuned already, or too few labelled products.

    Example:
        >>> report, tuning = tune(Catalog.open("my-catalog"), "articleType", "baseColour")
        >>> report.after[0] > report.before[0]
        True
    """
    for column in (label, look_label):
        if column not in catalog.columns:
            raise FashionrecError(f"the catalog has no column {column}; its columns are: {', '.join(catalog.columns)}")
    if catalog.tuning is not None:
        raise FashionrecError(f"the catalog is tuned for {catalog.tuning.label} already; "
                              "remove that first with: fashionrec tune --reset --catalog " + str(catalog.catalog_dir))
    if len(catalog) < 10:
        raise FashionrecError(f"tuning needs at least 10 products; the catalog has {len(catalog)}")
    vectors = catalog.shape_part(catalog.vectors)  # the tuning acts on the shape; the colour part stays apart
    values = {c: np.array(catalog.column_values(c), dtype=object) for c in (label, look_label)}
    order = np.random.default_rng(seed).permutation(len(catalog))
    test = np.sort(order[: max(1, int(held_out * len(catalog)))])
    train = np.sort(order[len(test):])
    fitted = _fit_parts(vectors[train], values[label][train], values[look_label][train], head)

    def scores(candidate: np.ndarray) -> tuple[float, float]:
        found = top_neighbours(candidate, test, min(k, len(catalog) - 1))
        return tuple(score_label(c, values[c], test, found, k, {}).precision for c in (label, look_label))

    before = scores(vectors)
    tried = []
    for weights in _weight_grid():
        tuning = Tuning(label, look_label, _parts(fitted, weights), "")
        tried.append((weights, *scores(tuning.apply(vectors))))
    allowed = [t for t in tried if t[2] >= before[1] - LOOK_TOLERANCE and t[1] > before[0]]
    best = max(allowed, key=lambda t: (t[1] + t[2], t[1]), default=None)
    report = TuneReport(label, look_label, k, len(test), before, (best[1], best[2]) if best else before,
                        best[0] if best else {}, tried)
    if best is None:
        return report, None
    everything = _fit_parts(vectors, values[label], values[look_label], head, wanted=best[0])
    return report, Tuning(label, look_label, _parts(everything, best[0]), untuned_space(catalog).digest)


def _weight_grid() -> list[dict[str, float]]:
    """Every combination of the projections' weights but 'none at all'; a weight of 0 leaves a projection out."""
    grid = [{"lda": a, "head": b} for a in LDA_WEIGHTS for b in HEAD_WEIGHTS]
    return [{name: w for name, w in weights.items() if w > 0} for weights in grid if any(weights.values())]


def _fit_parts(vectors: np.ndarray, labels: np.ndarray, look: np.ndarray, head: HeadSettings,
               wanted: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """The projections fitted on these rows (only those `wanted` names, when given)."""
    fitted = {}
    if wanted is None or "lda" in wanted:
        fitted["lda"] = fit_lda(vectors, labels, MAX_DIRECTIONS)
    if wanted is None or "head" in wanted:
        fitted["head"] = fit_head(vectors, [labels, look], head)
    return fitted


def _parts(fitted: dict[str, np.ndarray], weights: dict[str, float]) -> tuple[TuningPart, ...]:
    return tuple(TuningPart(name, fitted[name], weight) for name, weight in weights.items())
