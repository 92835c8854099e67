"""`sarvlm zeroshot`: zero-shot classification with a KLIP model and prompt templates."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "zeroshot",
        help="zero-shot scene/target classification with a pretrained KLIP model",
        description="Classify each image by ITC similarity with class prompts (templates are data: "
        "sarvlm/foundation/configs/zeroshot-templates.yaml or --templates). Reports top-1/top-3, a per-class "
        "table and a confusion matrix PNG in OUT. See docs/foundation.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model directory (RUN/final)")
    p.add_argument("--data", required=True, help="sample records (JSONL)")
    p.add_argument(
        "--classes",
        required=True,
        help="comma-separated class names, e.g. port,coast,river,airport,rural; NAME=WORDS puts WORDS "
        "into the templates instead of the name (e.g. coast=a coastal zone: the captions' own words)",
    )
    p.add_argument("--label-field", default="meta.kind", help="record field holding the true class")
    p.add_argument("--templates", default=None, help="YAML file with a 'templates' list (each with one {})")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--text-field", default="structured", help="caption style (records must have it)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty report directory")
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.foundation.tasks import run_zeroshot
    from sarvlm.foundation.zeroshot import class_descriptions, parse_classes

    classes = parse_classes(args.classes)
    res = run_zeroshot(
        args.model,
        args.data,
        args.out,
        classes,
        label_field=args.label_field,
        templates=args.templates,
        text_field=args.text_field,
        overwrite=args.overwrite,
        descriptions=class_descriptions(args.classes),
    )
    print(
        f"zero-shot on {res['n']} images -> {args.out}: top-1 {res['top1']:.1f}%, top-3 {res['top3']:.1f}% "
        f"(majority class {res['chance_top1']:.1f}%, uniform {res['uniform_top1']:.1f}%)"
    )
    if res["unseen_words"]:
        print(
            "note: the model's tokenizer spells these prompt words letter by letter (never seen in "
            f"pretraining): {', '.join(res['unseen_words'])}; describe classes in the captions' words (NAME=WORDS)"
        )
    return 0
