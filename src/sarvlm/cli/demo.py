"""`sarvlm demo`: the whole FUSAR-GPT pipeline on the built-in synthetic SAR world."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on the synthetic SAR world, with the FUSAR-GPT ablation",
        description=(
            "Generate the synthetic SAR world, preprocess it, build instruction data, sample AlphaEarth priors, "
            "train a tiny Qwen2.5-VL with the fusar-gpt recipe and its ablation grid (stage 2 only; stage 1 + 2; "
            "stage 2 + TLM; full: the pairs the decision rule compares), predict on the test split, evaluate every "
            "run, decide whether the prior helps (paired bootstrap) and write DIR/report.md, DIR/metrics.json and "
            "plots. Offline; CPU, or CUDA with --preset gpu. Re-running into the same directory reuses finished steps."
        ),
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument(
        "--quick", action="store_true", help="small smoke-test run (< 2 minutes): fewer scenes, steps, runs and seeds"
    )
    p.add_argument(
        "--preset",
        choices=("quick", "default", "gpu"),
        default=None,
        help="run size: quick (= --quick), default (tiny model + BPE tokenizer, 3 seeds, < 10 min on 2 cores), "
        "gpu (480 scenes, 256-wide model, more steps: for one GPU)",
    )
    p.add_argument("--seeds", type=int, default=None, help="training seeds per ablation run (default 3, --quick 1)")
    p.add_argument(
        "--scenes", type=int, default=None, help="scenes of the synthetic world (default: the preset's; at least 10)"
    )
    p.add_argument(
        "--steps-scale",
        type=float,
        default=None,
        metavar="F",
        help="multiply the preset's training steps (base, stage 1, stage 2) by F, e.g. 0.01 for a smoke test of --preset gpu",
    )
    p.add_argument("--fresh", action="store_true", help="recompute every step instead of reusing finished ones")
    p.add_argument(
        "--foundation",
        action="store_true",
        help="run only the FUSAR-KLIP section instead: tiny-klip pretrained with and without SCIO on the synthetic "
        "world with corrupted GEOVL captions, retrieval / zero-shot / linear probe / SCIO screening with 95%% "
        "intervals over seeds (default --out runs/demo-foundation; see docs/foundation.md)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.core.errors import SarvlmError
    from sarvlm.demo.config import demo_config
    from sarvlm.demo.pipeline import run_demo

    if args.seeds is not None and args.seeds < 1:
        raise SarvlmError(f"--seeds must be >= 1, got {args.seeds}")
    if args.foundation:
        return _run_foundation(args)
    cfg = demo_config(args.quick, args.seeds, args.preset, scenes=args.scenes, steps_scale=args.steps_scale)
    run_demo(args.out, cfg, fresh=args.fresh)
    return 0


def _run_foundation(args: argparse.Namespace) -> int:
    from sarvlm.core.errors import SarvlmError
    from sarvlm.demo.foundation import foundation_demo_config, run_foundation_demo

    if args.seeds is not None and args.seeds < 2:
        raise SarvlmError("--foundation needs --seeds >= 2 (the intervals are over seeds)")
    out = "runs/demo-foundation" if args.out == "runs/demo" else args.out
    run_foundation_demo(out, foundation_demo_config(args.quick or args.preset == "quick", args.seeds), fresh=args.fresh)
    return 0
