"""`sarvlm annotate SAMPLES.jsonl --out ANNOTATED.jsonl --prompt P`: LLM-assisted captions and dialogues."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROMPTS = ("hcot-target", "hcot-marine", "hcot-terrain", "geovl", "lunaros", "sarlang-transfer", "dialogue")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "annotate",
        help="add LLM-written captions (HCoT, GEOVL, LunarOS, SARLANG transfer) or dialogues to sample records",
        description="Fill a versioned prompt template (one per paper pipeline) with what each record knows "
        "(objects, land cover, sensor, place, year; the image as a data URL), ask an OpenAI-compatible "
        "endpoint — or, offline, the annotation-grounded writer (--endpoint local, the default) or "
        "SmolLM2-135M in-process (--endpoint local-llm) — validate the answer against the annotations, "
        "and write the records with the caption/dialogue added. Replies are cached in the run directory "
        "(reruns cost nothing, interrupted runs resume); a Markdown + JSON run report is written there. "
        "See docs/annotation.md.",
    )
    p.add_argument("samples", metavar="SAMPLES.jsonl", help="sample records (JSONL)")
    p.add_argument("--out", metavar="ANNOTATED.jsonl", help="output records (required unless --dry-run)")
    p.add_argument(
        "--prompt", required=True, metavar="PROMPT", help=f"one of {', '.join(PROMPTS)}, or a template .yaml file"
    )
    p.add_argument(
        "--endpoint",
        default="local",
        help="local (offline writer, default), local-llm (SmolLM2-135M in-process, text only), or the base URL "
        "of an OpenAI-compatible server, e.g. http://localhost:8000/v1",
    )
    p.add_argument("--model", help="model name at the endpoint (required with a URL)")
    p.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the API key (default OPENAI_API_KEY; a local server may need none)",
    )
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    p.add_argument("--max-requests", type=int, metavar="N", help="request budget for this run (retries included)")
    p.add_argument("--max-retries", type=int, default=4, help="retries of timeouts/429/5xx (default 4)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one reply (default 120)")
    p.add_argument("--max-tokens", type=int, default=1024, help="completion tokens per reply (default 1024)")
    p.add_argument("--max-reply-chars", type=int, default=20000, help="longer replies are unparsable (default 20000)")
    p.add_argument(
        "--response-format",
        default="auto",
        choices=("auto", "json_schema", "json_object", "none"),
        help="structured outputs: strict JSON schema, JSON mode, or none (tolerant parser); auto tries the "
        "schema and falls back when the server rejects it (default auto)",
    )
    p.add_argument("--image-size", type=int, default=512, help="longer side of the images sent, pixels (default 512)")
    p.add_argument(
        "--on-conflict",
        default="flag",
        choices=("keep", "flag", "drop"),
        help="answers contradicting the annotations: keep them, keep them marked flagged, or drop them "
        "(default flag); every check is stored with the caption either way",
    )
    p.add_argument("--price-in", type=float, default=0.0, help="price per million prompt tokens, for the cost")
    p.add_argument("--price-out", type=float, default=0.0, help="price per million completion tokens")
    p.add_argument("--run-dir", help="run directory: replies cache + report (default <out stem>_annotate)")
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="annotate only the K-th of N contiguous blocks of records (K from 0) into STEM.shard-K-of-N.jsonl "
        "with its own run directory; `sarvlm merge OUT` then writes OUT and the run directory as one run would",
    )
    p.add_argument("--dry-run", action="store_true", help="send nothing, write nothing: show the first request")
    p.add_argument("--resume", action="store_true", help="continue an existing output (annotated records kept)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.annotate.client import Prices, make_endpoint
    from sarvlm.annotate.run import AnnotateOptions, annotate_samples, describe_request
    from sarvlm.annotate.templates import load_template
    from sarvlm.core.errors import InputError

    if not args.out and not args.dry_run:
        raise InputError("--out is required (or use --dry-run)")
    for name in ("concurrency", "image_size", "max_tokens", "max_reply_chars"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_requests is not None and args.max_requests < 0:
        raise InputError("--max-requests must not be negative")
    from sarvlm.core.sharding import Shard

    shard = Shard.parse(args.shard)  # a bad K/N fails before any endpoint is built
    tpl = load_template(args.prompt)
    prices = Prices(args.price_in, args.price_out)
    endpoint = make_endpoint(
        args.endpoint,
        args.model,
        api_key=os.environ.get(args.api_key_env, ""),
        concurrency=args.concurrency,
        max_requests=args.max_requests,
        max_retries=args.max_retries,
        timeout=args.timeout,
        max_tokens=args.max_tokens,
        response_format=args.response_format,
        prices=prices,
    )
    opts = AnnotateOptions(
        on_conflict=args.on_conflict,
        image_size=args.image_size,
        max_reply_chars=args.max_reply_chars,
        concurrency=args.concurrency if endpoint.kind == "openai" else 1,
        dry_run=args.dry_run,
        resume=args.resume,
        overwrite=args.overwrite,
        run_dir=Path(args.run_dir) if args.run_dir else None,
        prices=prices,
    )
    report = annotate_samples(args.samples, None if args.dry_run else args.out, tpl, endpoint, opts, shard=shard)
    d = report.to_dict()
    status = ", ".join(f"{k} {v}" for k, v in d["status"].items() if v)
    if args.dry_run:
        print(describe_request(report.first_request))
        print(
            f"dry run: {d['records']} records; {d['status'].get('would_request', 0)} requests needed, "
            f"{d['cache_hits']} cached ({status})",
            file=sys.stderr,
        )
        return 0
    print(
        f"{d['records']} records: {status}; {d['requests_sent']} requests, {d['cache_hits']} cache hits, "
        f"{d['prompt_tokens'] + d['completion_tokens']} tokens, cost {d['cost']:.4f}",
        file=sys.stderr,
    )
    from sarvlm.annotate.run import default_run_dir

    out = Path(args.out)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(out)
    if shard is not None:
        out, run_dir = shard.output_path(out, directory=False), shard.output_path(run_dir, directory=True)
    print(f"wrote {out} and {run_dir / 'report.md'}", file=sys.stderr)
    return 0
