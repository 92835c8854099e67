"""The FUSAR-GPT ablations as one command: stage ablation (Table 9) and fusion variants (Table 6).

Mapping of the paper's rows to runs (base recipe ``fusar-gpt``, stage 2 on the instruction
tasks in every row):

==================  ====  ====  =====  ===============================================================
run name            SFT1  SFT2  TLM    what trains
==================  ====  ====  =====  ===============================================================
``stage2-only``     ✗     ✓     ✗      fusion ``none``; stage 2 only: LoRA on the LLM (Table 9 row 2)
``stage1+stage2``   ✓     ✓     ✗      fusion ``none``; stage 1 has no TLM to train, so it trains LoRA on
                                       the LLM on the captions (Fig. 2's stage-1 LoRA), merged; then
                                       stage 2 (Table 9 row 3)
``stage2+tlm``      ✗     ✓     ✓      fusion ``tlm``; stage 2 only, the TLM trains together with the
                                       LoRA (frozen at its identity initialisation it would be a no-op)
                                       (Table 9 row 4)
``full``            ✓     ✓     ✓      the recipe as published: stage 1 TLM only, stage 2 LoRA (row 5)
``fusion-sum``      ✓     ✓     sum    the full two-stage recipe with the sum fusion (Table 6 "Sum")
``fusion-concat``   ✓     ✓     concat the full two-stage recipe with prior tokens (Table 6 "Concat")
``fusion-tlm``      ✓     ✓     ✓      Table 6 "TLM": the same run as ``full`` (indexed, not retrained)
==================  ====  ====  =====  ===============================================================

Each run is ``DIR/<name>/`` (``DIR/<name>-seed<k>/`` with several seeds), a normal
``sarvlm train`` run directory; ``DIR/runs.json`` indexes them for the evaluation
report (``sarvlm eval compare``) and the demo.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarvlm.core.atomic import atomic_open, ensure_writable_dir
from sarvlm.core.errors import InputError, NotFoundError
from sarvlm.training.recipe import apply_common_overrides, load_recipe

RUNS_FILE = "runs.json"


@dataclass(frozen=True)
class AblationRun:
    """One row of the ablation grid."""

    name: str
    table: str  # which table/row of the paper it reproduces
    sft1: bool
    sft2: bool
    fusion: str
    overrides: tuple[tuple[str, Any], ...]
    stages: tuple[str, ...] | None  # None = every stage of the recipe
    alias_of: str | None = None


ABLATION_RUNS: tuple[AblationRun, ...] = (
    AblationRun(
        "stage2-only",
        "Table 9: BaseModel(+SFT2)",
        False,
        True,
        "none",
        (("fusion", "none"), ("needs_priors", False)),
        ("stage2",),
    ),
    AblationRun(
        "stage1+stage2",
        "Table 9: BaseModel(+SFT1+SFT2)",
        True,
        True,
        "none",
        (("fusion", "none"), ("needs_priors", False), ("stage1.train_fusion", False), ("stage1.lora.enabled", True)),
        None,
    ),
    AblationRun(
        "stage2+tlm", "Table 9: BaseModel(+SFT2+TLM)", False, True, "tlm", (("stage2.train_fusion", True),), ("stage2",)
    ),
    AblationRun("full", "Table 9: FUSAR-GPT (SFT1+SFT2+TLM)", True, True, "tlm", (), None),
    AblationRun("fusion-sum", "Table 6: Sum", True, True, "sum", (("fusion", "sum"),), None),
    AblationRun("fusion-concat", "Table 6: Concat", True, True, "concat", (("fusion", "concat"),), None),
    AblationRun("fusion-tlm", "Table 6: TLM", True, True, "tlm", (), None, alias_of="full"),
)
RUN_NAMES = tuple(r.name for r in ABLATION_RUNS)


def _run_dir_name(name: str, seed: int, n_seeds: int) -> str:
    return name if n_seeds == 1 else f"{name}-seed{seed}"


def run_ablation(
    model: str,
    data: str | Path,
    out: str | Path,
    *,
    priors: str | Path | None = None,
    seeds: int | Sequence[int] = 1,
    runs: Sequence[str] | None = None,
    recipe: str | Path = "fusar-gpt",
    overrides: dict[str, Any] | None = None,
    max_steps: int | None = None,
    epochs: float | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_missing_priors: bool = False,
    deepspeed: str | None = None,
    model_settings: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, list[Path]]:
    """Train the ablation grid; returns ``{run name: [run dir per seed]}`` and writes ``out/runs.json``.

    ``seeds`` is a count (seeds 0..N-1) or an explicit list. ``runs`` picks a subset of
    :data:`RUN_NAMES`. ``overrides`` (``--set`` keys) and the shortcut values apply to every
    run, e.g. ``max_steps=20`` for a quick look on a laptop.
    """
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise InputError("--seeds must be at least 1")
    wanted = list(runs) if runs else list(RUN_NAMES)
    unknown = [r for r in wanted if r not in RUN_NAMES]
    if unknown:
        raise NotFoundError(f"unknown ablation run {unknown[0]!r} (runs: {', '.join(RUN_NAMES)})")
    out = Path(out)
    ensure_writable_dir(out)
    from sarvlm.training.trainer import train

    # every run reads the same data with the same processor: the persistent length cache next to
    # the data (sarvlm.training.length_cache) measures each example once for the whole grid

    selected = [r for r in ABLATION_RUNS if r.name in wanted]
    # an alias needs its target trained
    targets = {r.alias_of for r in selected if r.alias_of}
    to_train = [r for r in ABLATION_RUNS if (r in selected and not r.alias_of) or r.name in targets]
    index: list[dict[str, Any]] = []
    result: dict[str, list[Path]] = {}
    for run in to_train:
        for seed in seed_list:
            rec = load_recipe(recipe, {**(overrides or {}), **dict(run.overrides)})
            rec = apply_common_overrides(
                rec, max_steps=max_steps, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed
            )
            run_dir = out / _run_dir_name(run.name, seed, len(seed_list))
            log(f"=== ablation run {run.name} (seed {seed}): {run.table} → {run_dir}")
            train(
                rec,
                model=model,
                data=data,
                out=run_dir,
                priors=priors if run.fusion != "none" else None,
                stages=list(run.stages) if run.stages else None,
                resume=resume,
                overwrite=overwrite,
                allow_missing_priors=allow_missing_priors,
                deepspeed=deepspeed,
                model_settings=model_settings,
                log=log,
            )
            result.setdefault(run.name, []).append(run_dir)
            index.append(_entry(run, seed, run_dir, out))
            _write_index(out, model, data, priors, recipe, index)
    for run in selected:
        if run.alias_of:
            for seed, run_dir in zip(seed_list, result[run.alias_of], strict=True):
                result.setdefault(run.name, []).append(run_dir)
                index.append(_entry(run, seed, run_dir, out))
    index = [e for e in index if e["name"] in wanted]
    _write_index(out, model, data, priors, recipe, index)
    return {name: result[name] for name in wanted}


def _entry(run: AblationRun, seed: int, run_dir: Path, out: Path) -> dict[str, Any]:
    rel = run_dir.relative_to(out).as_posix()
    return {
        "name": run.name,
        "table": run.table,
        "sft1": run.sft1,
        "sft2": run.sft2,
        "fusion": run.fusion,
        "seed": seed,
        "run_dir": rel,
        "model": f"{rel}/final",
        "alias_of": run.alias_of,
    }


def _write_index(
    out: Path, model: str, data: str | Path, priors: str | Path | None, recipe: str | Path, runs: list[dict[str, Any]]
) -> None:
    doc = {
        "recipe": str(recipe),
        "model": str(model),
        "data": str(Path(data).resolve()),
        "priors": str(Path(priors).resolve()) if priors else None,
        "runs": runs,
    }
    with atomic_open(out / RUNS_FILE) as fh:
        fh.write(json.dumps(doc, indent=2, ensure_ascii=False))
        fh.write("\n")


def read_runs(out: str | Path) -> list[dict[str, Any]]:
    """The ``runs`` entries of ``DIR/runs.json`` with ``run_dir``/``model`` made absolute."""
    path = Path(out) / RUNS_FILE
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file (run `sarvlm ablate` first)")
    doc = json.loads(path.read_text(encoding="utf-8"))
    base = path.parent.resolve()
    return [{**e, "run_dir": str(base / e["run_dir"]), "model": str(base / e["model"])} for e in doc["runs"]]
