"""The documentation site: CLI reference generated from argparse, tutorials executed, strict build."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))


def _all_parsers(parser: argparse.ArgumentParser, prefix: str = "sarvlm"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{prefix} {name}")


def test_cli_reference_lists_every_verb_and_option():
    from cli_reference import render_cli_reference

    from sarvlm.cli.main import build_parser

    text = render_cli_reference()
    missing = []
    for title, parser in _all_parsers(build_parser()):
        if title != "sarvlm" and f"`{title}`" not in text:
            missing.append(title)
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            for opt in action.option_strings:
                if f"`{opt}`" not in text:
                    missing.append(f"{title} {opt}")
    assert not missing, f"options missing from the generated CLI reference: {missing}"


def test_cli_reference_fails_on_a_missing_option(monkeypatch):
    # The check above must be able to fail: an option the renderer drops is reported.
    import cli_reference

    real = cli_reference._option_rows
    monkeypatch.setattr(cli_reference, "_option_rows", lambda p: [r for r in real(p) if "--overwrite" not in r[0]])
    text = cli_reference.render_cli_reference()
    assert "`--overwrite`" not in text


@pytest.mark.slow
def test_tutorials_execute_and_site_builds_strict(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_MKDOCS_2_WARNING": "1", "SARVLM_NO_PROGRESS": "1"}
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "run_tutorials.py"), "--timeout", "900"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    tutorials = sorted((ROOT / "docs" / "tutorials").glob("*.py"))
    assert tutorials
    for src in tutorials:
        md = src.with_suffix(".md").read_text(encoding="utf-8")
        assert "Traceback" not in md and "Error" not in md.split("```")[0]
        assert list((src.parent / f"{src.stem}_files").glob("*.png")), f"{src.name} rendered no figure"
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-4000:]
    api = (site / "reference" / "api.html").read_text(encoding="utf-8")
    assert "SampleRecord" in api and "build_dataset" in api  # generated from docstrings
    cli = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    assert "--vqa-protocol" in cli
    for src in tutorials:
        page = (site / "tutorials" / f"{src.stem}.html").read_text(encoding="utf-8")
        assert "<img" in page  # executed outputs, figures included
