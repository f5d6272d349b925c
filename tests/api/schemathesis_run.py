"""Schemathesis against a real `fashionrec serve`, and what it did, read from its NDJSON report: how many cases each
operation got, the statuses it answered, and which product routes answered 2xx to an id a link gave (the stateful
phase following the schema's links from the run's own writes). Used by `tests/api/test_openapi_contract.py` and
`benchmarks/api_contract.py`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from fashionrec.launch import wait_until_up

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "schemathesis.toml"
HOOKS = HERE / "schemathesis_hooks.py"  # photos for uploads, distinct ids for a batch's photos
PRODUCT_ROUTES = ("GET /products/{product_id}", "GET /products/{product_id}/image",
                  "GET /products/{product_id}/similar", "PUT /products/{product_id}", "DELETE /products/{product_id}")
WRITES = ("PUT /products/{product_id}", "DELETE /products/{product_id}", "POST /products:batch")


def start_server(catalog_dir: Path, port: int, token: str | None) -> subprocess.Popen:
    """`fashionrec serve` on a loopback port, product writes on for `token` (off when None)."""
    env = {name: value for name, value in os.environ.items() if name != "FASHIONREC_API_TOKEN"}
    if token:
        env["FASHIONREC_API_TOKEN"] = token
    server = subprocess.Popen([sys.executable, "-m", "fashionrec.cli", "serve", "--catalog", str(catalog_dir),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wait_until_up(f"http://127.0.0.1:{port}", server, timeout=120, health_path="/health")
    return server


@dataclass
class ContractRun:
    """One schemathesis run: its exit code and output, and what its report says each operation got."""

    returncode: int
    output: str
    cases: Counter = field(default_factory=Counter)  # "METHOD /path" -> test cases sent
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # -> status -> count
    written_ids: set[str] = field(default_factory=set)  # ids the run's own PUTs and batches stored (2xx)
    reached: Counter = field(default_factory=Counter)  # product route -> 2xx answers to an id a link gave
    links: str = ""  # the stateful phase's "API Links: ..." line


def run_schemathesis(base_url: str, report_dir: Path, max_examples: int, seed: int, token: str | None,
                     timeout: float = 900) -> ContractRun:
    """`schemathesis run` with every check, every phase (stateful included), a fixed seed and our hooks, in
    `report_dir` (schemathesis keeps a cache of crashes in its working folder)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
               f"{base_url}/openapi.json", "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
               "--max-examples", str(max_examples), "--seed", str(seed), "--workers", "1",
               "--report", "ndjson", "--report-dir", str(report_dir)]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    done = subprocess.run(command, check=False, cwd=report_dir, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, SCHEMATHESIS_HOOKS=str(HOOKS), NO_COLOR="1", COLUMNS="160"))
    run = ContractRun(done.returncode, done.stdout + done.stderr)
    run.links = next((line.strip() for line in run.output.splitlines() if "API Links:" in line), "")
    read_report(next(report_dir.glob("*.ndjson")), run)
    return run


def read_report(path: Path, run: ContractRun) -> None:
    """Fill `run` from an NDJSON report: cases and statuses per operation, the ids the run's writes stored, and the
    2xx answers of product routes reached through a link (the id taken from an earlier answer)."""
    for line in path.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished["recorder"]
        for case_id, case in recorder.get("cases", {}).items():
            value = case["value"]
            label = f"{value['method']} {value['path']}"
            run.cases[label] += 1
            response = (recorder.get("interactions", {}).get(case_id) or {}).get("response")
            if not response:
                continue
            run.statuses[label][response["status_code"]] += 1
            if not 200 <= response["status_code"] < 300:
                continue
            if label in ("PUT /products/{product_id}", "POST /products:batch"):
                body = _json(response)
                run.written_ids.update(item["id"] for item in body.get("products", [body]) if "id" in item)
            if label in PRODUCT_ROUTES and (case.get("transition") or {}).get("is_inferred") is False:
                run.reached[label] += 1


def _json(response: dict) -> dict:
    """A recorded response's JSON body ({} when it has none)."""
    content = response.get("content") or {}
    raw = base64.b64decode(content["$base64"]) if isinstance(content, dict) and "$base64" in content else b""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def operations_table(run: ContractRun) -> str:
    """Cases per operation, 2xx answers reached through a link, and every status answered."""
    lines = [f"{'operation':42} {'cases':>6} {'2xx via a link':>15}  statuses"]
    for label in sorted(run.cases, key=lambda name: (name.split()[1], name.split()[0])):
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(run.statuses[label].items()))
        lines.append(f"{label:42} {run.cases[label]:>6} {run.reached.get(label, 0):>15}  {statuses}")
    return "\n".join(lines)
