"""Execute the tutorials (jupytext percent files in docs/tutorials/) and render them for the site.

Usage: ``python tools/run_tutorials.py [NAME ...] [--timeout S]``. Each ``docs/tutorials/NAME.py`` is
read with jupytext, executed top to bottom with nbclient in a fresh kernel (any failing cell fails the
run), and written as ``docs/tutorials/NAME.ipynb`` (executed, for download) and ``NAME.md`` with its
figures in ``NAME_files/`` (rendered by the site). tests/test_docs_site.py runs this in CI, so a
tutorial that no longer runs fails the suite.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"


def execute_tutorial(source: Path, timeout: int = 600) -> Path:
    """Execute one jupytext tutorial; returns the rendered Markdown path."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import MarkdownExporter

    nb = jupytext.read(source)
    with tempfile.TemporaryDirectory(prefix="sarvlm-tutorial-") as work:
        env_before = os.environ.get("SARVLM_TUTORIAL_DIR")
        os.environ["SARVLM_TUTORIAL_DIR"] = work  # the kernel inherits it; outputs stay out of the tree
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": work}}).execute()
        finally:
            if env_before is None:
                os.environ.pop("SARVLM_TUTORIAL_DIR", None)
            else:
                os.environ["SARVLM_TUTORIAL_DIR"] = env_before
    stem = source.stem
    nbformat.write(nb, source.with_suffix(".ipynb"))
    body, resources = MarkdownExporter().from_notebook_node(nb, resources={"output_files_dir": f"{stem}_files"})
    # Temporary paths printed by the cells would differ per run; show a stable placeholder.
    out_dir = source.parent
    for name, data in resources.get("outputs", {}).items():
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    md = source.with_suffix(".md")
    md.write_text(body, encoding="utf-8")
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="tutorial names (default: all in docs/tutorials)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    sources = [TUTORIALS / f"{n}.py" for n in args.names] or sorted(TUTORIALS.glob("*.py"))
    for src in sources:
        t0 = time.perf_counter()
        md = execute_tutorial(src, timeout=args.timeout)
        print(f"{src.name}: executed in {time.perf_counter() - t0:.1f} s -> {md.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
