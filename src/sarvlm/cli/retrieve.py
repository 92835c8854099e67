"""`sarvlm retrieve`: image<->text retrieval with a KLIP model (ITC top-k, ITM re-rank)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "retrieve",
        help="image<->text retrieval Recall@1/5/10 with a pretrained KLIP model",
        description="Score every image against every text (ITC, chunked), re-rank each image's and each text's "
        "top-k with ITM, and report BLIP/FUSAR-KLIP recall (txt_r* = image->text, img_r* = text->image, r_mean). "
        "Writes OUT/metrics.json and OUT/similarity.npy. See docs/foundation.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model directory (RUN/final of `sarvlm pretrain`)")
    p.add_argument("--data", required=True, help="sample records (JSONL); one text per image")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--k", type=int, default=16, help="ITC candidates re-ranked by ITM per query")
    p.add_argument("--text-field", default="structured", help="caption style used as the text")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty report directory")
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.foundation.tasks import run_retrieval

    res = run_retrieval(args.model, args.data, args.out, k=args.k, text_field=args.text_field, overwrite=args.overwrite)
    a, b = res["itc"], res["itc+itm"]
    print(
        f"{res['images']} images x {res['texts']} texts -> {args.out}: r_mean ITC {a['r_mean']:.1f}, "
        f"ITC+ITM {b['r_mean']:.1f} (image->text R@1 {b['txt_r1']:.1f}, text->image R@1 {b['img_r1']:.1f}; "
        f"chance R@1 {res['chance']['img_r1']:.1f})"
    )
    return 0
