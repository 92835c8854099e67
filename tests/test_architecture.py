"""The package's layering is a checked contract: import-linter's contracts in pyproject.toml hold,
a violation is caught, and no module takes part in an import cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
# the lint-imports of this interpreter's environment first (pytest may run without the venv on PATH)
_VENV_LINT = Path(sys.executable).parent / "lint-imports"
LINT_IMPORTS = str(_VENV_LINT) if _VENV_LINT.exists() else (shutil.which("lint-imports") or "lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "COLUMNS": "250"}  # no wrapped lines
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_hold():
    res = _lint_imports(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout
    assert "sarvlm layers" in res.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # the ground floor importing evaluation: an upward import
        ("core/jsonl.py", "from sarvlm.eval import evaluate  # noqa: F401", "sarvlm layers"),
        # the task registry importing torch
        ("tasks/spec.py", "import torch  # noqa: F401", "stay light"),
    ],
)
def test_a_violation_breaks_the_contract(tmp_path, module, line, contract):
    shutil.copytree(ROOT / "src" / "sarvlm", tmp_path / "src" / "sarvlm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "sarvlm" / module
    target.write_text(target.read_text() + "\n" + line + "\n")
    res = _lint_imports(tmp_path)
    assert res.returncode != 0, res.stdout
    broken = [ln for ln in res.stdout.splitlines() if ln.rstrip().endswith("BROKEN")]
    assert any(contract in ln for ln in broken), res.stdout


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child) & modules))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_cycle():
    g = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        g.add_import(importer=a, imported=b)
    assert _cycles(g, {"p.a", "p.b", "p.c", "p.d"}) == [["p.a", "p.b", "p.c"]]


def test_no_import_cycles():
    # Imports under TYPE_CHECKING count too: a cycle there is still two modules that need each other.
    graph = grimp.build_graph("sarvlm", exclude_type_checking_imports=False, cache_dir=None)
    modules = {m for m in graph.modules if m.startswith("sarvlm.")}
    assert _cycles(graph, modules) == []


def test_cli_imports_no_torch_or_transformers_at_import_time():
    code = (
        "import sys, contextlib, io\n"
        "from sarvlm.cli.main import build_parser\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    build_parser().format_help()\n"
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'accelerate') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
