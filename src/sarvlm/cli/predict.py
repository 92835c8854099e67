"""`sarvlm predict --model PATH --data TEST.jsonl --out PREDICTIONS.jsonl`: batched, resumable answers."""

from __future__ import annotations

import argparse
import sys

from sarvlm.cli.ask import add_generation_args


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict",
        help="answer every example of a built dataset split (resumable)",
        description="Batched generation over instruction examples with the cached priors; writes one "
        "prediction per example (id, task, prediction, parsed). Rerunning after an interruption "
        "skips the ids already answered; the output is written atomically in dataset order.",
    )
    p.add_argument(
        "--model", required=True, help="model directory, adapter directory, or tiny-qwen2.5-vl / tiny-qwen3-vl"
    )
    p.add_argument("--data", required=True, metavar="TEST.jsonl", help="instruction examples (e.g. DATA/test.jsonl)")
    p.add_argument("--out", required=True, metavar="PREDICTIONS.jsonl")
    p.add_argument("--priors", metavar="DIR", help="prior cache built by `sarvlm priors` (default: no priors)")
    p.add_argument(
        "--allow-missing-priors", action="store_true", help="run samples missing from the cache without a prior"
    )
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--limit", type=int, default=None, help="only the first K examples")
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="answer only the K-th of N contiguous blocks of batches (K from 0) into STEM.shard-K-of-N.jsonl; "
        "`sarvlm merge PREDICTIONS.jsonl` joins the parts (under `accelerate launch` each rank is a shard "
        "and rank 0 merges)",
    )
    p.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept example image paths leaving the dataset's image root (manifest image_root or the JSONL folder)",
    )
    add_generation_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.inference.predict import predict

    summary = predict(
        args.model,
        args.data,
        args.out,
        priors_dir=args.priors,
        batch_size=args.batch_size,
        limit=args.limit,
        max_new_tokens=args.max_new_tokens,
        do_sample=args.do_sample,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        num_beams=args.num_beams,
        seed=args.seed,
        dtype=args.dtype,
        device=args.device,
        attention=args.attention,
        allow_missing_priors=args.allow_missing_priors,
        shard=args.shard,
        allow_outside_root=args.allow_outside_root,
    )
    if summary.placement:
        print(f"ran on {summary.placement}", file=sys.stderr)
    print(
        f"{summary.out}: {summary.generated} answered, {summary.skipped} already done, {summary.total} examples",
        file=sys.stderr,
    )
    return 0
