"""`sarvlm probe`: linear probe and k-NN on frozen KLIP image features."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "probe",
        help="linear probe + k-NN classification on frozen KLIP image features",
        description="Extract frozen image features, fit a logistic-regression probe and a k-NN classifier on the "
        "train split (record `split`, else a stratified 50/50 split) and report top-1/top-3 on the test split. "
        "See docs/foundation.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model directory (RUN/final)")
    p.add_argument("--data", required=True, help="sample records (JSONL)")
    p.add_argument("--label-field", default="meta.kind", help="record field holding the class")
    p.add_argument("--features", choices=["itc", "cls"], default="itc", help="ITC embedding or the ViT [CLS] state")
    p.add_argument("--k", type=int, default=5, help="neighbours for k-NN")
    p.add_argument("--seed", type=int, default=0, help="seed of the 50/50 split when records have no split")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--text-field", default="structured", help="caption style (records must have it)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty report directory")
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.core.errors import InputError
    from sarvlm.foundation.tasks import run_probe

    if args.k <= 0:
        raise InputError(f"--k must be positive, got {args.k}")
    res = run_probe(
        args.model,
        args.data,
        args.out,
        label_field=args.label_field,
        features=args.features,
        k=args.k,
        seed=args.seed,
        text_field=args.text_field,
        overwrite=args.overwrite,
    )
    print(
        f"probe ({res['train']} train / {res['test']} test) -> {args.out}: linear top-1 {res['linear']['top1']:.1f}% "
        f"top-3 {res['linear']['top3']:.1f}%, {res['knn']['k']}-NN top-1 {res['knn']['top1']:.1f}% "
        f"(majority class {res['chance_top1']:.1f}%)"
    )
    return 0
