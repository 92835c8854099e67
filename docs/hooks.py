"""MkDocs hooks: generate the CLI reference from the argparse definitions at build time.

The page ``reference/cli.md`` is never written by hand: every verb, option, default and help
text comes from ``sarvlm.cli.main.build_parser()`` (see ``tools/cli_reference.py``), so the
reference cannot drift from the code. tests/test_docs_site.py checks that every option appears.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def on_pre_build(config, **kwargs) -> None:  # noqa: ARG001 - MkDocs hook signature
    sys.path.insert(0, str(ROOT / "tools"))
    sys.path.insert(0, str(ROOT / "src"))
    from cli_reference import write_cli_reference

    write_cli_reference(ROOT / "docs" / "reference" / "cli.md")
    missing = [p.name for p in (ROOT / "docs" / "tutorials").glob("*.py") if not p.with_suffix(".md").exists()]
    if missing:
        raise SystemExit(
            f"tutorials not executed yet ({', '.join(missing)}): run `python tools/run_tutorials.py` first"
        )
