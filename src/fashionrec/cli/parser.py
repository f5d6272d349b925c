"""The argparse declaration of every command and flag, one function per group of commands (in the order `--help`
lists them). Each subparser names its handler in `run`; only the handlers import the library, so building the
parser is instant."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fashionrec.cli.commands_catalog import run_add, run_index, run_info, run_models, run_refit, run_remove
from fashionrec.cli.commands_query import run_evaluate, run_recommend, run_similar, run_similar_all, run_tune
from fashionrec.cli.commands_serve import run_app, run_demo, run_push, run_serve
from fashionrec.config import COLOUR_WEIGHT, GARMENT_KINDS

CATALOG_HELP = ("catalog folder (default: $FASHIONREC_CATALOG, else the demo catalog fashionrec demo built, in the "
                "cache)")

if TYPE_CHECKING:
    from typing import TypeAlias

    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    """The `fashionrec` parser with all its commands."""
    parser = argparse.ArgumentParser(prog="fashionrec", description="Recommend fashion products by how they look.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what happens (model and index builds, downloads are said without it)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_index_commands(commands)
    _add_query_commands(commands)
    _add_quality_commands(commands)
    _add_write_commands(commands)
    _add_serving_commands(commands)
    return parser


def _add_index_commands(commands: Commands) -> None:
    """models, index: the backbones, and building a catalog from a folder."""
    models = commands.add_parser("models", help="list the backbones and whether their weights are available")
    models.add_argument("action", nargs="?", choices=["list"], default="list")
    models.set_defaults(run=run_models)

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
    index.add_argument("--restore", action="store_true",
                       help="bring back the products of this folder that fashionrec remove or DELETE removed (without "
                            "it they stay removed, and are counted)")
    index.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="what reads and embeds: this process (default) or Ray Data (same catalog)")
    index.add_argument("--ray-address", metavar="ADDR",
                       help="with --engine ray: the cluster to use (default: start a local Ray for the run)")
    index.add_argument("--workers", type=int, metavar="N",
                       help="with --engine ray: embedding actors, one ONNX session each (default: one per CPU)")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.add_argument("--json", action="store_true", help="print the report as JSON")
    index.set_defaults(run=run_index)


def _add_query_commands(commands: Commands) -> None:
    """recommend, similar, similar-all, info: asking a catalog."""
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
        if name == "recommend":
            sub.add_argument("--region", choices=GARMENT_KINDS,
                             help="a photo of a person: the garment whose answers come first (default: the most "
                                  "probable one found); every garment found gets its block")
            sub.add_argument("--whole", dest="regions", action="store_false",
                             help="answer the whole photo, never per garment")
        sub.set_defaults(run=run_recommend if name == "recommend" else run_similar)

    table = commands.add_parser("similar-all", help="the k most similar products of every product, to a file")
    table.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    table.add_argument("-k", type=int, default=10,
                       help="how many per product (default 10; at most FASHIONREC_MAX_K, 100 by default)")
    table.add_argument("--out", type=Path, required=True, help="FILE.csv or FILE.parquet")
    table.add_argument("--show-duplicates", action="store_true", help="keep every copy of a duplicate image")
    table.add_argument("--no-progress", dest="progress", action="store_false",
                       help="no progress bar (it shows on a terminal only)")
    _add_colour_option(table)
    _add_index_option(table)
    table.set_defaults(run=run_similar_all)

    info = commands.add_parser("info", help="what a catalog holds")
    info.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=run_info)


def _add_quality_commands(commands: Commands) -> None:
    """evaluate, tune: measuring the recommendations and training a projection that improves them."""
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
    evaluate.set_defaults(run=run_evaluate)

    tune = commands.add_parser("tune", help="train a small projection on a label; kept only if it helps")
    tune.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    tune.add_argument("--label", default="articleType", help="the label to emphasise (default articleType)")
    tune.add_argument("--look-label", default="baseColour", help="the label that must not suffer (default baseColour)")
    tune.add_argument("-k", type=int, default=5, help="cut-off of the precision compared (default 5)")
    tune.add_argument("--seed", type=int, default=0, help="seed of the held-out split (default 0)")
    tune.add_argument("--dry-run", action="store_true", help="measure only; save nothing")
    tune.add_argument("--reset", action="store_true", help="remove the catalog's tuning, and stop")
    tune.add_argument("--json", action="store_true", help="print the held-out figures as JSON")
    tune.set_defaults(run=run_tune)


def _add_write_commands(commands: Commands) -> None:
    """add, remove, refit: changing a catalog in place, while it may be served."""
    add = commands.add_parser("add", help="add or replace one product (its photo is copied into the catalog)")
    add.add_argument("product_id", help="the product's id (letters, digits, '.', '_', '-')")
    add.add_argument("image", type=Path, help="its photo")
    add.add_argument("--metadata", help='its metadata as a JSON object, e.g. \'{"gender": "Men"}\' (omitted: a replaced '
                                        "product keeps its metadata)")
    add.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    add.add_argument("--json", action="store_true", help="print the stored product as JSON")
    add.set_defaults(run=run_add)

    remove = commands.add_parser("remove", help="remove products by id")
    remove.add_argument("product_ids", nargs="+", metavar="PRODUCT_ID")
    remove.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    remove.set_defaults(run=run_remove)

    refit = commands.add_parser("refit", help="fit the catalog's search space (its whitening) again, on its products "
                                              "as they are now")
    refit.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    refit.set_defaults(run=run_refit)


def _add_serving_commands(commands: Commands) -> None:
    """app, push, serve, demo: the web app, Milvus, the REST API and the demo that ties them together."""
    app = commands.add_parser("app", help="the web app: upload a photo or pick a product, see similar products")
    app.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    _add_server_options(app, port=8501)
    _add_index_option(app)
    app.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    app.set_defaults(run=run_app)

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
    push.set_defaults(run=run_push)

    serve = commands.add_parser("serve", help="the JSON REST API (docs at /docs, schema at /openapi.json)")
    serve.add_argument("--catalog", type=Path, help=CATALOG_HELP)
    _add_server_options(serve, port=8000)
    _add_index_option(serve)
    serve.set_defaults(run=run_serve)

    demo = commands.add_parser("demo", help="index the sample catalog, check its real photos, open the web app")
    demo.add_argument("--data", type=Path, help="the fashion-product-images folder (default: ../shared/data/...)")
    demo.add_argument("--catalog", type=Path, help="catalog folder (default: the demo catalog, which every other "
                                                   "command uses when given no --catalog)")
    demo.add_argument("--limit", type=int, help="index at most the first N images")
    demo.add_argument("-k", type=int, default=5)
    _add_server_options(demo, port=8501)
    demo.add_argument("--no-app", action="store_true", help="stop after the check; do not start the web app")
    demo.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    demo.set_defaults(run=run_demo)


def _add_index_option(parser: argparse.ArgumentParser) -> None:
    """--search (alias --index): which search backend a query or server uses."""
    parser.add_argument("--search", "--index", dest="search", metavar="SEARCH",
                        help="exact, ivf (or compact: FAISS IVF over 4- or 8-bit codes, floats read from disk), "
                             "hnsw (or faiss: FAISS HNSW), auto (ivf for large catalogs; the default), or a "
                             "Milvus collection the catalog was pushed to: milvus://HOST:19530/COLLECTION "
                             "(milvuss:// for TLS) or "
                             "milvus-lite:///path/catalog.db")


def _add_server_options(parser: argparse.ArgumentParser, port: int) -> None:
    """--host and --port, local-only by default."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=port, help=f"port (default {port})")


def _colour_weight(text: str) -> float:
    """--colour-weight: a number from 0 to 1 (a usage error, exit 2, otherwise)."""
    try:
        weight = float(text)
    except ValueError:
        weight = -1.0
    if not 0 <= weight <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 (shape only) to 1 (colour counts most), got {text!r}")
    return weight


def _add_colour_option(parser: argparse.ArgumentParser) -> None:
    """--colour-weight (alias --color-weight): how much colour counts beside shape."""
    parser.add_argument("--colour-weight", "--color-weight", type=_colour_weight, metavar="W",
                        help=f"how much the product's colour counts beside its shape, 0 (shape only) to 1 (the "
                             f"strongest colour setting); default {COLOUR_WEIGHT:g}, or FASHIONREC_COLOUR_WEIGHT")
