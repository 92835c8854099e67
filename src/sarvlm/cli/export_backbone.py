"""`sarvlm export-backbone`: the KLIP image tower as a plain ViTModel, optionally with a segmentation head."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export-backbone",
        help="export the KLIP image tower as a transformers ViTModel (+ optional segmentation head check)",
        description="Write OUT as a stand-alone transformers ViTModel directory with handoff.json (input "
        "normalisation, token layout, the detection hand-off). With --seg-data, also train a linear "
        "segmentation head on the frozen tower (half of the records) and report OA / mIoU on the other half "
        "(OUT/segmentation.json). See docs/foundation.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model directory (RUN/final)")
    p.add_argument("--out", required=True, help="backbone directory")
    p.add_argument("--seg-data", default=None, help="sample records with land-cover masks for the head check")
    p.add_argument("--seg-steps", type=int, default=200, help="training steps of the segmentation head")
    p.add_argument("--seed", type=int, default=0, help="seed of the head and the 50/50 split")
    p.add_argument("--text-field", default="structured", help="caption style the records carry")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from sarvlm.core.atomic import atomic_open
    from sarvlm.core.errors import InputError
    from sarvlm.foundation.backbone import export_backbone

    if args.seg_steps <= 0:
        raise InputError("--seg-steps must be positive")
    info = export_backbone(args.model, args.out, overwrite=args.overwrite)
    msg = f"exported the image tower to {args.out} (tokens {info['output']['last_hidden_state']})"
    if args.seg_data:
        import torch

        from sarvlm.eval.segmentation import segmentation_scores
        from sarvlm.foundation.segmentation import SegmentationModel, load_masks, predict_masks, split_half, train_head
        from sarvlm.foundation.tasks import load_model_and_data

        torch.manual_seed(args.seed)
        model, items, images = load_model_and_data(args.model, args.seg_data, args.text_field)
        v = model.config.vision
        masks, classes = load_masks(items, v.image_size)
        seg = SegmentationModel(model.visual_encoder, v.hidden_size, v.patch_size, max(classes) + 1)
        tr, te = split_half(len(items), args.seed)
        losses = train_head(seg, images[tr], masks[tr], steps=args.seg_steps, seed=args.seed)
        pred = predict_masks(seg, images[te])
        names = [classes.get(i, str(i)) for i in range(max(classes) + 1)]
        scores = segmentation_scores(zip(masks[te].numpy(), pred), len(names), class_names=names)
        base = segmentation_scores(
            zip(
                masks[te].numpy(), [torch.full_like(masks[0], int(masks[tr].flatten().mode().values)).numpy()] * len(te)
            ),
            len(names),
            class_names=names,
        )
        result = {
            **scores,
            "majority_class_oa": base["oa"],
            "majority_class_miou": base["miou"],
            "train": len(tr),
            "test": len(te),
            "steps": args.seg_steps,
            "final_loss": losses[-1],
            "resolution": v.image_size,
            "head": "linear on frozen patch tokens, bilinear upsampling",
        }
        with atomic_open(f"{args.out}/segmentation.json") as fh:
            json.dump(result, fh, indent=2)
            fh.write("\n")
        msg += f"; segmentation head OA {100 * scores['oa']:.1f}% mIoU {100 * scores['miou']:.1f}% (majority class OA {100 * base['oa']:.1f}%)"
    print(msg)
    return 0
