"""`sarvlm export-backbone`: the KLIP image tower as a plain ViTModel, optionally with a segmentation head."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export-backbone",
        help="export the KLIP image tower as a transformers ViTModel (+ optional segmentation head check)",
        description="Write OUT as a stand-alone transformers ViTModel directory with handoff.json (input "
        "normalisation, token layout, the detection hand-off). With --seg-data, also train a segmentation "
        "head (--head linear or Segmenter's mask-transformer) on the frozen tower (half of the records) and report OA / mIoU on the other half "
        "(OUT/segmentation.json, the head in OUT/seg_head.*). See docs/foundation.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model directory (RUN/final)")
    p.add_argument("--out", required=True, help="backbone directory")
    p.add_argument("--seg-data", default=None, help="sample records with land-cover masks for the head check")
    p.add_argument("--seg-steps", type=int, default=200, help="training steps of the segmentation head")
    p.add_argument(
        "--head",
        choices=("linear", "mask-transformer"),
        default="linear",
        help="segmentation decoder: a linear classifier per patch, or Segmenter's mask transformer",
    )
    p.add_argument(
        "--seg-lr", type=float, default=None, help="head learning rate (default 1e-2 linear, 1e-3 mask-transformer)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the head and the 50/50 split")
    p.add_argument("--text-field", default="structured", help="caption style the records carry")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.foundation.backbone import export_backbone

    info = export_backbone(
        args.model,
        args.out,
        overwrite=args.overwrite,
        seg_data=args.seg_data,
        seg_steps=args.seg_steps,
        seg_head=args.head,
        seg_lr=args.seg_lr,
        seed=args.seed,
        text_field=args.text_field,
    )
    msg = f"exported the image tower to {args.out} (tokens {info['output']['last_hidden_state']})"
    if "segmentation" in info:
        scores = info["segmentation"]
        msg += (
            f"; {args.head} segmentation head OA {100 * scores['oa']:.1f}% mIoU {100 * scores['miou']:.1f}% "
            f"(majority class OA {100 * scores['majority_class_oa']:.1f}%)"
        )
    print(msg)
    return 0
