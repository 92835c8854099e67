"""Run a recipe: stage after stage on Hugging Face ``Trainer`` + PEFT, resumable.

:func:`train` is the Python API behind ``sarvlm train``. Each stage starts from the
previous stage's result (its LoRA merged into the weights, its fully trained modules
in place), freezes what the recipe says, trains with ``transformers.Trainer`` (which
brings Accelerate, DeepSpeed ZeRO-2, bf16, gradient checkpointing, dataloader workers
and checkpoint/resume), and writes its artifacts into the run directory (layout in
:mod:`sarvlm.training.run_dir`). ``RUN_DIR/final`` is a full merged model that
``sarvlm.models.loading.load_model`` and ``sarvlm predict --model RUN_DIR/final`` load.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from sarvlm.core.atomic import atomic_dir, atomic_open, atomic_path
from sarvlm.core.errors import ConfigurationError, InputError, MissingDependency, NotFoundError, SarvlmError
from sarvlm.training.recipe import Recipe, StageSpec, load_recipe
from sarvlm.training.run_dir import (
    CHECKPOINTS,
    RESULT_FILE,
    RUN_FILE,
    discard_unstarted,
    last_checkpoint,
    prepare_run_dir,
    run_identity,
    stage_complete,
    stage_started,
)

FINAL = "final"
DEEPSPEED_CONFIGS = {"zero2": "zero2_bf16.json"}


@dataclass
class TrainResult:
    """Where a run's outputs are."""

    run_dir: Path
    stage_dirs: dict[str, Path] = field(default_factory=dict)
    final: Path | None = None


def shipped_config(name: str) -> Path:
    """Path of a config shipped in ``sarvlm/training/deepspeed`` (``zero2_bf16.json``, ``accelerate_zero2.yaml``)."""
    from importlib import resources

    path = Path(str(resources.files("sarvlm.training") / "deepspeed" / name))
    if not path.is_file():
        raise NotFoundError(f"no shipped config {name!r}")
    return path


def resolve_deepspeed(spec: str | None) -> str | None:
    """``zero2`` → the shipped ZeRO-2 bf16 JSON; a path passes through; the package must be installed."""
    if spec is None:
        return None
    path = shipped_config(DEEPSPEED_CONFIGS[spec]) if spec in DEEPSPEED_CONFIGS else Path(spec)
    if not path.is_file():
        raise NotFoundError(f"--deepspeed {spec}: no such config file (or use 'zero2')")
    if importlib.util.find_spec("deepspeed") is None:
        raise MissingDependency("deepspeed", "deepspeed", "--deepspeed, on GPU machines")
    return str(path)


def resolve_precision(precision: str) -> str:
    """``auto`` → bf16 on GPUs that support it (the papers' setting), fp32 elsewhere."""
    import torch

    if precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if precision in ("bf16", "fp16") and not torch.cuda.is_available():
        raise ConfigurationError(f"precision {precision}: needs a CUDA GPU (use fp32 or auto on CPU)")
    return precision


def _is_main_process() -> bool:
    from sarvlm.models.device import process_state

    return process_state().is_main_process


def _say(log: Callable[[str], None], text: str) -> None:
    if _is_main_process():
        log(text)


