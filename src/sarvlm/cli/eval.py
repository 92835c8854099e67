"""`sarvlm eval`: score predictions against test data, or compare report directories.

sarvlm eval PREDICTIONS.jsonl --data TEST.jsonl --out REPORT_DIR [--judge MODEL[@URL] ...]
sarvlm eval compare REPORT_DIR... [--names a,b,...] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="score predictions (papers' metrics, LLM judges) or compare reports",
        description="Score PREDICTIONS.jsonl against TEST.jsonl and write metrics.json, report.md and plots; "
        "or `sarvlm eval compare REPORT_DIR...` to put runs side by side (mean ± std over runs sharing "
        "a name).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="PREDICTIONS.jsonl | compare REPORT_DIR...",
        help="the predictions file, or the word 'compare' followed by report directories",
    )
    p.add_argument("--data", help="test data JSONL (InstructionExample rows) the predictions answer")
    p.add_argument("--out", help="report directory to write (for compare: where compare.md/json/png go)")
    p.add_argument("--names", help="compare: comma-separated run names, one per report directory (same name = seeds)")
    p.add_argument("--run-name", help="name of this run in the report (default: the --out directory name)")
    p.add_argument(
        "--judge",
        action="append",
        default=[],
        metavar="MODEL[@BASE_URL]",
        help="LLM judge on an OpenAI-compatible endpoint (repeat for several judges); key from "
        "SARVLM_JUDGE_API_KEY or OPENAI_API_KEY, URL default from SARVLM_JUDGE_BASE_URL/OPENAI_BASE_URL",
    )
    p.add_argument("--judge-cache", help="judge reply cache directory (default: REPORT_DIR.judge-cache next to --out)")
    p.add_argument("--judge-concurrency", type=int, default=4, help="requests in flight per judge (default 4)")
    p.add_argument("--judge-retries", type=int, default=4, help="retries per request, exponential backoff (default 4)")
    p.add_argument(
        "--five-dimensions",
        action="store_true",
        help="score caption/dialogue/VQA answers with LunarOS-Mini's five dimensions (needs --judge)",
    )
    p.add_argument(
        "--vqa-protocol",
        choices=("exact", "sarlang1m", "sarlang1m-strict"),
        default="exact",
        help="open VQA: normalised exact match; SARLANG-1M's released Evaluate_VQA.py (substring first, then "
        "exact yes/no/0-99, then the judge: use --judge gpt-4o-mini as the script does); or sarlang1m-strict, "
        "sarvlm's stricter reading (docs/protocols.md)",
    )
    p.add_argument(
        "--tokenizer",
        choices=("python", "java", "none"),
        default="python",
        help="caption tokenizer: pure-Python PTB (default), pycocoevalcap's Java PTB, or none",
    )
    p.add_argument("--meteor", action="store_true", help="also compute METEOR (pycocoevalcap's jar; needs java)")
    p.add_argument("--spice", action="store_true", help="also compute SPICE (needs its Stanford CoreNLP jars)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty report directory")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sarvlm.core.errors import SarvlmError

    if args.inputs[0] == "compare":
        from sarvlm.eval.report import compare, render_compare

        dirs = args.inputs[1:]
        if not dirs:
            raise SarvlmError("eval compare: give at least one report directory")
        names = [n.strip() for n in args.names.split(",")] if args.names else None
        result = compare(dirs, names=names, out=args.out)
        sys.stdout.write(render_compare(result))
        return 0

    if len(args.inputs) != 1:
        raise SarvlmError(f"eval: expected one predictions file, got {len(args.inputs)} (did you mean `eval compare`?)")
    if not args.data:
        raise SarvlmError("eval: --data TEST.jsonl is required")
    if not args.out:
        raise SarvlmError("eval: --out REPORT_DIR is required")
    if args.five_dimensions and not args.judge:
        raise SarvlmError("eval: --five-dimensions needs at least one --judge")
    from sarvlm.eval.evaluate import evaluate
    from sarvlm.eval.judges import judges_from_spec

    out_path = Path(args.out)
    if out_path.exists() and not out_path.is_dir():
        raise SarvlmError(f"{out_path}: exists and is not a directory (--out names the report directory)")
    if out_path.exists() and any(out_path.iterdir()) and not args.overwrite:
        # Checked before any scoring or judge request is made.
        raise SarvlmError(f"{out_path}: output directory exists and is not empty (use --overwrite)")

    judges = None
    if args.judge:
        out = Path(args.out)
        cache = Path(args.judge_cache) if args.judge_cache else out.with_name(out.name + ".judge-cache")
        judges = judges_from_spec(
            args.judge, cache_dir=cache, concurrency=args.judge_concurrency, max_retries=args.judge_retries
        )
    metrics = evaluate(
        args.inputs[0],
        args.data,
        args.out,
        judge=judges,
        meteor=args.meteor,
        spice=args.spice,
        tokenizer=args.tokenizer,
        vqa_protocol=args.vqa_protocol,
        five_dimensions=args.five_dimensions,
        run_name=args.run_name,
        plots=not args.no_plots,
        overwrite=args.overwrite,
    )
    c = metrics["counts"]
    print(
        f"scored {c['examples']} examples ({c['missing']} without prediction, {c['unknown_ids']} unknown ids) "
        f"-> {args.out}/metrics.json, report.md"
    )
    return 0
