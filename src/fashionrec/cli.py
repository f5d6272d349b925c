"""The `fashionrec` command: a thin face over `index_images`, `Catalog` and `Recommender`.

Every user error (missing file, unknown id, wrong model, bad image) is a `FashionrecError`, printed as
one line on stderr with exit code 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from fashionrec.config import COLOUR_WEIGHT, load_settings
from fashionrec.errors import FashionrecError

EXIT_USAGE = 2
CATALOG_HELP = ("catalog folder (default: $FASHIONREC_CATALOG, else the demo catalog fashionrec demo built, in the "
                "cache)")
EXIT_INTERRUPTED = 130
NAME_WIDTH = 48  # product names longer than this are cut, at a word, in tables


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        if getattr(args, "catalog", "") is None and args.run is not _demo:
            args.catalog = default_catalog()
        return args.run(args)
    except FashionrecError as exc:
        print(f"fashionrec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fashionrec: interrupted; everything committed so far is kept (rerun to resume)", file=sys.stderr)
        return EXIT_INTERRUPTED


def default_catalog() -> Path:
    """The catalog a command without --catalog uses: $FASHIONREC_CATALOG, else the demo's (if it was built).

    Raises:
        FashionrecError: neither exists; the message says how to make one.
    """
    from fashionrec.demo import demo_catalog_dir

    settings = load_settings()
    if settings.catalog_dir is not None:
        return settings.catalog_dir
    demo = demo_catalog_dir(settings)
    if not (demo / "catalog.sqlite").is_file():
        raise FashionrecError(f"no --catalog given, FASHIONREC_CATALOG is not set, and there is no demo catalog at "
                              f"{demo} yet; run fashionrec demo, or pass --catalog CATALOG_DIR")
    return demo


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fashionrec", description="Recommend fashion products by how they look.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (model builds, downloads)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    models = commands.add_parser("models", help="list the backbones and whether their weights are available")
    models.add_argument("action", nargs="?", choices=["list"], default="list")
    models.set_defaults(run=_models)

    index = commands.add_parser("index", help="index a folder of product images into a catalog (incremental)")
    index.add_argument("images_dir", type=Path, help="folder of images named <product id>.jpg")
    index.add_argument("--catalog", type=Path, required=True, help="catalog folder (created if missing)")
    index.add_argument("--metadata", type=Path, help="styles.csv-like file with an id column")
    index.add_argument("--model", help="backbone for a new catalog (default: efficientnet-lite2)")
    index.add_argument("--weights", type=Path, help="weights file to use (resnet50: the Keras .h5)")
    index.add_argument("--batch-size", type=int, help="images per inference call (default 16)")
    index.add_argument("--limit", type=int, help="index at most the first N images")
    index.add_argument("--prune", action="store_true",
                       help="remove the products of this folder whose files are gone (as rsync --delete; without it "
                            "they are kept and counted)")
    index.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="what reads and embeds: this process (default) or Ray Data (same catalog)")
    index.add_argument("--ray-address", metavar="ADDR",
                       help="with --engine ray: the cluster to use (default: start a local Ray for the run)")
    index.add_argument("--workers", type=int, metavar="N",
                       help="with --engine ray: embedding actors, one ONNX session each (default: one per CPU)")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.add_argument("--json", action="store_true", help="print the report as JSON")
    index.set_defaults(run=_index)

    for name, help_text, target in (
        ("recommend", "products that look like a photo", ("image", Path, "the photo (jpg, png, webp, ...)")),
        ("similar", "more like this catalog product (never the product itself)", ("product_id", str, "a product id")),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(target[0], type=target[1], help=target[2])
        sub.add_argument("--catalog", type=Path, help=CATALOG_HELP)
        sub.add_argument("-k", type=int, default=5,
                         help="how many products (default 5; at most FASHIONREC_MAX_K, default 100)")
        sub.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                         help="metadata filter, repeatable (same column: any of; different columns: all of)")
        _add_index_option(sub)
        sub.add_argument("--show-duplicates", action="store_true",
                         help="show every copy of a duplicate image (default: one product per group)")
        _add_colour_option(sub)
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(run=_recommend if name == "recommend" else _similar)

    table = commands.add_parser("similar-all", help="the k most similar products of every product, to a file")
    table.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    table.add_argument("-k", type=int, default=10, help="how many per product (default 10)")
    table.add_argument("--out", type=Path, required=True, help="FILE.csv or FILE.parquet")
    table.add_argument("--show-duplicates", action="store_true", help="keep every copy of a duplicate image")
    _add_colour_option(table)
    table.set_defaults(run=_similar_all)

    info = commands.add_parser("info", help="what a catalog holds")
    info.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=_info)

    evaluate = commands.add_parser("evaluate", help="leave-one-out precision@k and mAP@k by label")
    evaluate.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    evaluate.add_argument("--label", action="append", dest="labels", metavar="COLUMN",
                          help="metadata column that makes a result relevant, repeatable (default: articleType)")
    evaluate.add_argument("-k", type=int, default=5, help="cut-off (default 5)")
    evaluate.add_argument("--queries", type=int, help="score a seeded sample of N products (default: all)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    evaluate.add_argument("--queries-dir", type=Path, help="outside photos named <product id>.jpg: recall@1/@5")
    _add_colour_option(evaluate)
    evaluate.add_argument("--report", type=Path, metavar="OUT_DIR", help="write a Markdown report with plots here")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(run=_evaluate)

    tune = commands.add_parser("tune", help="train a small projection on a label; kept only if it helps")
    tune.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    tune.add_argument("--label", default="articleType", help="the label to emphasise (default articleType)")
    tune.add_argument("--look-label", default="baseColour", help="the label that must not suffer (default baseColour)")
    tune.add_argument("-k", type=int, default=5, help="cut-off of the precision compared (default 5)")
    tune.add_argument("--seed", type=int, default=0, help="seed of the held-out split (default 0)")
    tune.add_argument("--dry-run", action="store_true", help="measure only; save nothing")
    tune.add_argument("--reset", action="store_true", help="remove the catalog's tuning, and stop")
    tune.add_argument("--json", action="store_true", help="print the held-out figures as JSON")
    tune.set_defaults(run=_tune)

    add = commands.add_parser("add", help="add or replace one product (its photo is copied into the catalog)")
    add.add_argument("product_id", help="the product's id (letters, digits, '.', '_', '-')")
    add.add_argument("image", type=Path, help="its photo")
    add.add_argument("--metadata", help='its metadata as a JSON object, e.g. \'{"gender": "Men"}\' (omitted: a replaced '
                                        "product keeps its metadata)")
    add.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    add.add_argument("--json", action="store_true", help="print the stored product as JSON")
    add.set_defaults(run=_add)

    remove = commands.add_parser("remove", help="remove products by id")
    remove.add_argument("product_ids", nargs="+", metavar="PRODUCT_ID")
    remove.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    remove.set_defaults(run=_remove)

    refit = commands.add_parser("refit", help="fit the catalog's search space (its whitening) again, on its products "
                                              "as they are now")
    refit.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    refit.set_defaults(run=_refit)

    app = commands.add_parser("app", help="the web app: upload a photo or pick a product, see similar products")
    app.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    _add_server_options(app, port=8501)
    _add_index_option(app)
    app.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    app.set_defaults(run=_app)

    push = commands.add_parser("push", help="copy a catalog's vectors and metadata into Milvus (only what changed)")
    push.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    push.add_argument("--to", required=True, metavar="ADDRESS",
                      help="milvus://HOST:19530/COLLECTION (milvuss:// for TLS; credentials from "
                           "FASHIONREC_MILVUS_TOKEN or FASHIONREC_MILVUS_TOKEN_FILE, never in the address), or a "
                           "Milvus Lite file: milvus-lite:///path/catalog.db")
    push.add_argument("--index", default="FLAT", type=str.upper, choices=["FLAT", "HNSW", "IVF_FLAT"],
                      help="vector index of a new collection: FLAT (exact, the default), HNSW or IVF_FLAT")
    push.add_argument("--recreate", action="store_true", help="drop the collection and push everything again")
    push.add_argument("--json", action="store_true", help="print the report as JSON")
    push.set_defaults(run=_push)

    serve = commands.add_parser("serve", help="the JSON REST API (docs at /docs, schema at /openapi.json)")
    serve.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    _add_server_options(serve, port=8000)
    _add_index_option(serve)
    serve.set_defaults(run=_serve)

    demo = commands.add_parser("demo", help="index the sample catalog, check its real photos, open the web app")
    demo.add_argument("--data", type=Path, help="the fashion-product-images folder (default: ../shared/data/...)")
    demo.add_argument("--catalog", type=Path, help="catalog folder (default: the demo catalog, which every other "
                                                   "command uses when given no --catalog)")
    demo.add_argument("--limit", type=int, help="index at most the first N images")
    demo.add_argument("-k", type=int, default=5)
    _add_server_options(demo, port=8501)
    demo.add_argument("--no-app", action="store_true", help="stop after the check; do not start the web app")
    demo.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    demo.set_defaults(run=_demo)
    return parser


def _add_index_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--search", "--index", dest="search", metavar="SEARCH",
                        help="exact, hnsw (or faiss: FAISS HNSW), auto (hnsw for large catalogs; the default), or a "
                             "Milvus collection the catalog was pushed to: milvus://HOST:19530/COLLECTION "
                             "(milvuss:// for TLS) or "
                             "milvus-lite:///path/catalog.db")


def _add_server_options(parser: argparse.ArgumentParser, port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=port, help=f"port (default {port})")


def _models(args: argparse.Namespace) -> int:
    from fashionrec.models import list_models
    from fashionrec.models.weights import weights_status

    settings = load_settings()
    rows = [(s.name + (" (default)" if s.name == settings.default_model else ""), str(s.dim),
             f"{s.input_size}x{s.input_size}", s.pooling, weights_status(s, settings)) for s in list_models()]
    _print_table(("model", "dim", "input", "pooling", "weights"), rows)
    return 0


def _index(args: argparse.Namespace) -> int:
    from fashionrec.index.run import index_images

    report = index_images(args.images_dir, args.catalog, metadata=args.metadata, model=args.model,
                          weights=args.weights, batch_size=args.batch_size, limit=args.limit, prune=args.prune,
                          progress=not args.no_progress and not args.json, engine=_engine(args))
    if args.json:
        print(json.dumps(_report_dict(report), indent=2))
        return 0
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
    return 0


def _engine(args: argparse.Namespace):
    """The indexing engine the flags ask for (None: the default, in this process)."""
    if args.engine == "local":
        if args.ray_address or args.workers is not None:
            raise FashionrecError("--ray-address and --workers go with --engine ray")
        return None
    if args.workers is not None and args.workers < 1:
        raise FashionrecError(f"--workers must be at least 1, got {args.workers}")
    from fashionrec.scale.ray_engine import RayEngine

    return RayEngine(address=args.ray_address, workers=args.workers)


def _report_dict(report) -> dict:
    return {
        "catalog": str(report.catalog_dir), "model": report.model, "model_id": report.model_id,
        "images_found": report.images_found, "embedded": report.embedded, "unchanged": report.unchanged,
        "removed": report.removed, "gone_kept": report.gone_kept, "products": report.products,
        "engine": report.engine,
        "outdated": report.outdated, "coloured": report.coloured,
        "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
        "images_without_metadata": report.images_without_metadata,
        "metadata_without_image": report.metadata_without_image,
        "seconds": round(report.seconds, 3), "images_per_second": round(report.images_per_second, 2),
    }


def _recommend(args: argparse.Namespace) -> int:
    from fashionrec.imaging.decode import read_image_bytes

    _check_k(args.k)
    image = read_image_bytes(args.image)  # a missing file fails before the model loads
    recommender, filters = _recommender(args)
    return _show(recommender.by_image(image, k=args.k, where=filters, show_duplicates=args.show_duplicates,
                                      colour_weight=args.colour_weight), args.json)


def _similar(args: argparse.Namespace) -> int:
    _check_k(args.k)
    recommender, filters = _recommender(args, product_id=args.product_id)
    return _show(recommender.by_id(args.product_id, k=args.k, where=filters, show_duplicates=args.show_duplicates,
                                   colour_weight=args.colour_weight), args.json)


def _colour_weight(text: str) -> float:
    """--colour-weight: a number from 0 to 1."""
    try:
        weight = float(text)
    except ValueError:
        weight = -1.0
    if not 0 <= weight <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 (shape only) to 1 (colour counts most), got {text!r}")
    return weight


def _add_colour_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--colour-weight", "--color-weight", type=_colour_weight, metavar="W",
                        help=f"how much the product's colour counts beside its shape, 0 (shape only) to 1 (the "
                             f"strongest colour setting); default {COLOUR_WEIGHT:g}, or FASHIONREC_COLOUR_WEIGHT")


def _check_k(k: int) -> None:
    """The API's bound on k, for the CLI too (before anything is loaded)."""
    limit = load_settings().max_k
    if not 1 <= k <= limit:
        raise FashionrecError(f"-k must be at least 1 and at most {limit} (the limit is set by FASHIONREC_MAX_K), "
                              f"got {k}")