def train(
    recipe: Recipe | str,
    *,
    model: str,
    data: str | Path,
    out: str | Path,
    priors: str | Path | None = None,
    stages: Sequence[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    merge: bool = False,
    allow_missing_priors: bool = False,
    allow_outside_root: bool = False,
    deepspeed: str | None = None,
    model_settings: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    image_cache: bool = True,
) -> TrainResult:
    """Train ``recipe`` on the dataset directory ``data`` into the run directory ``out``.

    Args:
        recipe: a :class:`Recipe` or the name/path of one (``fusar-gpt``, ``lunaros``, ``sarlang-lora``).
        model: a model directory or a tiny model name (``tiny-qwen2.5-vl``) for ``load_model``.
        data: a built dataset directory with ``train.jsonl`` (and ``val.jsonl`` for stages with ``eval``).
        out: the run directory.
        priors: a prior cache directory (``sarvlm priors``); required when the recipe fuses priors,
            unless ``allow_missing_priors``.
        stages: names of the stages to run (default: all, in recipe order). A stage starts from the
            result of the recipe's earlier stages that are complete in ``out``; a stage run alone
            starts from the base model.
        resume: continue an interrupted stage from its last complete checkpoint.
        overwrite: delete whatever ``out`` holds first.
        merge: also save each stage's full merged model in ``STAGE/merged``.
        deepspeed: ``"zero2"`` (shipped ZeRO-2 bf16 config) or a DeepSpeed JSON path.
        model_settings: extra sarvlm model settings for ``load_model`` (the recipe sets ``fusion``).
        allow_outside_root: accept example images outside the dataset's image root (the build
            manifest's ``image_root``; a build made with ``--allow-outside-root`` allows it too).
        image_cache: keep each image decoded and resized once in ``DATA_DIR/.sarvlm-cache/images``
            (:mod:`sarvlm.training.image_cache`; the model inputs are identical, only faster).

    A stage that fails before its first checkpoint (bad input, say) leaves nothing behind, so it
    never blocks the corrected rerun; neither does the ``run.yaml`` of a run that never got further.
    """
    recipe = load_recipe(recipe) if isinstance(recipe, str | Path) else recipe
    names = [s.name for s in recipe.stages]
    selected = list(stages) if stages else names
    for name in selected:
        recipe.stage(name)  # unknown stage → error
    selected = [n for n in names if n in selected]  # recipe order
    data = Path(data)
    from sarvlm.training.dataset import split_path

    split_path(data, "train")
    for name in selected:
        if recipe.stage(name).eval:
            split_path(data, "val")
    settings = {"fusion": recipe.fusion, **(model_settings or {})}
    resolved = check_model_reference(str(model), settings)
    uses_priors = recipe.fusion != "none"
    cache = _open_priors(priors, uses_priors, allow_missing_priors, log)
    settings = align_prior_settings(resolved, cache, settings)
    from sarvlm.training.preflight import check_stages

    # tasks and prior coverage of every stage, checked before the run directory is touched
    coverage = check_stages(recipe, selected, data, cache)
    if uses_priors:
        for cov in coverage.values():
            _say(log, cov.summary())
    ds_config = resolve_deepspeed(deepspeed)
    model_ref = str(Path(model).resolve()) if Path(model).is_dir() else str(model)
    identity = run_identity(
        recipe.to_yaml(), model_ref, str(data.resolve()), str(Path(priors).resolve()) if priors else None
    )
    identity["model_settings"] = settings
    run_dir = Path(out)
    new_run = not (run_dir / RUN_FILE).is_file() or overwrite
    if _is_main_process():
        prepare_run_dir(run_dir, identity, overwrite=overwrite)
    _barrier()
    result = TrainResult(run_dir=run_dir)
    ran_any = False
    for name in selected:
        stage_dir = run_dir / name
        result.stage_dirs[name] = stage_dir
        if stage_complete(stage_dir):
            _say(log, f"[{name}] already complete in {stage_dir}: reusing it")
            continue
        if stage_started(stage_dir) and not resume:
            raise InputError(
                f"{stage_dir}: stage {name} was started but did not finish; use --resume to continue it or --overwrite to start over"
            )
        for earlier in names[: names.index(name)]:
            if earlier not in selected and stage_started(run_dir / earlier) and not stage_complete(run_dir / earlier):
                # starting from the base model here would silently drop the unfinished stage
                raise InputError(
                    f"{run_dir / earlier}: stage {earlier} did not finish; complete it first (--stage {earlier} --resume) before {name}"
                )
        fresh_stage = not stage_started(stage_dir)
        try:
            _run_stage(
                recipe,
                recipe.stage(name),
                model=str(model),
                settings=settings,
                data=data,
                cache=cache,
                run_dir=run_dir,
                resume=resume,
                merge=merge,
                allow_missing_priors=allow_missing_priors,
                allow_outside_root=allow_outside_root,
                ds_config=ds_config,
                coverage=coverage[name].to_dict(),
                log=log,
                image_cache=image_cache,
            )
        except SarvlmError:
            if _is_main_process() and fresh_stage:
                discard_unstarted(run_dir, stage_dir, new_run=new_run)
            raise
        ran_any = True
    final = run_dir / FINAL
    if ran_any or not (final / "training.json").is_file():
        done = [n for n in names if stage_complete(run_dir / n)]
        if _is_main_process():
            from sarvlm.training.input_chain import chain_for_training

            chain = chain_for_training(data, getattr(cache, "settings", None))
            _write_final(recipe, str(model), settings, run_dir, done, log, chain)
        _barrier()
    result.final = final
    return result


def check_model_reference(model: str, settings: dict[str, Any] | None = None) -> Any:
    """Fail early (before any output) on a model that is neither a tiny name nor a supported
    backbone directory; returns the model's resolved :class:`SarvlmSettings`."""
    from sarvlm.models.loading import read_checkpoint_settings
    from sarvlm.models.tiny import TINY_MODELS, tiny_settings

    if model in TINY_MODELS:
        return tiny_settings(model, settings)
    path = Path(model)
    if not path.is_dir():
        raise NotFoundError(f"{path}: no such model directory (or use one of {', '.join(TINY_MODELS)})")
    return read_checkpoint_settings(path, settings)  # reads config.json only: backbone and settings are checked


def align_prior_settings(model_settings: Any, cache: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """Match the model's prior grid to the cache's (it sets the number of prior tokens of the
    concat fusion); a different prior dimension is an error (the fusion weights depend on it)."""
    if cache is None:
        return settings
    dim = int(getattr(cache, "prior_dim", model_settings.prior_dim))
    if dim != model_settings.prior_dim:
        raise ConfigurationError(
            f"{getattr(cache, 'dir', 'prior cache')}: prior_dim {dim} does not match the model's prior_dim {model_settings.prior_dim}"
        )
    grid = tuple(getattr(cache, "grid", model_settings.prior_grid))
    if grid != tuple(model_settings.prior_grid) and "prior_grid" not in settings:
        settings = {**settings, "prior_grid": list(grid)}
    return settings


def _barrier() -> None:
    from sarvlm.models.device import process_state

    process_state().wait_for_everyone()


def _open_priors(priors: str | Path | None, uses_priors: bool, allow_missing: bool, log: Callable[[str], None]) -> Any:
    if not uses_priors:
        if priors is not None:
            _say(log, "note: this recipe uses no fusion (fusion 'none'): --priors is ignored")
        return None
    if priors is None:
        if allow_missing:
            _say(log, "warning: no --priors given: every image trains with an empty prior (--allow-missing-priors)")
            return None
        raise InputError(
            "this recipe fuses geospatial priors: pass --priors DIR (built with `sarvlm priors`), or --allow-missing-priors"
        )
    path = Path(priors)
    if not path.is_dir():
        raise NotFoundError(f"{path}: no such prior cache directory")
    from sarvlm.priors.cache import PriorCache

    return PriorCache(path)


def load_stage_start(
    model: str, settings: dict[str, Any], run_dir: Path, recipe: Recipe, stage: str | None, seed: int
) -> tuple[Any, Any, list[str]]:
    """The model a stage starts from: the base model with every earlier complete stage applied.

    ``stage=None`` applies every complete stage (the final model). Returns
    ``(model, processor, applied_stage_names)``.
    """
    from sarvlm.models.loading import load_model

    base, processor = load_model(model, settings=settings, seed=seed)
    applied = []
    for spec in recipe.stages:
        if spec.name == stage:
            break
        stage_dir = run_dir / spec.name
        if stage_complete(stage_dir):
            base = apply_stage_result(base, stage_dir)
            applied.append(spec.name)
    return base, processor, applied


def apply_stage_result(model: Any, stage_dir: Path) -> Any:
    """Put a finished stage's weights into ``model``: modules trained in full, then its LoRA merged."""
    import torch
    from safetensors.torch import load_file

    full = stage_dir / "trained_modules.safetensors"
    if full.is_file():
        state = load_file(str(full))
        own = model.state_dict()
        unknown = sorted(set(state) - set(own))
        if unknown:
            raise InputError(
                f"{full}: weights {unknown[:3]} do not exist in this model (different backbone or fusion?)"
            )
        with torch.no_grad():
            for key, value in state.items():
                own[key].copy_(value.to(own[key].dtype))
    adapter = stage_dir / "adapter"
    if (adapter / "adapter_config.json").is_file():
        from peft import PeftModel

        from sarvlm.models.peft_warnings import peft_checkpointing_notice_silenced

        with peft_checkpointing_notice_silenced():
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model


def training_arguments(
    recipe: Recipe, spec: StageSpec, stage_dir: Path, precision: str, ds_config: str | None, has_eval: bool
) -> Any:
    """The ``transformers.TrainingArguments`` of one stage (checkpoints under ``stage_dir/checkpoints``)."""
    import torch
    from transformers import TrainingArguments

    from sarvlm.core.progress import progress_enabled
    from sarvlm.training.loader import loader_arguments

    report_to = ["tensorboard"] if importlib.util.find_spec("tensorboard") is not None else "none"
    return TrainingArguments(
        output_dir=str(stage_dir / CHECKPOINTS),
        per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.grad_accum,
        learning_rate=spec.lr,
        num_train_epochs=spec.epochs,
        max_steps=spec.max_steps,
        warmup_steps=spec.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        lr_scheduler_type=spec.lr_scheduler,
        optim=spec.optim,
        weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm,
        logging_steps=spec.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=spec.save_steps,
        save_total_limit=spec.save_total_limit,
        eval_strategy="epoch" if has_eval else "no",
        seed=recipe.seed,
        data_seed=recipe.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        activation_checkpointing=recipe.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if recipe.gradient_checkpointing else None,
        **loader_arguments(recipe.workers, torch.cuda.is_available()),
        # several processes without GPUs (`accelerate launch --multi_gpu --num_processes N` on CPU):
        # the Trainer must build its state as CPU (gloo) or each process trains alone
        use_cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,
        remove_unused_columns=False,  # the collator's geo_* and mm_token_type_ids are model inputs
        label_names=["labels"],
        report_to=report_to,
        disable_tqdm=not progress_enabled(),
        deepspeed=ds_config,
    )


def _run_stage(
    recipe: Recipe,
    spec: StageSpec,
    *,
    model: str,
    settings: dict[str, Any],
    data: Path,
    cache: Any,
    run_dir: Path,
    resume: bool,
    merge: bool,
    allow_missing_priors: bool,
    allow_outside_root: bool,
    ds_config: str | None,
    log: Callable[[str], None],
    coverage: dict[str, Any] | None = None,
    image_cache: bool = True,
) -> None:
    """Train one stage into ``run_dir/<stage>``: start model, data, Trainer run, outputs, summary."""
    from transformers import Trainer

    from sarvlm.training.collator import SftCollator
    from sarvlm.training.stages import trainable_summary
    from sarvlm.training.training_log import TrainingLogCallback

    stage_dir = run_dir / spec.name
    precision = resolve_precision(recipe.precision)
    to_train, plan, processor, applied, prior_images = _prepare_stage_model(
        recipe, spec, model, settings, run_dir, precision, log
    )
    train_set, eval_set = _stage_datasets(
        recipe, spec, data, processor, cache, allow_missing_priors, prior_images, allow_outside_root, log, image_cache
    )
    stage_dir.mkdir(parents=True, exist_ok=True)  # only once the stage has data to train on
    args = training_arguments(recipe, spec, stage_dir, precision, ds_config, spec.eval)
    trainer = Trainer(
        model=to_train,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=SftCollator(pad_token_id=int(processor.pad_token_id)),
        callbacks=[TrainingLogCallback(stage_dir, f"{recipe.name} · {spec.name}")],
    )
    if _is_main_process():
        stage_config = {
            "recipe": recipe.name,
            "stage": spec.model_dump(mode="json"),
            "fusion": recipe.fusion,
            "model": model,
            "model_settings": settings,
            "starts_from": applied,
            "precision": precision,
            "max_length": recipe.max_length,
            "seed": recipe.seed,
            "lora_targets": plan.lora_targets,
            "trained_in_full": plan.full_modules,
            "trainer": _args_summary(args),
        }
        _write_yaml(stage_dir / "config.yaml", stage_config)
        reports = [ds.report.to_dict() for ds in (train_set, eval_set) if ds is not None]
        _write_json(stage_dir / "data.json", {"splits": reports, "prior_coverage": coverage})
    checkpoint = last_checkpoint(stage_dir) if resume else None
    if checkpoint is not None:
        _say(log, f"[{spec.name}] resuming from {checkpoint}")
    with warnings.catch_warnings():
        # PEFT looks the base model's name up on the Hub when it saves a checkpoint, to see whether
        # the vocabulary changed; offline, or for a tiny model name, that lookup only warns
        warnings.filterwarnings("ignore", message=r"(Unable to fetch remote file|Could not find a config file)")
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    if not trainer.is_world_process_zero():
        _barrier()
        return
    trained_parameters = trainable_summary(to_train)  # before merging folds the LoRA weights away
    _save_stage_weights(recipe, spec, stage_dir, to_train, plan, processor, precision, merge)
    _write_stage_result(recipe, spec, stage_dir, trainer, trained_parameters, train_set, applied, coverage, log)
    _barrier()


def _prepare_stage_model(
    recipe: Recipe,
    spec: StageSpec,
    model: str,
    settings: dict[str, Any],
    run_dir: Path,
    precision: str,
    log: Callable[[str], None],
) -> tuple[Any, Any, Any, list[str], str]:
    """The model a stage trains, frozen/wrapped as the stage says.

    Returns ``(to_train, plan, processor, applied stage names, prior_images)``.
    """
    import torch

    from sarvlm.training.stages import describe_trainable, prepare_stage

    start, processor, applied = load_stage_start(model, settings, run_dir, recipe, spec.name, recipe.seed)
    earlier = [s.name for s in recipe.stages[: [s.name for s in recipe.stages].index(spec.name)]]
    if earlier and not applied:
        _say(log, f"[{spec.name}] starts from the base model (no earlier stage complete in {run_dir})")
    elif applied:
        _say(log, f"[{spec.name}] starts from the result of {', '.join(applied)}")
    if precision == "bf16":
        start = start.to(torch.bfloat16)
    if getattr(start.config, "use_cache", None):
        start.config.use_cache = False  # no KV cache while training (and required by gradient checkpointing)
    to_train, plan = prepare_stage(start, spec, recipe.fusion, seed=recipe.seed)
    if precision == "bf16":
        for p in to_train.parameters():
            if p.requires_grad:
                p.data = p.data.float()  # trainable weights keep fp32 masters; bf16 autocast does the rest
    _say(log, describe_trainable(to_train, plan, spec.name))
    from sarvlm.models.device import attention_in_use

    # say which attention kernel trains (SDPA, the transformers default; FlashAttention 2 when a
    # checkpoint was saved with it)
    _say(log, f"[{spec.name}] precision {precision}, attention {attention_in_use(start)}")
    prior_images = str(
        settings.get("prior_images", getattr(getattr(start, "sarvlm_settings", None), "prior_images", "sar"))
    )
    return to_train, plan, processor, applied, prior_images


def _stage_datasets(
    recipe: Recipe,
    spec: StageSpec,
    data: Path,
    processor: Any,
    cache: Any,
    allow_missing_priors: bool,
    prior_images: str,
    allow_outside_root: bool,
    log: Callable[[str], None],
    image_cache: bool = True,
) -> tuple[Any, Any]:
    """The stage's encoded train split (and val split when it evaluates); an empty one is an error."""
    from sarvlm.training.dataset import SftDataset, split_path

    common: dict[str, Any] = dict(
        processor=processor,
        tasks=spec.tasks,
        max_length=recipe.max_length,
        priors=cache,
        use_priors=recipe.fusion != "none",
        allow_missing_priors=allow_missing_priors,
        prior_images=prior_images,
        allow_outside_root=allow_outside_root,
        image_cache=image_cache,
    )
    from sarvlm.models.device import process_state
    from sarvlm.training.preflight import fusion_only

    # the main process measures token lengths first and writes the length cache; the others read it
    with process_state().main_process_first():
        train_set = SftDataset(
            split_path(data, "train"), split="train", require_prior=fusion_only(spec, recipe.fusion), **common
        )
        eval_set = SftDataset(split_path(data, "val"), split="val", **common) if spec.eval else None
    for ds in (train_set, eval_set):
        if ds is not None:
            _say(log, f"[{spec.name}] {ds.report.summary()}")
            if ds.length_cache is not None:
                _say(log, f"[{spec.name}] {ds.length_cache.describe()}")
            if ds.image_cache is not None:
                _say(log, f"[{spec.name}] {ds.image_cache.describe()}")
    if len(train_set) == 0:
        present = ", ".join(sorted(train_set.report.tasks)) or "none kept"
        raise InputError(
            f"{split_path(data, 'train')}: stage {spec.name}: no training example for tasks {spec.tasks} within max_length {recipe.max_length} (kept tasks: {present})"
        )
    if spec.eval and eval_set is not None and len(eval_set) == 0:
        raise InputError(f"{split_path(data, 'val')}: stage {spec.name}: no validation example for tasks {spec.tasks}")
    return train_set, eval_set


def _save_stage_weights(
    recipe: Recipe,
    spec: StageSpec,
    stage_dir: Path,
    to_train: Any,
    plan: Any,
    processor: Any,
    precision: str,
    merge: bool,
) -> None:
    """What a later stage or the final model applies: the LoRA adapter, modules trained in full
    (and, with ``merge``, the whole merged model)."""
    from safetensors.torch import save_file

    from sarvlm.training.stages import merge_stage, trained_full_state

    if plan.lora_targets:
        with atomic_dir(stage_dir / "adapter", overwrite=True) as tmp:
            # save_embedding_layers=False: the embeddings never train here, and "auto" would look the
            # base model name up on the Hub
            to_train.save_pretrained(str(tmp), save_embedding_layers=False)
    merged = merge_stage(to_train)
    full_state = trained_full_state(merged, plan)
    if full_state:
        with atomic_path(stage_dir / "trained_modules.safetensors") as tmp:
            save_file(full_state, str(tmp), metadata={"stage": spec.name, "recipe": recipe.name})
    if merge:
        from sarvlm.models.loading import save_model

        with atomic_dir(stage_dir / "merged", overwrite=True) as tmp:
            save_model(merged.float() if precision != "fp32" else merged, processor, tmp)


def _write_stage_result(
    recipe: Recipe,
    spec: StageSpec,
    stage_dir: Path,
    trainer: Any,
    trained_parameters: tuple[dict[str, int], int, int],
    train_set: Any,
    applied: list[str],
    coverage: dict[str, Any] | None,
    log: Callable[[str], None],
) -> None:
    """``log.csv`` and the stage's result file (the marker of a complete stage), then one summary line.

    ``trained_parameters`` is :func:`~sarvlm.training.stages.trainable_summary` of the trained model.
    """
    from sarvlm.training.training_log import write_log_csv

    per_part, trainable, total = trained_parameters
    history = trainer.state.log_history
    write_log_csv(stage_dir / "log.csv", history)  # loss.png was drawn by the callback at train end
    losses = [e["loss"] for e in history if "loss" in e and isinstance(e["loss"], float) and math.isfinite(e["loss"])]
    _write_json(
        stage_dir / RESULT_FILE,
        {
            "stage": spec.name,
            "recipe": recipe.name,
            "global_steps": trainer.state.global_step,
            "epochs": trainer.state.epoch,
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            "trainable_parameters": trainable,
            "total_parameters": total,
            "trainable_by_part": per_part,
            "examples": train_set.report.kept,
            "dropped_too_long": train_set.report.too_long,
            "excluded_no_prior": train_set.report.excluded_no_prior,
            "prior_coverage": coverage,
            "starts_from": applied,
        },
    )
    _say(
        log,
        f"[{spec.name}] done: {trainer.state.global_step} steps, loss {losses[0] if losses else float('nan'):.4f} → {losses[-1] if losses else float('nan'):.4f}; outputs in {stage_dir}",
    )


def _write_final(
    recipe: Recipe,
    model: str,
    settings: dict[str, Any],
    run_dir: Path,
    done: list[str],
    log: Callable[[str], None],
    chain: dict[str, Any] | None = None,
) -> None:
    from sarvlm.models.loading import save_model

    if not done:
        return
    last = done[-1]
    seed = recipe.seed
    final_model, processor, applied = load_stage_start(model, settings, run_dir, recipe, None, seed)
    with atomic_dir(run_dir / FINAL, overwrite=True) as tmp:
        save_model(final_model, processor, tmp)
        _write_json(
            tmp / "training.json",
            {
                "recipe": recipe.name,
                "stages": applied,
                "base_model": model,
                "model_settings": settings,
                "adapters": {n: f"../{n}/adapter" for n in applied if (run_dir / n / "adapter").is_dir()},
            },
        )
        if chain is not None:
            # the preprocessing and prior settings of the training data, replayed by `sarvlm ask`
            _write_json(tmp / "inference.json", chain)
    _say(log, f"final model (after {last}) in {run_dir / FINAL}")


def _args_summary(args: Any) -> dict[str, Any]:
    keys = (
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "learning_rate",
        "num_train_epochs",
        "max_steps",
        "warmup_steps",
        "lr_scheduler_type",
        "optim",
        "weight_decay",
        "max_grad_norm",
        "logging_steps",
        "save_steps",
        "save_total_limit",
        "seed",
        "bf16",
        "fp16",
        "activation_checkpointing",
        "dataloader_num_workers",
        "deepspeed",
    )
    out = {}
    for k in keys:
        v = getattr(args, k, None)
        if isinstance(v, Enum):
            v = v.value
        out[k] = v if isinstance(v, int | float | str | bool | type(None)) else str(v)
    out["world_size"] = args.world_size
    return out


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    with atomic_open(path) as fh:
        fh.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_open(path) as fh:
        fh.write(json.dumps(data, indent=2, ensure_ascii=False))
        fh.write("\n")
