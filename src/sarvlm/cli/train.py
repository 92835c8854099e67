"""`sarvlm train`: run a two-stage (or one-stage) fine-tuning recipe."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="fine-tune a model with a recipe (fusar-gpt, lunaros, sarlang-lora)",
        description="Fine-tune a vision-language model with a recipe. Recipes are YAML shipped with sarvlm "
        "(--list-recipes) or your own file. Per-stage flags (--lr, --epochs, ...) apply to every stage "
        "that runs; --set stage2.lr=2e-5 targets one stage. Multi-GPU: accelerate launch "
        "--config_file $(sarvlm train --config-path accelerate) -m sarvlm.cli.main train ... --deepspeed zero2",
    )
    p.add_argument("--list-recipes", action="store_true", help="list the shipped recipes and exit")
    p.add_argument(
        "--config-path", choices=("deepspeed", "accelerate"), help="print the path of a shipped config and exit"
    )
    p.add_argument("--show", action="store_true", help="print the resolved recipe (after overrides) and exit")
    p.add_argument("--recipe", help="recipe name or YAML file")
    p.add_argument("--model", help="model directory or tiny model name (tiny-qwen2.5-vl, tiny-qwen3-vl)")
    p.add_argument("--data", help="built dataset directory (train.jsonl, val.jsonl, test.jsonl)")
    p.add_argument("--priors", help="prior cache directory (sarvlm priors); needed by recipes that fuse priors")
    p.add_argument("--out", help="run directory")
    p.add_argument("--stage", default="all", help="which stage(s) to run: 1, 2, a stage name, or all (default)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace whatever --out holds")
    p.add_argument("--merge", action="store_true", help="also save each stage's merged full model (STAGE/merged)")
    p.add_argument(
        "--allow-missing-priors",
        action="store_true",
        help="train samples absent from the prior cache with an empty prior",
    )
    p.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept example images outside the dataset's image root (recorded by build in manifest.json)",
    )
    p.add_argument("--deepspeed", help="'zero2' (shipped ZeRO-2 bf16 config) or a DeepSpeed JSON file")
    g = p.add_argument_group("overrides")
    g.add_argument("--lr", type=float)
    g.add_argument("--epochs", type=float)
    g.add_argument("--max-steps", type=int, help="optimizer steps per stage (overrides epochs)")
    g.add_argument("--batch-size", type=int, help="per-device batch size")
    g.add_argument("--grad-accum", type=int)
    g.add_argument("--lora-r", type=int)
    g.add_argument("--lora-alpha", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--workers", type=int, help="dataloader worker processes (default auto: up to 4 on CUDA, 0 on CPU)")
    g.add_argument(
        "--image-cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="decode and resize each image once, kept in DATA/.sarvlm-cache/images (default on; identical "
        "model inputs, 3 bytes per resized pixel on disk)",
    )
    g.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="any recipe field, e.g. --set stage2.lora.r=16 --set fusion=sum --set max_length=1024 (repeatable)",
    )
    return p


def resolve_stages(recipe, stage: str) -> list[str] | None:  # noqa: ANN001 - Recipe, imported lazily
    """``all`` → None (every stage); ``1``/``2`` → the n-th stage; otherwise a stage name."""
    from sarvlm.core.errors import SarvlmError

    if stage == "all":
        return None
    names = [s.name for s in recipe.stages]
    if stage.isdigit():
        i = int(stage)
        if not 1 <= i <= len(names):
            raise SarvlmError(f"--stage {stage}: recipe {recipe.name} has {len(names)} stage(s)")
        return [names[i - 1]]
    recipe.stage(stage)
    return [stage]


def build_recipe(args: argparse.Namespace):  # noqa: ANN201
    """The recipe named by ``--recipe`` with ``--set`` and the shortcut flags applied."""
    from sarvlm.training.recipe import apply_common_overrides, load_recipe, parse_set_options

    recipe = load_recipe(args.recipe, parse_set_options(args.set))
    return apply_common_overrides(
        recipe,
        lr=args.lr,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        seed=args.seed,
        gradient_checkpointing=args.gradient_checkpointing,
        workers=args.workers,
    )


def run(args: argparse.Namespace) -> int:
    from sarvlm.core.errors import SarvlmError

    if args.list_recipes:
        from sarvlm.training.recipe import list_recipes

        for name, description in list_recipes().items():
            print(f"{name:14s} {description}")
        return 0
    if args.config_path:
        from sarvlm.training.trainer import shipped_config

        print(shipped_config("zero2_bf16.json" if args.config_path == "deepspeed" else "accelerate_multi_gpu.yaml"))
        return 0
    if not args.recipe:
        raise SarvlmError("--recipe is required (see --list-recipes)")
    recipe = build_recipe(args)
    if args.show:
        print(recipe.to_yaml(), end="")
        return 0
    missing = [
        flag for flag, value in (("--model", args.model), ("--data", args.data), ("--out", args.out)) if not value
    ]
    if missing:
        raise SarvlmError(f"{', '.join(missing)} required")
    stages = resolve_stages(recipe, args.stage)
    from sarvlm.training.trainer import train

    result = train(
        recipe,
        model=args.model,
        data=args.data,
        out=args.out,
        priors=args.priors,
        stages=stages,
        resume=args.resume,
        overwrite=args.overwrite,
        merge=args.merge,
        allow_missing_priors=args.allow_missing_priors,
        allow_outside_root=args.allow_outside_root,
        image_cache=args.image_cache,
        deepspeed=args.deepspeed,
    )
    print(f"run directory: {result.run_dir}")
    return 0