def _recommender(args: argparse.Namespace, product_id: str | None = None):
    from fashionrec.catalog.catalog import Catalog
    from fashionrec.recommend.query import parse_filters
    from fashionrec.recommend.recommender import Recommender

    filters = parse_filters(args.where)
    catalog = Catalog.open(args.catalog)
    if product_id is not None:
        catalog.position(product_id)  # an unknown id fails before the model loads
    return Recommender(catalog, search=args.search), filters


def _show(recommendations, as_json: bool) -> int:
    if as_json:
        print(json.dumps(recommendations.to_dict(), indent=2, ensure_ascii=False))
        return 0
    if recommendations.notice:
        print(f"fashionrec: {recommendations.notice}", file=sys.stderr)
    rows = [(str(rank), m.id, f"{m.similarity:.1%}", m.metadata.get("articleType") or "",
             m.metadata.get("baseColour") or "", " ".join(c["rgb"] for c in m.colours),
             shorten(m.metadata.get("productDisplayName") or "", NAME_WIDTH), m.image)
            for rank, m in enumerate(recommendations.results, start=1)]
    print(f"model: {recommendations.model}, colour weight {recommendations.colour_weight:g}")
    if rows:
        from fashionrec.recommend.answers import SIMILARITY_MEANING

        _print_table(("#", "id", "similarity", "articleType", "colour", "dominant colours", "name", "image"), rows)
        print(f"({SIMILARITY_MEANING})")
    return 0


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


