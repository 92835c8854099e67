"""Render the `sarvlm` CLI reference (Markdown) from the argparse parser itself.

Usage: ``python tools/cli_reference.py [OUT.md]`` (prints to stdout without OUT). The docs build
runs it through ``docs/hooks.py``; tests/test_docs_site.py checks that every option of every verb
appears in the output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _option_rows(parser: argparse.ArgumentParser) -> list[tuple[str, str, str]]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        meta = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
        meta = meta if isinstance(meta, str) else " ".join(meta)
        if action.option_strings:
            name = ", ".join(f"`{o}`" for o in action.option_strings)
            if action.nargs != 0:
                name += f" `{meta}`"
        else:
            name = f"`{meta}` (positional)"
        help_text = action.help or ""
        if "%(" in help_text:
            help_text = help_text % {"default": action.default, "prog": parser.prog}
        if action.choices:
            help_text += f" (one of {', '.join(f'`{c}`' for c in action.choices)})"
        default = ""
        if action.option_strings and action.nargs != 0 and action.default is not None and action.default is not False:
            if action.default != argparse.SUPPRESS and action.default != []:
                default = f"`{action.default}`"
        rows.append((_cell(name), _cell(help_text), _cell(default)))
    return rows


def _section(title: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    lines = [f"{'#' * level} `{title}`", ""]
    if parser.description:
        lines += [parser.description.strip(), ""]
    lines += ["```text", parser.format_usage().strip().removeprefix("usage: "), "```", ""]
    rows = _option_rows(parser)
    if rows:
        lines += ["| option | meaning | default |", "|---|---|---|"]
        lines += [f"| {n} | {h} | {d} |" for n, h, d in rows]
        lines.append("")
    for name, sub in _subparsers(parser).items():
        lines += _section(f"{title} {name}", sub, level + 1)
    return lines


def render_cli_reference() -> str:
    """The whole CLI reference as Markdown, generated from ``sarvlm.cli.main.build_parser()``."""
    from sarvlm.cli.main import build_parser

    parser = build_parser()
    lines = [
        "# Command-line reference",
        "",
        "Generated from the argparse definitions of `sarvlm` at documentation build time "
        "(`tools/cli_reference.py`); `sarvlm <verb> --help` prints the same text. "
        "[cli.md](../cli.md) maps each verb to its Python function.",
        "",
    ]
    lines += ["## Global options", "", "| option | meaning | default |", "|---|---|---|"]
    lines += [f"| {n} | {h} | {d} |" for n, h, d in _option_rows(parser)]
    lines.append("")
    for name, sub in _subparsers(parser).items():
        lines += _section(f"sarvlm {name}", sub, 2)
    return "\n".join(lines) + "\n"


def write_cli_reference(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_cli_reference()
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":
    if len(sys.argv) > 1:
        write_cli_reference(sys.argv[1])
    else:
        sys.stdout.write(render_cli_reference())
