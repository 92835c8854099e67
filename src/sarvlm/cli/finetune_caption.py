"""`sarvlm finetune-caption`: fine-tune the KLIP image-grounded decoder for captioning or VQA (Table 5)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "finetune-caption",
        help="fine-tune the KLIP decoder for captioning or VQA (FUSAR-KLIP Table 5 settings)",
        description=(
            "Fine-tune the image-grounded text decoder of a pretrained KLIP model (RUN/final of `sarvlm "
            "pretrain`) on captions (--task caption: `caption` examples of `sarvlm build`, or sample records' "
            "captions) or on the six KLIP VQA types (--task vqa: count, classify_box, position, landform_main, "
            "landform_all, landform_region examples of `sarvlm build`; BLIP's question encoder + answer "
            "decoder). Defaults are FUSAR-KLIP Table 5: caption 100 tokens, 12 epochs, lr 1e-5; VQA 35 tokens, "
            "12 epochs, lr 2e-5; AdamW, weight decay 0.05, cosine decay. Runs on Accelerate; writes "
            "RUN/loss.csv+png, a resumable RUN/checkpoint and RUN/final. Generate and score with `sarvlm "
            "caption`. See docs/foundation.md."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="pretrained KLIP model directory (RUN/final of sarvlm pretrain)")
    p.add_argument(
        "--data", required=True, help="training data: instruction examples (JSONL) or, for captions, sample records"
    )
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--task", choices=("caption", "vqa"), default="caption", help="what the decoder learns")
    p.add_argument(
        "--tasks", default=None, help="VQA: comma-separated example tasks to train on (default: the six KLIP types)"
    )
    p.add_argument(
        "--text-field",
        default=None,
        help="caption style: of sample records (default: the first caption) or of caption examples "
        "(params.style; default: all)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None, help="optimizer steps (instead of --epochs)")
    g.add_argument("--epochs", type=int, default=None, help="epochs (default: Table 5, 12)")
    p.add_argument(
        "--lr", type=float, default=None, help="peak learning rate (default: Table 5, 1e-5 caption / 2e-5 vqa)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="batch size per process (default 32)")
    p.add_argument("--max-tokens", type=int, default=None, help="target token budget (default: Table 5, 100 / 35)")
    p.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (default 0.05)")
    p.add_argument("--label-smoothing", type=float, default=None, help="label smoothing of the LM loss (default 0)")
    p.add_argument(
        "--checkpoint-every", type=int, default=None, help="steps between resumable checkpoints (default 500)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the batch order")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from RUN/checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start again in a non-empty run directory")
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.foundation.finetune_decoder import default_settings, finetune_decoder

    settings = default_settings(
        args.task,
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        checkpoint_every=args.checkpoint_every,
    )
    result = finetune_decoder(
        args.model,
        args.data,
        args.out,
        task=args.task,
        steps=args.steps,
        settings=settings,
        tasks=[t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None,
        text_field=args.text_field,
        seed=args.seed,
        resume=args.resume,
        overwrite=args.overwrite,
    )
    msg = f"fine-tuned the {args.task} decoder for {result.steps} steps -> {result.final_dir} (final loss {result.final_loss:.3f})"
    if result.resumed_from:
        msg += f", resumed at step {result.resumed_from}"
    print(msg)
    return 0
