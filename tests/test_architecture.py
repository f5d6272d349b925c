"""The layout's invariants (docs/ARCHITECTURE.md), each a check that fails when broken.

- import-linter's contracts in pyproject.toml: the pipeline's layers import only downwards; the faces (CLI, API,
  web app, demo) use the library's entry points, never the store, a search backend or indexing internals; only
  catalog/ opens the SQLite store.
- No source module over 400 lines, no function over 60 (every line of the def, its docstring included).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "fashionrec"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def test_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(lint).exists():
        pytest.fail("import-linter is not installed: pip install -e '.[test]'")
    done = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout and "3 kept" in done.stdout, done.stdout


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_over_400_lines() -> None:
    long = {path.relative_to(ROOT).as_posix(): n for path in _sources()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_over_60_lines() -> None:
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if (lines := node.end_lineno - start + 1) > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT).as_posix()}:{node.lineno} {node.name}"] = lines
    assert long == {}


def test_the_checks_catch_a_breach(tmp_path: Path) -> None:
    """The import contract is not vacuous: a face that opens the store is reported."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "fashionrec", copy / "fashionrec", ignore=shutil.ignore_patterns("__pycache__"))
    demo = copy / "fashionrec" / "demo.py"
    demo.write_text(demo.read_text() + "\nfrom fashionrec.catalog.store import CatalogStore  # noqa: E402\n")
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    done = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(copy), "PATH": str(Path(sys.executable).parent)})
    assert done.returncode != 0 and "fashionrec.demo -> fashionrec.catalog.store" in done.stdout, done.stdout
