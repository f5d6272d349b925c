"""An evaluation as a Markdown report with PNG plots a person would rather look at than read.

Needs matplotlib (`pip install 'fashionrec[report]'`), imported only here and only when a report is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fashionrec.catalog.catalog import Catalog
from fashionrec.config import load_settings
from fashionrec.errors import FashionrecError
from fashionrec.quality.evaluate import Evaluation, LabelScores
from fashionrec.recommend.query import ColourGain, colour_gain, colour_ranking
from fashionrec.search.block import top_neighbours

WORST_CLASSES = 20
EXAMPLE_QUERIES = 4
EXAMPLE_RESULTS = 5


def write_report(evaluation: Evaluation, catalog: Catalog, out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write `report.md` and its plots into `out_dir`; returns the Markdown file. The example queries rank with the
    colour weight the evaluation used.

    Raises:
        FashionrecError: matplotlib is not installed.
    """
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _precision_curve(plt, evaluation, out / "precision_at_k.png")
    first = evaluation.deduplicated[0]
    _worst_classes(plt, first, out / "worst_classes.png")
    _, gain = colour_gain(evaluation.colour_weight, load_settings(), catalog.has_colour,
                          products=len(catalog))
    _examples(plt, catalog, first.label, out / "examples.png", seed, gain)
    report = out / "report.md"
    report.write_text(_markdown(evaluation), encoding="utf-8")
    return report


def _pyplot():
    """matplotlib's pyplot on the file-only backend."""
    try:
        import matplotlib
    except ImportError:
        raise FashionrecError("a report needs matplotlib: pip install 'fashionrec[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _markdown(evaluation: Evaluation) -> str:
    """The report's text: the tables, then the plots."""
    k = evaluation.k
    lines = [
        f"# Recommendation quality: {evaluation.model}",
        "",
        f"Leave-one-out over {evaluation.queries} of {evaluation.products} products: each query's other products "
        f"are ranked, and a result counts as relevant when it shares the query's label. "
        f"{evaluation.duplicate_groups} groups of exact-duplicate images are in the catalog.",
        "",
        f"| label | queries | P@{k} | P@{k} macro | mAP@{k} | mAP@{k} macro | P@{k} without copies | "
        f"mAP@{k} without copies |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for plain, dedup in zip(evaluation.labels, evaluation.deduplicated):
        lines.append(f"| {plain.label} | {plain.queries} | {plain.precision:.4f} | {plain.precision_macro:.4f} | "
                     f"{plain.map:.4f} | {plain.map_macro:.4f} | {dedup.precision:.4f} | {dedup.map:.4f} |")
    if evaluation.photos:
        photos = evaluation.photos
        lines += ["", f"Outside photos of {photos.photos} catalog products: recall@1 {photos.recall_at_1:.2f}, "
                      f"recall@5 {photos.recall_at_5:.2f}."]
    first = evaluation.deduplicated[0]
    lines += [
        "",
        "## Precision at k", "", "![precision@k against k](precision_at_k.png)",
        "", f"## The {WORST_CLASSES} weakest {first.label} classes", "",
        f"![per-class precision@{k}](worst_classes.png)",
        "", "## Examples", "",
        f"Each row: a query product, then its {EXAMPLE_RESULTS} nearest (green title: same {first.label}).",
        "", "![queries and their results](examples.png)", "",
    ]
    return "\n".join(lines)


def _precision_curve(plt, evaluation: Evaluation, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for plain, dedup in zip(evaluation.labels, evaluation.deduplicated):
        ks = np.arange(1, len(plain.precision_curve) + 1)
        line = axes.plot(ks, plain.precision_curve, marker="o", markersize=3, label=plain.label)[0]
        axes.plot(ks, dedup.precision_curve, linestyle="--", color=line.get_color(), label=f"{plain.label}, no copies")
    axes.axvline(evaluation.k, color="grey", linewidth=0.8)
    axes.set(xlabel="k", ylabel="precision@k", ylim=(0, 1), title=f"{evaluation.model}: precision@k (leave-one-out)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _worst_classes(plt, scores: LabelScores, path: Path) -> None:
    worst = scores.classes[:WORST_CLASSES]
    figure, axes = plt.subplots(figsize=(7, 0.3 * max(len(worst), 4) + 1))
    axes.barh([f"{c.value} ({c.queries})" for c in worst], [c.precision for c in worst], color="#c0504d")
    axes.axvline(scores.precision, color="grey", linestyle="--", label=f"all queries: {scores.precision:.2f}")
    axes.invert_yaxis()
    axes.set(xlim=(0, 1), xlabel=f"precision@{scores.k}", title=f"weakest {scores.label} classes (queries)")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _examples(plt, catalog: Catalog, label: str, path: Path, seed: int, gain: ColourGain) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(len(catalog), size=min(EXAMPLE_QUERIES, len(catalog)), replace=False))
    depth = min(EXAMPLE_RESULTS, len(catalog) - 1)
    as_query, shortlist = colour_ranking(catalog, gain)
    neighbours = top_neighbours(catalog.vectors, queries, depth, as_query=as_query, shortlist=shortlist)
    figure, grid = plt.subplots(len(queries), depth + 1, figsize=(1.6 * (depth + 1), 2.3 * len(queries)),
                                squeeze=False)
    for row, query in enumerate(queries.tolist()):
        wanted = catalog.metadata_at(query).get(label)
        for column, position in enumerate([query, *neighbours[row].tolist()]):
            axes = grid[row][column]
            with Image.open(catalog.image_path_at(position)) as image:
                axes.imshow(image.convert("RGB"))
            value = catalog.metadata_at(position).get(label) or "?"
            colour = "black" if column == 0 else ("green" if value == wanted else "red")
            axes.set_title(("query: " if column == 0 else "") + value, fontsize=7, color=colour)
            axes.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
