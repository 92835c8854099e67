"""What trains in a stage: freezing, the PEFT LoRA config, modules trained in full.

A model has three parts the recipes talk about (FUSAR-GPT §3.3: θ_v, θ_ae, θ_llm):
the vision tower (``visual``, with the vision-language adapter ``visual.merger``
inside it), the geo-prior fusion module (a path containing ``geo_fusion``) and the
language model (``language_model`` + ``lm_head``). :func:`prepare_stage` freezes
everything, then unfreezes what the stage names: LoRA adapters (PEFT) on the chosen
linear layers of the chosen parts, and modules trained in full (fusion, adapter)
through PEFT's ``modules_to_save`` (or plain ``requires_grad`` without LoRA).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sarvlm.core.errors import ConfigurationError
from sarvlm.training.recipe import StageSpec

FUSION_KEY = "geo_fusion"
_MERGER_RE = re.compile(r"(^|\.)visual\.(merger|deepstack_merger_list)(\.|$)")
_VISION_RE = re.compile(r"(^|\.)visual(\.|$)")
_FUSION_RE = re.compile(rf"(^|\.)[^.]*{FUSION_KEY}[^.]*(\.|$)")
_LM_RE = re.compile(r"(^|\.)language_model(\.|$)")


def module_part(name: str) -> str:
    """Which recipe part a module/parameter name belongs to: fusion, merger, vision, language_model, lm_head, other."""
    if _FUSION_RE.search(name):
        return "fusion"
    if _MERGER_RE.search(name):
        return "merger"
    if _VISION_RE.search(name):
        return "vision"
    if _LM_RE.search(name):
        return "language_model"
    if name.split(".")[-1] == "lm_head" or ".lm_head." in f".{name}.":
        return "lm_head"
    return "other"


def fusion_module_names(model: nn.Module) -> list[str]:
    """Top-most modules whose name contains ``geo_fusion`` (empty for fusion 'none')."""
    names = [n for n, _ in model.named_modules() if FUSION_KEY in n.split(".")[-1]]
    return [n for n in names if not any(n != m and n.startswith(m + ".") for m in names)]


def merger_module_names(model: nn.Module) -> list[str]:
    """The vision-language adapter modules (``visual.merger``; Qwen3-VL also its deepstack mergers)."""
    return [n for n, _ in model.named_modules() if re.search(r"(^|\.)visual\.(merger|deepstack_merger_list)$", n)]


def lora_target_names(model: nn.Module, spec: StageSpec) -> list[str]:
    """Full names of the ``nn.Linear`` layers the stage's LoRA wraps."""
    lora = spec.lora
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        part = module_part(name)
        if part not in lora.scope:
            continue
        if lora.targets != "all-linear" and name.split(".")[-1] not in lora.targets:
            continue
        names.append(name)
    return names


@dataclass
class StagePlan:
    """What a stage trains, resolved against a concrete model."""

    lora_targets: list[str]
    full_modules: list[str]  # trained in full (modules_to_save when LoRA is used)

    def describe(self) -> str:
        lines = []
        if self.lora_targets:
            parts = OrderedDict.fromkeys(module_part(n) for n in self.lora_targets)
            lines.append(f"LoRA on {len(self.lora_targets)} linear layers in: {', '.join(parts)}")
        for m in self.full_modules:
            lines.append(f"trained in full: {m or 'the whole model (full fine-tuning)'}")
        return "\n".join(lines)


