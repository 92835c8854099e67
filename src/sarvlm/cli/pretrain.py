"""`sarvlm pretrain`: pretrain the FUSAR-KLIP image-text foundation model (optionally with SCIO)."""

from __future__ import annotations

import argparse

from sarvlm.core.errors import ConfigurationError


def _set_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set needs KEY=VALUE, got {text!r}")
    import yaml

    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain the KLIP SAR image-text foundation model (ITC + ITM + MLM, optional SCIO)",
        description=(
            "Pretrain a BLIP-style SAR image-text model (FUSAR-KLIP) on sample records whose captions carry "
            "the FUSAR-GEOVL 8-field structure. Runs on Accelerate (CPU, or `accelerate launch` on GPUs, bf16). "
            "Writes RUN/loss.csv+png, resumable RUN/checkpoint, RUN/final and with --scio RUN/scio/. "
            "See docs/foundation.md."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--config",
        default="tiny-klip",
        help="named config (tiny-klip, tiny-klip-fragments, base-klip) or a YAML/JSON file",
    )
    p.add_argument("--data", required=True, help="sample records (JSONL)")
    p.add_argument("--out", required=True, help="run directory")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None, help="optimizer steps")
    g.add_argument("--epochs", type=int, default=None, help="epochs (default: the config's train.epochs)")
    p.add_argument("--scio", action="store_true", help="run SCIO: screening and reconstruction phases (Algorithm 1)")
    p.add_argument("--seed", type=int, default=0, help="seed (batches, masking, hard negatives, initial weights)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from RUN/checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start again in a non-empty run directory")
    p.add_argument("--text-field", default="structured", help="caption style to train on (fragments = its fields)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (config default)")
    p.add_argument(
        "--set", type=_set_value, action="append", default=[], metavar="KEY=VALUE", help="override a config value"
    )
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.core.atomic import removed_if_left_empty
    from sarvlm.foundation.config import load_config
    from sarvlm.foundation.pretrain import final_loss, pretrain

    if args.checkpoint_every is not None and args.checkpoint_every <= 0:
        raise ConfigurationError("--checkpoint-every must be positive")
    config = load_config(args.config, dict(args.set))
    # a run that fails before its first checkpoint (an unreadable image, ...) leaves no empty RUN behind
    with removed_if_left_empty(args.out):
        result = pretrain(
            config,
            args.data,
            args.out,
            steps=args.steps,
            epochs=args.epochs,
            scio=args.scio,
            seed=args.seed,
            resume=args.resume,
            overwrite=args.overwrite,
            text_field=args.text_field,
            checkpoint_every=args.checkpoint_every,
        )
    import csv

    with open(result.run_dir / "loss.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    msg = f"pretrained {result.steps} steps -> {result.final_dir} (final loss {final_loss(rows):.3f})"
    if result.resumed_from:
        msg += f", resumed at step {result.resumed_from}"
    if result.scio:
        a = result.scio["actions"]
        msg += f"; SCIO kept {a['kept']}, dropped {a['dropped']}, reconstructed {a['reconstructed']}"
        q = result.scio.get("screening_vs_truth")
        if q and q["precision"] is not None:
            msg += f"; screening precision {q['precision']:.2f} recall {q['recall']:.2f} vs chance {q['chance_precision']:.2f}"
    print(msg)
    return 0
