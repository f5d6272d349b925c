"""What the commands print and write: tables, JSON, the reports of indexing, evaluation and tuning, and the
similar-all file. Kept apart from the handlers so that every user-visible text lives in one place."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fashionrec.errors import FashionrecError

NAME_WIDTH = 48  # product names longer than this are cut, at a word, in tables


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell, so a table reads in a terminal without a dependency."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def print_json(value: Any, ensure_ascii: bool = True) -> None:
    """JSON, indented, on stdout: what every --json prints."""
    print(json.dumps(value, indent=2, ensure_ascii=ensure_ascii))


def shorten(text: str, width: int) -> str:
    """`text` in at most `width` characters: cut after a whole word, with an ellipsis (mid-word only when the
    first word alone is too long)."""
    if len(text) <= width:
        return text
    kept = ""
    for word in text.split():
        longer = f"{kept} {word}" if kept else word
        if len(longer) + 1 > width:
            break
        kept = longer
    kept = kept.rstrip(",;:-/&") or text[: width - 1]
    return kept + "…"


def show(recommendations: Any, as_json: bool) -> int:
    """A `Recommendations` as a table (its notice on stderr) or as JSON; returns the exit code, 0."""
    if as_json:
        print_json(recommendations.to_dict(), ensure_ascii=False)
        return 0
    from fashionrec.recommend.answers import SIMILARITY_MEANING, percent

    if recommendations.notice:
        print(f"fashionrec: {recommendations.notice}", file=sys.stderr)
    print(f"model: {recommendations.model}, colour weight {recommendations.colour_weight:g}")
    # A photo of a person: one block per garment found, the chosen one first.
    regions = sorted(recommendations.regions, key=lambda r: r.kind != recommendations.region)
    blocks = [(f"{r.kind} at {list(r.box)} (score {r.score:.2f})", r.results, r.notice) for r in regions] or \
        [(None, recommendations.results, None)]
    shown_any = False
    for title, matches, notice in blocks:
        if title:
            print(f"\n{title}")
        if notice and title and notice != recommendations.notice:
            print(f"fashionrec: {title.split(' at ')[0]}: {notice}", file=sys.stderr)  # the kind, then its notice
        rows = [(str(rank), m.id, percent(m.similarity), m.metadata.get("articleType") or "",
                 m.metadata.get("baseColour") or "", " ".join(c["rgb"] for c in m.colours),
                 shorten(m.metadata.get("productDisplayName") or "", NAME_WIDTH), m.image)
                for rank, m in enumerate(matches, start=1)]
        if rows:
            print_table(("#", "id", "similarity", "articleType", "colour", "dominant colours", "name", "image"), rows)
            shown_any = True
    if shown_any:
        print(f"({SIMILARITY_MEANING})")
    return 0


def write_rows(path: Path, rows: list[tuple[str, int, str, float]]) -> None:
    """(product_id, rank, similar_id, similarity) rows as CSV or Parquet (the similarity every face shows),
    atomically."""
    import os

    header = ("product_id", "rank", "similar_id", "similarity")

    rows = [(product_id, rank, other, float(similarity)) for product_id, rank, other, similarity in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise FashionrecError("writing Parquet needs pyarrow (pip install pyarrow), or use a .csv name") from None
        columns = list(zip(*rows)) if rows else [[], [], [], []]
        pq.write_table(pa.table({name: list(values) for name, values in zip(header, columns)}), partial)
    else:
        import csv

        with partial.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows((p, r, s, f"{d:.6f}") for p, r, s, d in rows)
    os.replace(partial, path)


def report_dict(report: Any) -> dict[str, Any]:
    """An `IndexReport` as the JSON `fashionrec index --json` prints (stable keys, rounded timings)."""
    return {
        "catalog": str(report.catalog_dir), "model": report.model, "model_id": report.model_id,
        "images_found": report.images_found, "embedded": report.embedded, "unchanged": report.unchanged,
        "removed": report.removed, "gone_kept": report.gone_kept, "withdrawn": report.withdrawn,
        "products": report.products,
        "engine": report.engine,
        "outdated": report.outdated, "coloured": report.coloured,
        "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
        "images_without_metadata": report.images_without_metadata,
        "metadata_without_image": report.metadata_without_image,
        "seconds": round(report.seconds, 3), "images_per_second": round(report.images_per_second, 2),
    }


def print_index_report(report: Any) -> None:
    """An `IndexReport` in sentences: what was embedded, and every surprise (dropped vectors, refit, kept, skipped)."""
    where = "" if report.engine == "local" else f" on {report.engine}"
    if report.outdated:
        print(f"The catalog held {report.outdated} products embedded by an older build of {report.model}; "
              "their vectors were dropped and the images in this folder embedded again.")
    print(f"Indexed {report.embedded} images into {report.catalog_dir} with {report.model}{where} "
          f"({report.images_per_second:.1f} images/s); {report.unchanged} unchanged, {report.removed} removed; "
          f"the catalog has {report.products} products.")
    if report.coloured:
        print(f"Computed the colour of {report.coloured} products indexed before it (from their files; the model "
              "was not run for them).")
    if report.space is not None and report.space.refitted:
        print(f"The search space was fitted again ({report.space.reason}): every product's search vector changed, "
              "so the next fashionrec push sends them all" + (", and the tuning is dropped (tune again)."
                                                             if report.space.tuning_dropped else "."))
    if report.withdrawn:
        print(f"Left out {report.withdrawn} products removed with fashionrec remove or DELETE; index with --restore "
              "to bring them back.")
    if report.gone_kept:
        print(f"Kept {report.gone_kept} products of this folder whose files are gone; index it with --prune to "
              "remove them.")
    if report.images_without_metadata is not None:
        print(f"Metadata: {report.images_without_metadata} images without a row, "
              f"{report.metadata_without_image} rows without an image.")
    if report.skipped:
        print(f"Skipped {len(report.skipped)} files:")
        for skipped in report.skipped:
            print(f"  {skipped.path}: {skipped.reason}")


def print_evaluation(result: Any, asked: float) -> None:
    """An evaluation as a table by label (all results, then without exact copies), and what was not scored."""
    k = result.k
    print(f"{result.model}, colour weight {asked:g}: leave-one-out over {result.queries} of {result.products} products "
          f"({result.duplicate_groups} groups of exact-duplicate images)")
    rows = [(s.label, str(s.queries), f"{s.precision:.4f}", f"{s.precision_macro:.4f}", f"{s.map:.4f}",
             f"{s.map_macro:.4f}", f"{d.precision:.4f}", f"{d.map:.4f}")
            for s, d in zip(result.labels, result.deduplicated)]
    print_table(("label", "queries", f"P@{k}", f"P@{k} macro", f"mAP@{k}", f"mAP@{k} macro",
                 f"P@{k} no copies", f"mAP@{k} no copies"), rows)
    for s in result.labels:
        if s.unscored:
            verb = "is" if s.unscored == 1 else "are"
            print(f"{s.unscored} of the {result.queries} queries {verb} not scored for {s.label}: they have no value, "
                  "or no other product shares it")
    if result.photos:
        photos = result.photos
        print(f"Photos of {photos.photos} catalog products ({photos.not_in_catalog} of others skipped): "
              f"recall@1 {photos.recall_at_1:.2f}, recall@5 {photos.recall_at_5:.2f}")


def tune_dict(report: Any, saved: bool) -> dict[str, Any]:
    """A tuning report as the JSON `fashionrec tune --json` prints (held-out figures before and after)."""
    label, look = report.label, report.look_label
    return {"label": label, "look_label": look, "k": report.k, "queries": report.held_out,
            "held_out": {"untuned": {label: report.before[0], look: report.before[1]},
                         "tuned": {label: report.after[0], look: report.after[1]}},
            "weights": report.weights, "kept": report.kept, "saved": saved}


def print_tuning(report: Any, kept: bool, dry_run: bool) -> None:
    """Every weight tried, held out, and the verdict: saved, would be saved (dry run), or nothing kept."""
    k = report.k
    print(f"Held-out products as queries: {report.held_out} (the projections are fitted on the others).")
    rows = [("none", "-", f"{report.before[0]:.4f}", f"{report.before[1]:.4f}")]
    rows += [(f"{w.get('lda', 0):g}", f"{w.get('head', 0):g}", f"{a:.4f}", f"{b:.4f}") for w, a, b in report.tried]
    print_table(("lda weight", "head weight", f"{report.label} P@{k}", f"{report.look_label} P@{k}"), rows)
    if not kept:
        print(f"No weights raised {report.label} without costing {report.look_label} more than 0.01: nothing saved.")
        return
    verdict = "would be saved (dry run)" if dry_run else "saved with the catalog"
    chosen = ", ".join(f"{name} {weight:g}" for name, weight in report.weights.items())
    print(f"Weights {chosen} {verdict}: {report.label} P@{k} {report.before[0]:.4f} -> {report.after[0]:.4f}, "
          f"{report.look_label} P@{k} {report.before[1]:.4f} -> {report.after[1]:.4f} (held out).")


def _whitening_rule(whitening: Any) -> str | None:
    """How the catalog's whitening was fitted: the shrinkage rule, or an older one that the next index run (or
    `fashionrec refit`) replaces (its answers were not measured with today's colour weights and near-copy bound)."""
    if whitening is None:
        return None
    if whitening.shrinkage:
        return f"shrinkage {whitening.shrinkage:g}"
    return "an older rule (full whitening): run fashionrec refit or fashionrec index to fit it again"


def catalog_facts(catalog: Any, refit_drift: float) -> dict[str, Any]:
    """What `fashionrec info` shows of a `Catalog`: its size, model, search space, colour, drift and sources."""
    return {"catalog": str(catalog.catalog_dir), "products": len(catalog), "model": catalog.model_name,
            "model_id": catalog.model_id, "dim": catalog.dim,
            "whitened_to": catalog.whitening.dim if catalog.whitening else None,
            "whitening_rule": _whitening_rule(catalog.whitening),
            "tuned_for": catalog.tuning.describe() if catalog.tuning else None,
            "generation": catalog.generation,
            "colour": (f"{len(catalog) - catalog.colour_missing} of {len(catalog)} products ({catalog.colour_dim}-d)"
                       if catalog.has_colour else "none yet: run fashionrec index to compute it"),
            "drift": None if catalog.drift is None else round(catalog.drift, 4),
            "refit_at_drift": refit_drift,
            "images_dirs": [str(folder) for folder in catalog.folders],
            "metadata_columns": catalog.columns, "skipped_files": len(catalog.skipped)}


def print_facts(facts: dict[str, Any]) -> None:
    """One `key: value` line per fact, keys right-aligned, lists joined with commas."""
    for key, value in facts.items():
        print(f"{key:>17}: {', '.join(value) if isinstance(value, list) else value}")


def print_demo(result: Any) -> None:
    """The demo's catalog, and how its real photos ranked their own product (marked *)."""
    report = result.report
    print(f"Catalog {result.catalog_dir}: {report.products} products ({report.model}); "
          + (f"{report.embedded} embedded now at {report.images_per_second:.1f} images/s, " if report.embedded
             else "nothing to embed, ") + f"{report.unchanged} unchanged.")
    print(f"\nReal full-resolution photos -> top {result.k} (the photo's own product marked *):")
    rows = [(q.product_id, str(q.rank or "-"),
             " ".join(f"*{i}" if i == q.product_id else i for i in q.top_ids)) for q in result.queries]
    print_table(("photo of", "rank", f"top {result.k}"), rows)
    in_catalog = sum(q.indexed for q in result.queries)
    print(f"\n{result.found} of {in_catalog} photos of indexed products found their product in the top {result.k}.")


def print_demo_next_steps(catalog_dir: Path, default: bool) -> None:
    """What to run next on the demo's catalog (no --catalog needed when it is the default one)."""
    option = "" if default else f" --catalog {catalog_dir}"
    where = ("; every command uses it when given no --catalog" if default else "")
    print(f"The catalog is {catalog_dir}{where}:\n"
          f"  fashionrec app{option}                      the web app, at http://localhost:8501\n"
          f"  fashionrec serve{option}                    the REST API, at http://127.0.0.1:8000 (try it at /docs)\n"
          f"  fashionrec recommend PHOTO.jpg{option}      products that look like a photo")


def push_dict(report: Any) -> dict[str, Any]:
    """A Milvus push report as the JSON `fashionrec push --json` prints."""
    return {"collection": report.target.collection, "uri": report.target.uri, "index": report.index_type,
            "added": report.added, "updated": report.updated, "removed": report.removed,
            "unchanged": report.unchanged, "products": report.products, "seconds": round(report.seconds, 3)}


def print_push(report: Any, address: str) -> None:
    """A Milvus push in one sentence, ending with the --search option that queries it."""
    print(f"Pushed to {report.target.collection!r} at {report.target.uri} ({report.index_type}): {report.added} added, "
          f"{report.updated} updated, {report.removed} removed, {report.unchanged} unchanged; "
          f"{report.products} products, {report.seconds:.1f} s. Search it with --search {address}")