def plan_stage(model: nn.Module, spec: StageSpec, fusion: str) -> StagePlan:
    """Resolve a stage spec against ``model``; errors when the stage would train nothing."""
    if spec.full_model:
        # "" is the model itself: every parameter trains (full fine-tuning)
        return StagePlan(lora_targets=[], full_modules=[""])
    full: list[str] = []
    if spec.train_fusion and fusion != "none":
        found = fusion_module_names(model)
        if not found:
            raise ConfigurationError(
                f"stage {spec.name}: train_fusion is set but the model has no '{FUSION_KEY}' module (fusion {fusion!r})"
            )
        full += found
    if spec.train_merger:
        found = merger_module_names(model)
        if not found:
            raise ConfigurationError(f"stage {spec.name}: train_merger is set but the model has no visual.merger")
        full += found
    targets = lora_target_names(model, spec) if spec.lora.enabled else []
    if spec.lora.enabled and not targets:
        raise ConfigurationError(
            f"stage {spec.name}: lora: no linear layer matches targets {spec.lora.targets} in scope {spec.lora.scope}"
        )
    if not targets and not full:
        raise ConfigurationError(
            f"stage {spec.name}: trains nothing (enable lora, train_fusion or train_merger; fusion is {fusion!r})"
        )
    return StagePlan(lora_targets=targets, full_modules=full)


def prepare_stage(model: nn.Module, spec: StageSpec, fusion: str, seed: int = 0) -> tuple[Any, StagePlan]:
    """Freeze ``model`` except what ``spec`` trains; wrap with PEFT LoRA when the stage uses it.

    Returns the model to train (a ``peft.PeftModel`` when LoRA is enabled) and the plan.
    LoRA weights are initialised under ``seed`` so runs are reproducible.
    """
    plan = plan_stage(model, spec, fusion)
    for p in model.parameters():
        p.requires_grad_(False)
    if plan.lora_targets:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=spec.lora.r,
            lora_alpha=spec.lora.alpha,  # type: ignore[arg-type]  # PEFT annotates int; a float alpha works
            lora_dropout=spec.lora.dropout,
            target_modules=plan.lora_targets,
            modules_to_save=plan.full_modules or None,
            bias="none",
            task_type="CAUSAL_LM",
        )
        from sarvlm.models.peft_warnings import peft_checkpointing_notice_silenced

        with torch.random.fork_rng(devices=[]), peft_checkpointing_notice_silenced():
            torch.manual_seed(seed)
            model = get_peft_model(model, config)
    else:
        for name in plan.full_modules:
            for p in model.get_submodule(name).parameters():
                p.requires_grad_(True)
    return model, plan


def trainable_summary(model: nn.Module) -> tuple[dict[str, int], int, int]:
    """Trainable parameter counts per part, the trainable total and the model total."""
    per_part: dict[str, int] = {}
    total = trainable = 0
    for name, p in model.named_parameters():
        n = p.numel()
        total += n
        if p.requires_grad:
            trainable += n
            key = module_part(name)
            if "lora_" in name:
                key = f"lora:{key}"
            per_part[key] = per_part.get(key, 0) + n
    return dict(sorted(per_part.items())), trainable, total


def describe_trainable(model: nn.Module, plan: StagePlan, stage: str) -> str:
    """Human-readable account of what trains (printed at the start of each stage)."""
    per_part, trainable, total = trainable_summary(model)
    lines = [f"[{stage}] trainable parameters: {trainable:,} of {total:,} ({100.0 * trainable / max(total, 1):.4f}%)"]
    lines += [f"  {line}" for line in plan.describe().splitlines()]
    lines += [f"  {part}: {count:,}" for part, count in per_part.items()]
    return "\n".join(lines)


def trained_full_state(model: nn.Module, plan: StagePlan) -> dict[str, torch.Tensor]:
    """The weights of the modules trained in full, under their names in the unwrapped model."""
    base = unwrap(model)
    out: dict[str, torch.Tensor] = {}
    for name in plan.full_modules:
        prefix = f"{name}." if name else ""
        for key, t in base.get_submodule(name).state_dict().items():
            out[f"{prefix}{key}"] = t.detach().to("cpu").contiguous().clone()
    return out


def unwrap(model: Any) -> nn.Module:
    """The underlying transformers model of a PEFT-wrapped model (or the model itself)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return model.get_base_model()
    return model


def merge_stage(model: Any) -> nn.Module:
    """Fold LoRA weights into the base weights (and modules_to_save into place); plain models pass through."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return model.merge_and_unload()
    return model
