"""The commands that build and change a catalog (models, index, info, add, remove, refit): each parses its
arguments, calls one library entry point and hands the result to `render`. Library imports stay inside the
handlers, so that `fashionrec --help` loads nothing heavy."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fashionrec.cli.render import catalog_facts, print_facts, print_index_report, print_json, print_table, report_dict
from fashionrec.config import load_settings
from fashionrec.errors import FashionrecError

if TYPE_CHECKING:
    from fashionrec.scale.ray_engine import RayEngine


def run_models(args: argparse.Namespace) -> int:
    """`fashionrec models`: every backbone, and whether its weights are here."""
    from fashionrec.models import list_models
    from fashionrec.models.weights import weights_status

    settings = load_settings()
    rows = [(s.name + (" (default)" if s.name == settings.default_model else ""), str(s.dim),
             f"{s.input_size}x{s.input_size}", s.pooling, weights_status(s, settings)) for s in list_models()]
    print_table(("model", "dim", "input", "pooling", "weights"), rows)
    return 0


def run_index(args: argparse.Namespace) -> int:
    """`fashionrec index`: a folder of photos into a catalog, incrementally."""
    from fashionrec.index import index_images

    report = index_images(args.images_dir, args.catalog, metadata=args.metadata, model=args.model,
                          weights=args.weights, batch_size=args.batch_size, limit=args.limit, prune=args.prune,
                          restore=args.restore,
                          progress=not args.no_progress and not args.json, engine=index_engine(args))
    if args.json:
        print_json(report_dict(report))
    else:
        print_index_report(report)
    return 0


def index_engine(args: argparse.Namespace) -> RayEngine | None:
    """The indexing engine the flags ask for (None: the default, in this process).

    Raises:
        FashionrecError: Ray-only flags without --engine ray, or fewer than one worker.
    """
    if args.engine == "local":
        if args.ray_address or args.workers is not None:
            raise FashionrecError("--ray-address and --workers go with --engine ray")
        return None
    if args.workers is not None and args.workers < 1:
        raise FashionrecError(f"--workers must be at least 1, got {args.workers}")
    from fashionrec.scale.ray_engine import RayEngine

    return RayEngine(address=args.ray_address, workers=args.workers)


def run_info(args: argparse.Namespace) -> int:
    """`fashionrec info`: what a catalog holds."""
    from fashionrec.catalog import Catalog

    facts = catalog_facts(Catalog.open(args.catalog), load_settings().refit_drift)
    if args.json:
        print_json(facts)
    else:
        print_facts(facts)
    return 0


def run_add(args: argparse.Namespace) -> int:
    """`fashionrec add`: one product, added or replaced while the catalog is served."""
    from fashionrec.catalog import Catalog
    from fashionrec.errors import ImageError
    from fashionrec.imaging.decode import read_image_bytes
    from fashionrec.index.metadata import metadata_from_json
    from fashionrec.index.write import ProductWrite, put_products
    from fashionrec.models.embed import load_model

    metadata = None if args.metadata is None else metadata_from_json(args.metadata, "--metadata")
    image = read_image_bytes(args.image)  # a missing file fails before the model loads
    catalog = Catalog.open(args.catalog)
    try:
        written = put_products(args.catalog, [ProductWrite(args.product_id, image, metadata)],
                               load_model(catalog.model_name, catalog.weights_path))[0]
    except ImageError as exc:  # the library names the product; the shop owner also needs the file
        raise type(exc)(f"{args.image}: {exc}") from None
    if args.json:
        print_json({"id": written.id, "created": written.created, "image": str(written.image),
                    "metadata": written.metadata}, ensure_ascii=False)
    else:
        print(f"{'Added' if written.created else 'Replaced'} product {written.id} in {catalog.catalog_dir} "
              f"(image {written.image}).")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """`fashionrec remove`: products by id."""
    from fashionrec.index.write import remove_products

    removed = remove_products(args.catalog, args.product_ids)
    print(f"Removed {removed} product{'s' if removed != 1 else ''} from {args.catalog}.")
    return 0


def run_refit(args: argparse.Namespace) -> int:
    """`fashionrec refit`: the search space fitted again on the products as they are now."""
    from fashionrec.catalog import Catalog
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
