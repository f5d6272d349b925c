"""The REST API against its own OpenAPI schema: schemathesis with every check and every phase (stateful on) against a
real `fashionrec serve`, with writes on (the token sent) and off; cases per operation, and the 2xx answers of the
product routes reached through the schema's links (the acceptance run of issue 25).

    python benchmarks/api_contract.py [--data DIR] [--limit 400] [--examples 200] [--seed 25] [--model NAME]

Indexes the first `--limit` sample products with their styles.csv into a fresh catalog under a temporary folder,
then, for each of "writes on" and "writes off", copies it, serves the copy on a free loopback port and runs
`schemathesis run --checks all --phases examples,coverage,fuzzing,stateful --max-examples N --seed S` with the
hooks of `tests/api/schemathesis_hooks.py` (real photos for uploads, distinct ids for a batch's photos). Prints a
table per run and exits 1 unless both find no failure and, with writes on, every product route answered 2xx to an
id a link gave.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.api.schemathesis_run, from a checkout

from fashionrec.demo import find_sample_data  # noqa: E402
from fashionrec.index import index_images  # noqa: E402
from fashionrec.launch import stop  # noqa: E402
from tests.api.schemathesis_run import PRODUCT_ROUTES, operations_table, run_schemathesis, start_server  # noqa: E402

TOKEN = "contract-token"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_run(catalog: Path, work: Path, name: str, token: str | None, examples: int, seed: int) -> bool:
    """Serve a copy of `catalog`, run schemathesis against it, print what it did; whether it passed."""
    shutil.copytree(catalog, work / name)
    port = free_port()
    server = start_server(work / name, port, token)
    began = time.perf_counter()
    try:
        run = run_schemathesis(f"http://127.0.0.1:{port}", work / f"{name}-report", examples, seed, token,
                               timeout=3600)
    finally:
        stop(server)
    summary = [line.strip() for line in run.output.splitlines() if " generated, " in line or "=====" in line]
    print(f"\n## {name}: exit {run.returncode}, {time.perf_counter() - began:.0f} s; {run.links}")
    print("\n".join(summary[-2:]))
    print(operations_table(run))
    if run.returncode != 0:
        print(run.output[-8000:])
    reached = all(run.reached[route] > 0 for route in PRODUCT_ROUTES) if token else True
    return run.returncode == 0 and reached


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--model", default="efficientnet-lite0")
    args = parser.parse_args()
    data = find_sample_data(args.data)
    work = Path(tempfile.mkdtemp(prefix="fashionrec-api-contract-"))
    try:
        images = sorted((data / "images").glob("*.jpg"))[:args.limit]
        (work / "images").mkdir()
        for path in images:
            shutil.copy(path, work / "images" / path.name)
        index_images(work / "images", work / "catalog", metadata=data / "styles.csv", model=args.model,
                     progress=False)
        print(f"{len(images)} sample products, {args.model}; {args.examples} examples an operation, seed {args.seed}")
        passed = [one_run(work / "catalog", work, name, token, args.examples, args.seed)
                  for name, token in (("writes on", TOKEN), ("writes off", None))]
        return 0 if all(passed) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
