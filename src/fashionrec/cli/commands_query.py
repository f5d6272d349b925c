"""The commands that ask a catalog (recommend, similar, similar-all) and measure its answers (evaluate, tune):
each parses its arguments, calls the library and hands the result to `render`. The k bound is the library's
`check_k`, applied before anything is loaded."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from fashionrec.cli.render import print_evaluation, print_json, print_tuning, show, tune_dict, write_rows
from fashionrec.config import load_settings
from fashionrec.errors import FashionrecError

if TYPE_CHECKING:
    from fashionrec.recommend import Filters, Recommender


def run_recommend(args: argparse.Namespace) -> int:
    """`fashionrec recommend`: products that look like a photo."""
    from fashionrec.imaging.decode import read_image_bytes
    from fashionrec.recommend.query import check_k

    check_k(args.k, load_settings().max_k, name="-k")
    image = read_image_bytes(args.image)  # a missing file fails before the model loads
    recommender, filters = open_recommender(args)
    return show(recommender.by_image(image, k=args.k, where=filters, show_duplicates=args.show_duplicates,
                                     colour_weight=args.colour_weight, region=args.region, regions=args.regions),
                args.json)


def run_similar(args: argparse.Namespace) -> int:
    """`fashionrec similar`: more like a catalog product (never the product itself)."""
    from fashionrec.recommend.query import check_k

    check_k(args.k, load_settings().max_k, name="-k")
    recommender, filters = open_recommender(args, product_id=args.product_id)
    return show(recommender.by_id(args.product_id, k=args.k, where=filters, show_duplicates=args.show_duplicates,
                                  colour_weight=args.colour_weight), args.json)


def open_recommender(args: argparse.Namespace, product_id: str | None = None) -> tuple[Recommender, Filters]:
    """The recommender and filters a query asks for; a bad filter or an unknown id fails before the model loads."""
    from fashionrec.catalog import Catalog
    from fashionrec.recommend import Recommender, parse_filters

    filters = parse_filters(args.where)
    catalog = Catalog.open(args.catalog)
    if product_id is not None:
        catalog.position(product_id)  # an unknown id fails before the model loads
    return Recommender(catalog, search=args.search), filters


def run_similar_all(args: argparse.Namespace) -> int:
    """`fashionrec similar-all`: the k most similar products of every product, to a CSV or Parquet file."""
    import time

    from tqdm import tqdm

    from fashionrec.catalog import Catalog
    from fashionrec.recommend import similar_all
    from fashionrec.recommend.query import check_k

    suffix = args.out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise FashionrecError(f"--out must end in .csv or .parquet, got {args.out.name}")
    check_k(args.k, load_settings().max_k, name="-k")
    catalog = Catalog.open(args.catalog)
    started = time.perf_counter()
    # A bar on a terminal (stderr), nothing in a log or a pipe; --no-progress turns it off.
    with tqdm(total=len(catalog), unit="product", desc="similar-all", disable=None if args.progress else True) as bar:
        table = similar_all(catalog, k=args.k, show_duplicates=args.show_duplicates,
                            colour_weight=args.colour_weight, progress=bar.update, search=args.search)
    searched = time.perf_counter() - started
    write_rows(args.out, list(table.rows()))
    print(f"Wrote the {args.k} most similar products of each of {len(table.ids)} products to {args.out} "
          f"(search {searched:.1f} s).")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """`fashionrec evaluate`: leave-one-out precision and mAP by label, photo recall, and an optional report."""
    from dataclasses import asdict, replace

    from fashionrec.catalog import Catalog
    from fashionrec.quality.evaluate import DEFAULT_LABELS, evaluate, photo_recall

    catalog = Catalog.open(args.catalog)
    result = evaluate(catalog, args.labels or DEFAULT_LABELS, k=args.k, queries=args.queries, seed=args.seed,
                      colour_weight=args.colour_weight)
    asked = result.colour_weight
    if args.queries_dir:
        from fashionrec.recommend import Recommender

        result = replace(result, photos=photo_recall(Recommender(catalog), args.queries_dir, colour_weight=asked))
    if args.report:
        from fashionrec.quality.report import write_report

        report = write_report(result, catalog, args.report, seed=args.seed)
        print(f"Report: {report}", file=sys.stderr)
    if args.json:
        print_json(asdict(result))
    else:
        print_evaluation(result, asked)
    return 0


def run_tune(args: argparse.Namespace) -> int:
    """`fashionrec tune`: a label-trained projection, saved only if it helps on held-out products."""
    from fashionrec.catalog import Catalog
    from fashionrec.catalog.space import remove_tuning, save_tuning
    from fashionrec.quality.tune import tune

    catalog = Catalog.open(args.catalog)
    if args.reset:
        remove_tuning(catalog)
        print(f"The catalog {catalog.catalog_dir} is no longer tuned.")
        return 0
    report, tuning = tune(catalog, args.label, args.look_label, k=args.k, seed=args.seed)
    if tuning is not None and not args.dry_run:
        save_tuning(catalog, tuning)
    if args.json:
        print_json(tune_dict(report, saved=tuning is not None and not args.dry_run))
    else:
        print_tuning(report, kept=tuning is not None, dry_run=args.dry_run)
    return 0
