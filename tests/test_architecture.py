"""The layout's invariants (docs/ARCHITECTURE.md), each a check that fails when broken.

1-2. import-linter's contracts in pyproject.toml: the pipeline's layers import only downwards (every top-level
     module placed); the faces use the library's entry points, never the store, a search backend or indexing
     internals; only catalog/ imports the SQLite store (a `protected` contract), and no other module even names it.
3-5. Each decision has one owner: the names that make it appear only in the owner's modules (an AST walk, below).
6.   No source module over 400 lines, no function over 60 (every line of the def, its docstring included).
Every check is also run on a copy of the tree with a breach planted, to show it catches one.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "fashionrec"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# name -> the modules (relative to src/fashionrec) that may name it. Everything else must ask them.
OWNERS: dict[str, set[str]] = {
    # 2. the SQLite store: only catalog/ opens it
    "sqlite3": {"catalog/store.py", "catalog/reads.py", "catalog/schema.py"},
    "CatalogStore": {"catalog/store.py", "catalog/schema.py", "catalog/catalog.py", "catalog/space.py",
                     "catalog/writer.py"},
    # 3. staleness: the search space (catalog/space), HNSW and IVF files (search/select), a Milvus copy (milvus/push)
    "fit_whitening": {"catalog/whitening.py", "catalog/space.py"},
    "set_space": {"catalog/store.py", "catalog/space.py"},
    "drift": {"catalog/space.py", "catalog/catalog.py", "cli/render.py"},  # space decides; catalog and info show it
    "whitening_drift": {"catalog/space.py", "catalog/catalog.py"},
    "hnsw_path": {"catalog/derived.py", "search/select.py"},
    "hnsw_is_current": {"search/select.py", "recommend/recommender.py"},
    "ivf_paths": {"catalog/derived.py", "search/select.py"},
    "ivf_is_current": {"search/select.py", "recommend/recommender.py"},
    "holds_snapshot": {"scale/milvus/push.py", "scale/milvus/index.py"},
    "_can_send_changes_only": {"scale/milvus/push.py"},
    # 4. one path from an image to its model input and colour: index/read
    "preprocess": {"imaging/preprocess.py", "index/read.py"},
    "describe_colour": {"index/read.py"},
    "match_catalog_look": {"imaging/look.py", "index/read.py"},
    "load_model_input": {"imaging/preprocess.py", "models/embed.py"},  # Embedder.embed_images, for notebooks
    "open_image": {"imaging/decode.py", "imaging/preprocess.py", "index/read.py",
                   "webapp.py"},  # the web app shows the shopper's upload; the model's input is made in index/read
    # 5. the 0-1 colour weight becomes the gain in one place
    "COLOUR_LAYOUT_FULL": {"config.py", "recommend/query.py"},
    "COLOUR_WHOLE_FULL": {"config.py", "recommend/query.py"},
}


def names_by_module(sources: dict[str, str]) -> dict[str, set[str]]:
    """{module: every identifier it names}: bare names, attributes and imported names."""
    found = {}
    for module, text in sources.items():
        names = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update(alias.asname or alias.name.split(".")[-1] for alias in node.names)
                if isinstance(node, ast.ImportFrom) and node.module:
                    names.add(node.module.split(".")[0])
        found[module] = names
    return found


def ownership_breaches(sources: dict[str, str]) -> dict[str, list[str]]:
    """{owned name: modules that name it without owning it}."""
    named = names_by_module(sources)
    breaches = {}
    for name, owners in OWNERS.items():
        strangers = sorted(module for module, names in named.items() if name in names and module not in owners)
        if strangers:
            breaches[name] = strangers
    return breaches


def long_code(sources: dict[str, str]) -> dict[str, int]:
    """{module or module:line function: lines} over the limits."""
    long = {}
    for module, text in sources.items():
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            long[module] = lines
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if (lines := node.end_lineno - start + 1) > MAX_FUNCTION_LINES:
                    long[f"{module}:{node.lineno} {node.name}"] = lines
    return long


def _sources(package: Path = PACKAGE) -> dict[str, str]:
    return {path.relative_to(package).as_posix(): path.read_text() for path in sorted(package.rglob("*.py"))}


def _lint(src: Path) -> subprocess.CompletedProcess:
    """import-linter over the package under `src`, with the contracts in pyproject.toml."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.fail("import-linter is not installed: pip install -e '.[test]'")
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(lint), str(ROOT / "pyproject.toml"), "--no-cache"], cwd=src, capture_output=True,
                          text=True, timeout=120, env=env)


def test_import_contracts_hold() -> None:
    done = _lint(ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout and "3 kept" in done.stdout, done.stdout


def test_each_decision_has_one_owner() -> None:
    assert ownership_breaches(_sources()) == {}


def test_no_module_over_400_lines_and_no_function_over_60() -> None:
    assert long_code(_sources()) == {}


@pytest.mark.parametrize("module, planted, contract", [
    ("demo.py", "from fashionrec.catalog.store import CatalogStore", "fashionrec.demo -> fashionrec.catalog.store"),
    ("quality/report.py", "import sqlite3", "fashionrec.quality.report -> sqlite3"),
    ("imaging/look.py", "from fashionrec.recommend import Recommender", "fashionrec.imaging.look -> fashionrec.recommend"),
])
def test_the_import_contracts_catch_a_breach(tmp_path: Path, module: str, planted: str, contract: str) -> None:
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "fashionrec", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "fashionrec" / module
    target.write_text(target.read_text() + f"\n{planted}  # noqa: E402\n")
    done = _lint(copy)
    assert done.returncode != 0 and contract in done.stdout, done.stdout


def test_the_other_checks_catch_a_breach() -> None:
    sources = _sources()
    planted = {**sources, "api/reads.py": sources["api/reads.py"] + "\nfrom fashionrec.config import COLOUR_LAYOUT_FULL\n",
               "recommend/view.py": sources["recommend/view.py"] + "\nx = hnsw_path\n",
               "cli/render.py": sources["cli/render.py"] + "\n" + "\n".join(["def f():"] + ["    pass"] * 60) + "\n"}
    assert ownership_breaches(planted) == {"COLOUR_LAYOUT_FULL": ["api/reads.py"], "hnsw_path": ["recommend/view.py"]}
    assert list(long_code(planted)) == [next(key for key in long_code(planted) if key.startswith("cli/render.py:"))]
