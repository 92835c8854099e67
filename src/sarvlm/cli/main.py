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
    "finetune_caption",
    "caption",
    "ask",
    "predict",
    "merge",
    "eval",
    "serve",
    "demo",
)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too (``sarvlm: error: ...``), like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"sarvlm: error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        _add_image_safety_options(verb_parser)
        verb_parser.set_defaults(_run=module.run)
    return parser


def _add_image_safety_options(parser: argparse.ArgumentParser) -> None:
    """Options every verb shares: what user images may be (docs/security.md)."""
    g = parser.add_argument_group("image safety (see docs/security.md)")
    g.add_argument(
        "--max-image-bytes",
        metavar="SIZE",
        default=None,
        help="largest declared image read, width x height x bands x bytes per sample (e.g. 4G; "
        "default 1G or $SARVLM_MAX_IMAGE_BYTES)",
    )
    g.add_argument(
        "--allow-raster-driver",
        metavar="NAME",
        action="append",
        default=[],
        help="also open images with this GDAL driver (e.g. VRT; repeatable). Default: GTiff/COG, PNG, JPEG only",
    )


def _run_verb(args: argparse.Namespace) -> int:
    """Run a verb under the image policy its options ask for, with GDAL and PIL configured to match."""
    from sarvlm.core.progress import progress_enabled
    from sarvlm.io.raster_policy import configure_gdal, raster_policy

    if not progress_enabled():
        # SARVLM_NO_PROGRESS / CI / no terminal: no library progress bars either (transformers' weight
        # loading bar reads this when it is imported; an already imported one is switched off directly)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if "transformers" in sys.modules:
            sys.modules["transformers"].utils.logging.disable_progress_bar()
    with raster_policy(max_image_bytes=args.max_image_bytes, allow_drivers=args.allow_raster_driver) as policy:
        configure_gdal(policy.allowed_drivers)  # before GDAL loads: VRT/network drivers never registered
        from PIL import Image

        # PIL counts pixels; one byte per pixel keeps it no looser than the byte limit.
        Image.MAX_IMAGE_PIXELS = policy.max_image_bytes
        return int(args._run(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    try:
        return _run_verb(args)
    except SarvlmError as exc:
        print(f"sarvlm: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except MemoryError:
        # the size checks should stop this first; if not, still one line and no traceback
        print(
            f"sarvlm: error: {args.verb}: out of memory (an input is larger than this machine holds; "
            "lower --max-image-bytes to refuse such inputs early, or tile large scenes)",
            file=sys.stderr,
        )
        return 2
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
