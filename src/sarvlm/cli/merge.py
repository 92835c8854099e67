"""`sarvlm merge OUT`: join the outputs of `--shard K/N` runs into exactly what one run writes."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

EPILOG = """\
examples (a SLURM array job, one task per shard, then one merge):
  sarvlm build samples.jsonl data --shard $SLURM_ARRAY_TASK_ID/8 && sarvlm merge data
  sarvlm predict --model run/final --data data/test.jsonl --out preds.jsonl --shard 3/8
  sarvlm merge preds.jsonl
  sarvlm annotate samples.jsonl --out ann.jsonl --prompt geovl --shard 0/4   # ... 3/4
  sarvlm merge ann.jsonl     # also merges the run directories' reply caches and reports

OUT is the output the unsharded command would have written; the parts are found next to it
(OUT.shard-K-of-N for directories, STEM.shard-K-of-N.SUFFIX for files). Every part must be
present and come from the same command and inputs.
"""

MERGERS = ("build", "preprocess", "priors", "predict", "annotate")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "merge",
        help="join --shard K/N outputs (preprocess, build, priors, annotate, predict) into one",
        description="Join the N parts written by `--shard K/N` runs of preprocess, build, priors, annotate or predict "
        "into OUT, byte-identical to what one unsharded run writes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", type=Path, metavar="OUT", help="the output path the unsharded command would write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--remove-parts", action="store_true", help="delete the shard parts after a successful merge")
    return p


def merge_output(out: Path, overwrite: bool = False) -> tuple[str, list[Path]]:
    """Merge the parts of ``out``; returns (kind, parts)."""
    from sarvlm.core.errors import SarvlmError
    from sarvlm.core.sharding import NoShardOutputs, find_parts, read_shard_info

    try:
        parts = find_parts(out, directory=True)
    except NoShardOutputs:
        parts = find_parts(out, directory=False)
    kind = read_shard_info(parts[0]).get("kind")
    if kind == "build":
        from sarvlm.data.builder import merge_build_shards

        merge_build_shards(out, overwrite=overwrite)
    elif kind == "preprocess":
        from sarvlm.preprocess.pipeline import merge_preprocess_shards

        merge_preprocess_shards(out, overwrite=overwrite)
    elif kind == "priors":
        from sarvlm.priors.cache import merge_prior_shards

        merge_prior_shards(out, overwrite=overwrite)
    elif kind == "predict":
        from sarvlm.inference.predict import merge_prediction_shards

        merge_prediction_shards(out, overwrite=overwrite)
    elif kind == "annotate":
        from sarvlm.annotate.merge import merge_annotate_shards

        merge_annotate_shards(out, overwrite=overwrite)
    else:
        raise SarvlmError(f"{parts[0]}: unknown shard kind {kind!r} (expected one of {', '.join(MERGERS)})")
    return kind, parts


def run(args: argparse.Namespace) -> int:
    from sarvlm.core.sharding import shard_info_path

    kind, parts = merge_output(args.out, overwrite=args.overwrite)
    if args.remove_parts:
        if kind == "annotate":
            from sarvlm.core.sharding import read_shard_info

            for part in parts:  # each part's own run directory (replies + report), now merged
                shutil.rmtree(read_shard_info(part)["part_run_dir"], ignore_errors=True)
        for part in parts:
            info = shard_info_path(part)
            if part.is_dir():
                shutil.rmtree(part)
            else:
                part.unlink()
                info.unlink(missing_ok=True)
    print(f"merged {len(parts)} {kind} shards into {args.out}", file=sys.stderr)
    return 0
