"""`sarvlm ablate`: the FUSAR-GPT stage ablation (Table 9) and fusion variants (Table 6) in one command."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from sarvlm.training.ablation import RUN_NAMES

    p = subparsers.add_parser(
        "ablate",
        help="train the FUSAR-GPT ablation grid (stage and fusion variants)",
        description="Train the FUSAR-GPT ablation runs (" + ", ".join(RUN_NAMES) + ") as separate run "
        "directories under --out, indexed by OUT/runs.json for `sarvlm eval compare` and the demo.",
    )
    p.add_argument("--model", required=True, help="model directory or tiny model name")
    p.add_argument("--data", required=True, help="built dataset directory")
    p.add_argument("--priors", help="prior cache directory (used by the runs with a fusion)")
    p.add_argument("--out", required=True, help="directory of the ablation runs")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds per run (0..N-1; default 1)")
    p.add_argument("--runs", help="comma-separated subset of runs (default: all)")
    p.add_argument("--recipe", default="fusar-gpt", help="base recipe (default fusar-gpt)")
    p.add_argument("--max-steps", type=int, help="optimizer steps per stage (overrides epochs)")
    p.add_argument("--epochs", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", default=[], help="recipe field for every run (repeatable)"
    )
    p.add_argument("--resume", action="store_true", help="continue interrupted runs")
    p.add_argument("--overwrite", action="store_true", help="replace existing run directories")
    p.add_argument("--allow-missing-priors", action="store_true")
    p.add_argument("--deepspeed", help="'zero2' or a DeepSpeed JSON file")
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.training.ablation import RUNS_FILE, run_ablation
    from sarvlm.training.recipe import parse_set_options

    runs = [r.strip() for r in args.runs.split(",") if r.strip()] if args.runs else None
    result = run_ablation(
        args.model,
        args.data,
        args.out,
        priors=args.priors,
        seeds=args.seeds,
        runs=runs,
        recipe=args.recipe,
        overrides=parse_set_options(args.set),
        max_steps=args.max_steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        resume=args.resume,
        overwrite=args.overwrite,
        allow_missing_priors=args.allow_missing_priors,
        deepspeed=args.deepspeed,
    )
    for name, dirs in result.items():
        print(f"{name:14s} {', '.join(str(d) for d in dirs)}")
    print(f"index: {args.out}/{RUNS_FILE}")
    return 0
