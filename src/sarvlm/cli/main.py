"""`sarvlm` entry point.

Every verb lives in its own module ``sarvlm.cli.<verb>`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``.
Modules import heavy libraries (torch, transformers) inside ``run`` so that
``sarvlm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from sarvlm import __version__
from sarvlm.core.errors import SarvlmError

# Order is the order shown in `sarvlm --help`, following the data's path.
VERB_MODULES: tuple[str, ...] = (
    "synth",
    "preprocess",
    "import_data",
    "annotate",
    "build",
    "stats",
    "priors",
    "train",
    "ablate",
    "pretrain",
    "retrieve",
    "zeroshot",
    "probe",
    "export_backbone",
    "ask",
    "predict",
    "merge",
    "eval",
    "serve",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sarvlm",
        description="Teach vision-language models to understand SAR imagery.",
        epilog="Run `sarvlm <verb> --help` for the options of each verb. Set SARVLM_DEBUG=1 to see tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"sarvlm {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>")
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(f"sarvlm.cli.{name}")
        except ModuleNotFoundError as exc:
            # A verb whose module is not part of this build is simply absent.
            if exc.name == f"sarvlm.cli.{name}":
                continue
            raise
        verb_parser = module.add_parser(sub)
        verb_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    try:
        with warnings.catch_warnings():
            if not os.environ.get("SARVLM_DEBUG"):
                # transformers' deprecation notices (past_key_values -> cache, ...) are about its own
                # internals and would flood train/predict/ask output; SARVLM_DEBUG=1 shows them
                warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")
            return int(args._run(args) or 0)
    except SarvlmError as exc:
        print(f"sarvlm: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sarvlm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence for the CLI
        if os.environ.get("SARVLM_DEBUG"):
            raise
        print(
            f"sarvlm: internal error: {type(exc).__name__}: {exc} (set SARVLM_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
