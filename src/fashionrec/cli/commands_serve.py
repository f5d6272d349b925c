"""The commands that serve a catalog (app, serve, demo) and copy it into Milvus (push): each checks what it can
in one line before a server starts, then hands over to `fashionrec.launch` or `fashionrec.api`."""

from __future__ import annotations

import argparse
from pathlib import Path

from fashionrec.cli.render import print_demo, print_demo_next_steps, print_json, print_push, push_dict
from fashionrec.config import load_settings
from fashionrec.errors import FashionrecError


def run_app(args: argparse.Namespace) -> int:
    """`fashionrec app`: the web app, after the catalog and its search are known to open."""
    from fashionrec.catalog import Catalog
    from fashionrec.recommend import open_search

    catalog = Catalog.open(args.catalog)  # a wrong folder fails here, in one line, not inside the server
    if args.search:
        backend = open_search(catalog, args.search)  # so does a search the catalog cannot use
        getattr(backend, "close", lambda: None)()  # the server opens its own (a Milvus Lite file takes one)
    return run_web_app(args.catalog, args.host, args.port, open_browser=not args.no_browser, search=args.search)


def run_web_app(catalog_dir: Path, host: str, port: int, open_browser: bool, examples_dir: Path | None = None,
                search: str | None = None) -> int:
    """Start the web app, wait until it answers, open a browser if there is one; returns its exit code."""
    import webbrowser

    from fashionrec.launch import (
        can_open_browser,
        require_port_free,
        sigterm_interrupts,
        start_web_app,
        stop,
        wait_until_up,
    )

    require_extra("streamlit", "the web app")
    require_extra("streamlit_image_coordinates", "the web app")
    require_port_free(host, port)
    url = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0', '::') else host}:{port}"
    with sigterm_interrupts():  # `kill` stops the web app's server too, as Ctrl+C does
        server = start_web_app(catalog_dir, host, port, examples_dir=examples_dir, search=search)
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


def run_push(args: argparse.Namespace) -> int:
    """`fashionrec push`: a catalog's vectors and metadata into Milvus (only what changed)."""
    from fashionrec.catalog import Catalog
    from fashionrec.scale.milvus import push

    report = push(Catalog.open(args.catalog), args.to, index_type=args.index, recreate=args.recreate)
    if args.json:
        print_json(push_dict(report))
    else:
        print_push(report, args.to)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """`fashionrec serve`: the REST API, following the catalog as it changes."""
    require_extra("fastapi", "the REST API")
    require_extra("uvicorn", "the REST API")
    import uvicorn

    from fashionrec.api import create_app
    from fashionrec.threads import one_blas_thread
    from fashionrec.catalog import Catalog
    from fashionrec.launch import require_port_free
    from fashionrec.recommend import Recommender

    require_port_free(args.host, args.port)
    recommender = Recommender(Catalog.open(args.catalog), search=args.search)
    recommender.follow()  # products indexed, added or removed meanwhile answer within a second or two
    print(f"Serving {len(recommender.catalog)} products ({recommender.catalog.model_name}, {recommender.search_in_use} search) on "
          f"http://{args.host}:{args.port}   (docs: /docs, Ctrl+C to stop)", flush=True)
    try:
        one_blas_thread()  # a server process answers queries: numpy's BLAS threads would fight the model's
        uvicorn.run(create_app(recommender), host=args.host, port=args.port, log_level="info")
    except KeyboardInterrupt:
        pass
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """`fashionrec demo`: index the sample catalog, check its real photos, then open the web app (or say how)."""
    from fashionrec.demo import demo_catalog_dir
    from fashionrec.demo import run_demo as build_demo

    result = build_demo(data_dir=args.data, catalog_dir=args.catalog, limit=args.limit, k=args.k)
    print_demo(result)
    if args.no_app:
        default = result.catalog_dir.resolve() == demo_catalog_dir(load_settings()).resolve()
        print_demo_next_steps(result.catalog_dir, default)
        return 0
    return run_web_app(result.catalog_dir, args.host, args.port, open_browser=not args.no_browser,
                       examples_dir=result.examples_dir)


def require_extra(module: str, feature: str) -> None:
    """Fail in one line when an optional dependency of `feature` is missing.

    Raises:
        FashionrecError: `module` is not installed; the message names the extra that brings it.
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise FashionrecError(f"{feature} needs the package {module}: pip install 'fashionrec[web]'")
