"""How good are the recommendations? Leave-one-out precision@k and mAP@k by label, and recall of real photos.

Leave-one-out: every catalog product (or a seeded sample) is a query against all the others; a result is
relevant when it shares the query's label (articleType, baseColour, ...). Each figure comes twice: with the
catalog as it is, and with the query's exact-duplicate images (same file content) left out of its
candidates, since a copy of the query is a free hit that says nothing about the model.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.config import load_settings
from fashionrec.errors import FashionrecError
from fashionrec.recommend.query import colour_gain, colour_ranking
from fashionrec.search.block import top_neighbours

DEFAULT_LABELS = ("articleType",)
CURVE_DEPTH = 20  # precision@i is reported for i = 1..max(k, CURVE_DEPTH)


@dataclass(frozen=True)
class ClassScore:
    """One label value (e.g. articleType=Tshirts) as a query class."""

    value: str
    queries: int
    precision: float  # mean precision@k of its queries
    average_precision: float  # mean AP@k of its queries


@dataclass(frozen=True)
class LabelScores:
    """Precision@k and mAP@k for one label: micro (mean over queries) and macro (mean over classes)."""

    label: str
    k: int
    queries: int  # queries scored: they have the label and at least one other product shares it
    unscored: int  # queries without the label, or alone in their class
    precision: float
    precision_macro: float
    map: float
    map_macro: float
    precision_curve: list[float]  # micro precision@i for i = 1, 2, ...
    classes: list[ClassScore] = field(default_factory=list)


@dataclass(frozen=True)
class PhotoRecall:
    """Outside photos named <product id>.jpg: where their own product ranks."""

    photos: int  # photos of products in the catalog
    not_in_catalog: int
    recall_at_1: float
    recall_at_5: float
    ranks: dict[str, int | None]  # product id -> 1-based rank within the top 100, None beyond


@dataclass(frozen=True)
class Evaluation:
    """Everything `evaluate` measured."""

    model: str
    products: int
    k: int
    queries: int
    duplicate_groups: int  # groups of two or more products with identical image files
    labels: list[LabelScores]
    deduplicated: list[LabelScores]
    photos: PhotoRecall | None = None
    colour_weight: float = 0.0  # how much colour counted in the queries (0-1, as on every face)


def evaluate(catalog: Catalog, labels: Sequence[str] = DEFAULT_LABELS, k: int = 5, queries: int | None = None,
             seed: int = 0, vectors: np.ndarray | None = None, colour_weight: float | None = 0.0,
             rows: Sequence[int] | None = None) -> Evaluation:
    """Leave-one-out precision@k and mAP@k of `catalog` for each label.

    Args:
        catalog: the catalog; its vectors are scored unless `vectors` (row-aligned, unit length) is given,
            which lets a benchmark compare other embeddings of the same products.
        labels: metadata columns whose equality makes a result relevant.
        k: the cut-off.
        queries: score a seeded random sample of this many products (default: every product).
        seed: the sample's seed.
        colour_weight: how much colour counts in the queries, 0 (shape alone) to 1, as on every face (None: the
            settings' default). Only for the catalog's own vectors (given `vectors` are ranked as they are).
        rows: score exactly these products (catalog rows) as queries, e.g. a held-out half; overrides `queries`.

    Raises:
        FashionrecError: k below 1 or above the candidates a query has, a label the catalog has no column for,
            or too few products.

    Example:
        >>> evaluate(Catalog.open("my-catalog"), ["articleType"], k=5).labels[0].precision
        0.71
    """
    asked, gain = colour_gain(colour_weight, load_settings(), catalog.has_colour, products=len(catalog))
    as_query, shortlist = colour_ranking(catalog, gain) if vectors is None else (None, None)  # own vectors
    vectors = catalog.vectors if vectors is None else vectors
    _check(catalog, labels, k, vectors)
    positions = _query_positions(len(catalog), queries, seed) if rows is None else np.sort(np.asarray(rows, np.int64))
    depth = min(max(k, CURVE_DEPTH), len(catalog) - 1)
    groups = _duplicate_groups(catalog.content_hashes)
    as_is = top_neighbours(vectors, positions, depth, lambda q: [q], as_query, shortlist)
    without_copies = top_neighbours(vectors, positions, depth, lambda q: groups.get(q, [q]), as_query, shortlist)
    columns = {label: np.array(catalog.column_values(label), dtype=object) for label in labels}
    return Evaluation(
        model=catalog.model_name, products=len(catalog), k=k, queries=len(positions),
        duplicate_groups=len({tuple(g) for g in groups.values()}),
        labels=[score_label(label, columns[label], positions, as_is, k, {}) for label in labels],
        deduplicated=[score_label(label, columns[label], positions, without_copies, k, groups) for label in labels],
        colour_weight=asked,
    )


def _check(catalog: Catalog, labels: Sequence[str], k: int, vectors: np.ndarray) -> None:
    """Refuse what cannot be evaluated, saying why."""
    if k < 1:
        raise FashionrecError(f"k must be at least 1, got {k}")
    if len(catalog) < 2:
        raise FashionrecError("leave-one-out needs a catalog of at least 2 products")
    if vectors.shape[0] != len(catalog):
        raise FashionrecError(f"{vectors.shape[0]} vectors for {len(catalog)} products")
    # Each query is ranked against the other products less the copies of its own image (the scores without
    # copies): past that count the ranking runs out of candidates.
    largest_group = max(Counter(catalog.content_hashes).values())
    most = len(catalog) - largest_group
    if k > most:
        copies = f", less the copies of its own image (up to {largest_group - 1} here)" if largest_group > 1 else ""
        raise FashionrecError(f"-k {k} is too large for this catalog of {len(catalog)} products: each query is ranked "
                              f"against the other products{copies}, so k can be at most {most}")
    missing = [label for label in labels if label not in catalog.columns]
    if missing:
        known = ", ".join(catalog.columns) or "none (the catalog was indexed without metadata)"
        raise FashionrecError(f"the catalog has no column {', '.join(missing)}; its columns are: {known}")


def _query_positions(products: int, queries: int | None, seed: int) -> np.ndarray:
    """Every row, or a seeded sample of `queries` rows (in row order)."""
    if queries is None or queries >= products:
        return np.arange(products)
    if queries < 1:
        raise FashionrecError(f"--queries must be at least 1, got {queries}")
    return np.sort(np.random.default_rng(seed).choice(products, size=queries, replace=False))


def _duplicate_groups(hashes: Sequence[str]) -> dict[int, list[int]]:
    """Row -> every row with the same image content, for rows that have a copy."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for position, digest in enumerate(hashes):
        by_hash[digest].append(position)
    return {position: group for group in by_hash.values() if len(group) > 1 for position in group}


def score_label(label: str, values: np.ndarray, positions: np.ndarray, neighbours: np.ndarray, k: int,
                groups: dict[int, list[int]]) -> LabelScores:
    """Precision@k, AP@k and the precision curve for one label, from neighbour rows.

    A query is scored when it has a value and some other candidate shares it; AP@k divides by
    min(k, relevant candidates), so a perfect ranking scores 1 even in a small class.
    """
    class_sizes: dict[object, int] = defaultdict(int)
    for value in values:
        class_sizes[value] += 1
    relevant = values[neighbours] == values[positions][:, None]
    hits_so_far = np.cumsum(relevant, axis=1)
    ranks = np.arange(1, neighbours.shape[1] + 1)
    precision_at = hits_so_far / ranks
    scored, per_class = [], defaultdict(list)
    for row, query in enumerate(positions.tolist()):
        value = values[query]
        removed = [p for p in groups.get(query, [query]) if values[p] == value]
        candidates = class_sizes[value] - len(removed)
        if value is None or candidates < 1:
            continue
        precision = float(precision_at[row, k - 1])
        average_precision = float((precision_at[row, :k] * relevant[row, :k]).sum() / min(k, candidates))
        scored.append(row)
        per_class[value].append((precision, average_precision))
    rows = np.array(scored, dtype=np.int64)
    classes = sorted((ClassScore(str(value), len(scores), float(np.mean([s[0] for s in scores])),
                                 float(np.mean([s[1] for s in scores]))) for value, scores in per_class.items()),
                     key=lambda c: (c.precision, c.value))
    ap = [s[1] for scores in per_class.values() for s in scores]
    return LabelScores(
        label=label, k=k, queries=len(rows), unscored=len(positions) - len(rows),
        precision=float(precision_at[rows, k - 1].mean()) if len(rows) else 0.0,
        precision_macro=float(np.mean([c.precision for c in classes])) if classes else 0.0,
        map=float(np.mean(ap)) if ap else 0.0,
        map_macro=float(np.mean([c.average_precision for c in classes])) if classes else 0.0,
        precision_curve=precision_at[rows].mean(axis=0).tolist() if len(rows) else [],
        classes=classes,
    )


def photo_recall(recommender, photos_dir: str | os.PathLike, depth: int = 100,
                 colour_weight: float | None = None) -> PhotoRecall:
    """Recall@1 and @5 of outside photos named `<product id>.<ext>` (e.g. the sample's queries_fullres/).

    Raises:
        FashionrecError: the folder holds no image files.
    """
    from fashionrec.imaging.formats import is_image_file

    photos = sorted(p for p in Path(photos_dir).iterdir() if is_image_file(p)) if Path(photos_dir).is_dir() else []
    if not photos:
        raise FashionrecError(f"no photos named <product id>.jpg in {photos_dir}")
    catalog = recommender.catalog
    ranks: dict[str, int | None] = {}
    for photo in photos:
        if photo.stem in catalog:
            found = recommender.by_image(photo, k=min(depth, len(catalog)), colour_weight=colour_weight)
            ids = [m.id for m in found.results]
            ranks[photo.stem] = ids.index(photo.stem) + 1 if photo.stem in ids else None
    scored = list(ranks.values())
    return PhotoRecall(
        photos=len(scored), not_in_catalog=len(photos) - len(scored),
        recall_at_1=sum(r == 1 for r in scored) / len(scored) if scored else 0.0,
        recall_at_5=sum(r is not None and r <= 5 for r in scored) / len(scored) if scored else 0.0,
        ranks=ranks,
    )