def _similar_all(args: argparse.Namespace) -> int:
    import time

    from fashionrec.catalog.catalog import Catalog
    from fashionrec.recommend.similar_all import similar_all

    suffix = args.out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise FashionrecError(f"--out must end in .csv or .parquet, got {args.out.name}")
    started = time.perf_counter()
    table = similar_all(Catalog.open(args.catalog), k=args.k, show_duplicates=args.show_duplicates,
                        colour_weight=args.colour_weight)
    searched = time.perf_counter() - started
    _write_rows(args.out, list(table.rows()))
    print(f"Wrote the {args.k} most similar products of each of {len(table.ids)} products to {args.out} "
          f"(search {searched:.1f} s).")
    return 0


def _write_rows(path: Path, rows: list[tuple[str, int, str, float]]) -> None:
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


def _info(args: argparse.Namespace) -> int:
    from fashionrec.catalog.catalog import Catalog

    catalog = Catalog.open(args.catalog)
    facts = {"catalog": str(catalog.catalog_dir), "products": len(catalog), "model": catalog.model_name,
             "model_id": catalog.model_id, "dim": catalog.dim,
             "whitened_to": catalog.whitening.dim if catalog.whitening else None,
             "tuned_for": catalog.tuning.describe() if catalog.tuning else None,
             "generation": catalog.generation,
             "colour": (f"{len(catalog) - catalog.colour_missing} of {len(catalog)} products ({catalog.colour_dim}-d)"
                        if catalog.has_colour else "none yet: run fashionrec index to compute it"),
             "drift": None if catalog.drift is None else round(catalog.drift, 4),
             "refit_at_drift": load_settings().refit_drift,
             "images_dirs": [str(folder) for folder in catalog.folders],
             "metadata_columns": catalog.columns, "skipped_files": len(catalog.skipped)}
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        for key, value in facts.items():
            print(f"{key:>17}: {', '.join(value) if isinstance(value, list) else value}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from fashionrec.demo import run_demo

    result = run_demo(data_dir=args.data, catalog_dir=args.catalog, limit=args.limit, k=args.k)
    report = result.report
    print(f"Catalog {result.catalog_dir}: {report.products} products ({report.model}); "
          + (f"{report.embedded} embedded now at {report.images_per_second:.1f} images/s, " if report.embedded
             else "nothing to embed, ") + f"{report.unchanged} unchanged.")
    print(f"\nReal full-resolution photos -> top {result.k} (the photo's own product marked *):")
    rows = [(q.product_id, str(q.rank or "-"),
             " ".join(f"*{i}" if i == q.product_id else i for i in q.top_ids)) for q in result.queries]
    _print_table(("photo of", "rank", f"top {result.k}"), rows)
    in_catalog = sum(q.indexed for q in result.queries)
    print(f"\n{result.found} of {in_catalog} photos of indexed products found their product in the top {result.k}.")
    if args.no_app:
        from fashionrec.demo import demo_catalog_dir

        default = result.catalog_dir.resolve() == demo_catalog_dir(load_settings()).resolve()
        option = "" if default else f" --catalog {result.catalog_dir}"
        where = ("; every command uses it when given no --catalog" if default else "")
        print(f"The catalog is {result.catalog_dir}{where}:\n"
              f"  fashionrec app{option}                      the web app, at http://localhost:8501\n"
              f"  fashionrec serve{option}                    the REST API, at http://127.0.0.1:8000 (try it at /docs)\n"
              f"  fashionrec recommend PHOTO.jpg{option}      products that look like a photo")
        return 0
    return _run_web_app(result.catalog_dir, args.host, args.port, open_browser=not args.no_browser,
                        examples_dir=result.examples_dir)


def _evaluate(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    from fashionrec.catalog.catalog import Catalog
    from fashionrec.quality.evaluate import DEFAULT_LABELS, evaluate, photo_recall

    catalog = Catalog.open(args.catalog)
    result = evaluate(catalog, args.labels or DEFAULT_LABELS, k=args.k, queries=args.queries, seed=args.seed,
                      colour_weight=args.colour_weight)
    asked = result.colour_weight
    if args.queries_dir:
        from fashionrec.recommend.recommender import Recommender

        result = replace(result, photos=photo_recall(Recommender(catalog), args.queries_dir, colour_weight=asked))
    if args.report:
        from fashionrec.quality.report import write_report

        report = write_report(result, catalog, args.report, seed=args.seed)
        print(f"Report: {report}", file=sys.stderr)
    if args.json:
        print(json.dumps(asdict(result), indent=2))
        return 0
    k = result.k
    print(f"{result.model}, colour weight {asked:g}: leave-one-out over {result.queries} of {result.products} products "
          f"({result.duplicate_groups} groups of exact-duplicate images)")
    rows = [(s.label, str(s.queries), f"{s.precision:.4f}", f"{s.precision_macro:.4f}", f"{s.map:.4f}",
             f"{s.map_macro:.4f}", f"{d.precision:.4f}", f"{d.map:.4f}")
            for s, d in zip(result.labels, result.deduplicated)]
    _print_table(("label", "queries", f"P@{k}", f"P@{k} macro", f"mAP@{k}", f"mAP@{k} macro",
                  f"P@{k} no copies", f"mAP@{k} no copies"), rows)
    for s in result.labels:
        if s.unscored:
            print(f"{s.unscored} of the {result.queries} queries are not scored for {s.label}: they have no value, "
                  "or no other product shares it")
    if result.photos:
        photos = result.photos
        print(f"Photos of {photos.photos} catalog products ({photos.not_in_catalog} of others skipped): "
              f"recall@1 {photos.recall_at_1:.2f}, recall@5 {photos.recall_at_5:.2f}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from fashionrec.catalog.catalog import Catalog
    from fashionrec.quality.tune import remove_tuning, save_tuning, tune

    catalog = Catalog.open(args.catalog)
    if args.reset:
        remove_tuning(catalog)
        print(f"The catalog {catalog.catalog_dir} is no longer tuned.")
        return 0
    report, tuning = tune(catalog, args.label, args.look_label, k=args.k, seed=args.seed)
    if tuning is not None and not args.dry_run:
        save_tuning(catalog, tuning)
    if args.json:
        label, look = report.label, report.look_label
        print(json.dumps({"label": label, "look_label": look, "k": report.k, "queries": report.held_out,
                          "held_out": {"untuned": {label: report.before[0], look: report.before[1]},
                                       "tuned": {label: report.after[0], look: report.after[1]}},
                          "weights": report.weights, "kept": report.kept,
                          "saved": tuning is not None and not args.dry_run}, indent=2))
        return 0
    k = report.k
    print(f"Held-out products as queries: {report.held_out} (the projections are fitted on the others).")
    rows = [("none", "-", f"{report.before[0]:.4f}", f"{report.before[1]:.4f}")]
    rows += [(f"{w.get('lda', 0):g}", f"{w.get('head', 0):g}", f"{a:.4f}", f"{b:.4f}") for w, a, b in report.tried]
    _print_table(("lda weight", "head weight", f"{report.label} P@{k}", f"{report.look_label} P@{k}"), rows)
    if tuning is None:
        print(f"No weights raised {report.label} without costing {report.look_label} more than 0.01: nothing saved.")
        return 0
    verdict = "would be saved (dry run)" if args.dry_run else "saved with the catalog"
    chosen = ", ".join(f"{name} {weight:g}" for name, weight in report.weights.items())
    print(f"Weights {chosen} {verdict}: {report.label} P@{k} {report.before[0]:.4f} -> {report.after[0]:.4f}, "
          f"{report.look_label} P@{k} {report.before[1]:.4f} -> {report.after[1]:.4f} (held out).")
    return 0


def _add(args: argparse.Namespace) -> int:
    from fashionrec.catalog.catalog import Catalog
    from fashionrec.imaging.decode import read_image_bytes
    from fashionrec.index.write import ProductWrite, put_products
    from fashionrec.models.embed import load_model

    metadata = None
    if args.metadata is not None:
        try:
            metadata = json.loads(args.metadata)
        except json.JSONDecodeError as exc:
            raise FashionrecError(f"--metadata must be a JSON object, e.g. '{{\"gender\": \"Men\"}}': {exc.msg}") from None
    image = read_image_bytes(args.image)  # a missing file fails before the model loads
    catalog = Catalog.open(args.catalog)
    written = put_products(args.catalog, [ProductWrite(args.product_id, image, metadata)],
                           load_model(catalog.model_name, catalog.weights_path))[0]
    if args.json:
        print(json.dumps({"id": written.id, "created": written.created, "image": str(written.image),
                          "metadata": written.metadata}, indent=2, ensure_ascii=False))
    else:
        print(f"{'Added' if written.created else 'Replaced'} product {written.id} in {catalog.catalog_dir} "
              f"(image {written.image}).")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from fashionrec.index.write import remove_products

    removed = remove_products(args.catalog, args.product_ids)
    print(f"Removed {removed} product{'s' if removed != 1 else ''} from {args.catalog}.")
    return 0


def _refit(args: argparse.Namespace) -> int:
    from fashionrec.catalog.catalog import Catalog
    from fashionrec.catalog.space import refit

    update = refit(args.catalog)
    after = Catalog.open(args.catalog)
    if not update.refitted:
        print(f"The catalog {after.catalog_dir} keeps its search space: {update.reason}.")
        return 0
    print(f"The catalog {after.catalog_dir} ({len(after)} products) has a new search space, whitened to "
          f"{after.whitening.dim} dimensions: every product's search vector changed, so the next fashionrec push "
          "sends them all.")
    if update.tuning_dropped:
        print("Its tuning was fitted in the old space and is dropped: run fashionrec tune again.")
    return 0


def _app(args: argparse.Namespace) -> int:
    from fashionrec.catalog.catalog import Catalog
    from fashionrec.recommend.recommender import open_search

    catalog = Catalog.open(args.catalog)  # a wrong folder fails here, in one line, not inside the server
    if args.search:
        backend = open_search(catalog, args.search)  # so does a search the catalog cannot use
        getattr(backend, "close", lambda: None)()  # the server opens its own (a Milvus Lite file takes one)
    return _run_web_app(args.catalog, args.host, args.port, open_browser=not args.no_browser, search=args.search)


def _run_web_app(catalog_dir: Path, host: str, port: int, open_browser: bool, examples_dir: Path | None = None,
                 search: str | None = None) -> int:
    import webbrowser

    from fashionrec.launch import can_open_browser, require_port_free, start_web_app, stop, wait_until_up

    _require_extra("streamlit", "the web app")
    require_port_free(host, port)
    server = start_web_app(catalog_dir, host, port, examples_dir=examples_dir, search=search)
    url = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0', '::') else host}:{port}"
    try:
        wait_until_up(url, server, timeout=120)
        print(f"\nThe web app is up: {url}   (Ctrl+C to stop)", flush=True)
        if open_browser and can_open_browser():
            webbrowser.open(url)
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop(server)


def _push(args: argparse.Namespace) -> int:
    from fashionrec.catalog.catalog import Catalog
    from fashionrec.scale.milvus import push

    report = push(Catalog.open(args.catalog), args.to, index=args.index, recreate=args.recreate)
    counts = {"added": report.added, "updated": report.updated, "removed": report.removed,
              "unchanged": report.unchanged, "products": report.products}
    if args.json:
        print(json.dumps({"collection": report.target.collection, "uri": report.target.uri, "index": report.index,
                          **counts, "seconds": round(report.seconds, 3)}, indent=2))
        return 0
    print(f"Pushed to {report.target.collection!r} at {report.target.uri} ({report.index}): {report.added} added, "
          f"{report.updated} updated, {report.removed} removed, {report.unchanged} unchanged; "
          f"{report.products} products, {report.seconds:.1f} s. Search it with --search {args.to}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    _require_extra("fastapi", "the REST API")
    _require_extra("uvicorn", "the REST API")
    import uvicorn

    from fashionrec.api import create_app
    from fashionrec.catalog.catalog import Catalog
    from fashionrec.launch import require_port_free
    from fashionrec.recommend.recommender import Recommender

    require_port_free(args.host, args.port)
    recommender = Recommender(Catalog.open(args.catalog), search=args.search)
    recommender.follow()  # products indexed, added or removed meanwhile answer within a second or two
    print(f"Serving {len(recommender.catalog)} products ({recommender.catalog.model_name}, {recommender.index} search) on "
          f"http://{args.host}:{args.port}   (docs: /docs, Ctrl+C to stop)", flush=True)
    try:
        uvicorn.run(create_app(recommender), host=args.host, port=args.port, log_level="info")
    except KeyboardInterrupt:
        pass
    return 0


def _require_extra(module: str, feature: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise FashionrecError(f"{feature} needs the package {module}: pip install 'fashionrec[web]'")


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
