"""The checks CONTRIBUTING.md asks for run inside the suite, so `make test` enforces them.

ruff (lint + format) over src, tests and benchmarks, and mypy over the package, each with the
configuration in pyproject.toml. A finding fails the test with the tool's own report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ["src", "tests", "benchmarks"]


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_ruff_lint_is_clean():
    res = _run("ruff", "check", "--no-cache", *CODE, timeout=120)
    assert res.returncode == 0, f"ruff check found problems:\n{res.stdout}{res.stderr}"


def test_ruff_format_is_clean():
    res = _run("ruff", "format", "--check", "--no-cache", *CODE, timeout=120)
    assert res.returncode == 0, f"files need `ruff format`:\n{res.stdout}{res.stderr}"


def test_mypy_is_clean_on_the_package():
    # files, plugins and per-module settings come from [tool.mypy] in pyproject.toml; the
    # incremental cache (.mypy_cache) makes reruns take seconds instead of ~1.5 min
    res = _run("mypy", "--no-error-summary", timeout=900)
    assert res.returncode == 0, f"mypy found problems:\n{res.stdout}{res.stderr}"
    assert "src/sarvlm" in " ".join(_configured_mypy_files()), "mypy must check the package"


def _configured_mypy_files() -> list[str]:
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["tool"]["mypy"]["files"])
