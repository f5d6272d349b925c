"""The `fashionrec` command: a thin face over `index_images`, `Catalog` and `Recommender`.

Every user error (missing file, unknown id, wrong model, bad image) is a `FashionrecError`, printed as one line on
stderr with exit code 2; a traceback means a bug. `parser` declares the commands, the `commands_*` modules run them,
`render` prints what they return; nothing heavy is imported before a command runs, so `--help` stays instant.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from fashionrec.cli.commands_serve import run_demo
from fashionrec.cli.parser import CATALOG_HELP, build_parser
from fashionrec.cli.render import NAME_WIDTH, shorten
from fashionrec.config import load_settings
from fashionrec.errors import FashionrecError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

__all__ = ["CATALOG_HELP", "EXIT_INTERRUPTED", "EXIT_USAGE", "NAME_WIDTH", "default_catalog", "main", "shorten"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 for a user error, 130 when interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # Said without -v: a first model or index build is otherwise 15 s to minutes of silence.
    for slow_once in ("fashionrec.models.export", "fashionrec.models.weights", "fashionrec.search.select"):
        logging.getLogger(slow_once).setLevel(logging.INFO)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        if getattr(args, "catalog", "") is None and args.run is not run_demo:
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
