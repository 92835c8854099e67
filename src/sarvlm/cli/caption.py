"""`sarvlm caption`: captions / VQA answers from a fine-tuned KLIP decoder, scored with sarvlm's metrics."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "caption",
        help="generate captions or VQA answers with a fine-tuned KLIP decoder and score them",
        description=(
            "Generate with the decoder fine-tuned by `sarvlm finetune-caption` (beam search, or greedy with "
            "--num-beams 1) for every example of --data and write OUT/predictions.jsonl (sarvlm's prediction "
            "format). Unless --no-score, score them with the existing metrics: instruction examples through "
            "`sarvlm eval` (OUT/eval/: caption BLEU/ROUGE-L/CIDEr (+METEOR), VQA accuracy per task, FUSAR-KLIP "
            "Table 6 layout); sample records with the caption metrics against their captions (OUT/eval/metrics.json)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="fine-tuned decoder: the run directory or RUN/final")
    p.add_argument(
        "--data", required=True, help="test data: instruction examples (JSONL) or, for captions, sample records"
    )
    p.add_argument("--out", required=True, help="output directory (predictions.jsonl, eval/)")
    p.add_argument("--tasks", default=None, help="VQA: comma-separated example tasks (default: the six KLIP types)")
    p.add_argument(
        "--text-field",
        default=None,
        help="caption style: of the sample records' reference captions or of the caption examples to answer "
        "(default: all)",
    )
    p.add_argument("--num-beams", type=int, default=None, help="beams (1 = greedy; default 3)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="generation budget (default 100 caption, 10 vqa)")
    p.add_argument("--min-new-tokens", type=int, default=None, help="minimum length (default 5 caption, 1 vqa)")
    p.add_argument("--batch-size", type=int, default=16, help="images per generation batch")
    p.add_argument("--meteor", action="store_true", help="also compute METEOR (pycocoevalcap's jar; needs java)")
    p.add_argument("--no-score", action="store_true", help="only write the predictions")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sarvlm.core.errors import InputError
    from sarvlm.foundation.decoder_data import _first_row
    from sarvlm.foundation.finetune_decoder import predict_decoder, score_record_captions

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise InputError(f"{out}: output directory exists and is not empty; use --overwrite to replace it")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    try:
        preds = predict_decoder(
            args.model,
            args.data,
            out / "predictions.jsonl",
            tasks=tasks,
            text_field=args.text_field,
            num_beams=args.num_beams,
            max_new_tokens=args.max_new_tokens,
            min_new_tokens=args.min_new_tokens,
            batch_size=args.batch_size,
        )
    except BaseException:
        if created:  # nothing half-written: the directory this call made goes again
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        raise
    msg = f"wrote {len(preds)} predictions to {out / 'predictions.jsonl'}"
    if not args.no_score:
        if "messages" in (_first_row(Path(args.data)) or {}):
            from sarvlm.eval.evaluate import evaluate
            from sarvlm.foundation.finetune_decoder import answered_examples

            # score against the examples the model's task answers (a file may mix caption and VQA examples)
            data = answered_examples(args.data, {p["id"] for p in preds}, out / "predictions.jsonl")
            metrics = evaluate(out / "predictions.jsonl", data, out / "eval", meteor=args.meteor, overwrite=True)
            tasks_scored = metrics["tasks"]
        else:
            tasks_scored = {"caption": score_record_captions(preds, args.data, out / "eval", args.text_field)}
        parts = []
        for name, m in sorted(tasks_scored.items()):
            if not isinstance(m, dict):
                continue
            for key in ("cider", "bleu_4", "accuracy", "top1"):
                if isinstance(m.get(key), (int, float)):
                    parts.append(f"{name} {key} {100 * m[key]:.1f}")
                    break
        msg += f"; scored -> {out / 'eval'}" + (f" ({', '.join(parts)})" if parts else "")
    print(msg)
    return 0
