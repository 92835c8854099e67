"""Check a recipe against the data before anything trains or is written.

Every selected stage must find training examples of its tasks (and validation examples when it
evaluates); otherwise the run stops with one line naming the stage, its tasks, the tasks the data
has and how to get the missing ones — instead of training stage 1 and failing at stage 2.

Priors and stages that train only the fusion module (FUSAR-GPT stage 1: the TLM with vision tower
and LLM frozen). A sample without a prior (no date, outside the source, NoData, not georeferenced)
gives such a stage nothing to learn from: the fusion module is the identity on it, so its loss has
no path to a trainable weight. **Decision:** those examples are *excluded from fusion-only stages
and counted* (``excluded_no_prior``); every other stage keeps them (they teach the language model
with an empty prior, as at inference on a scene the source does not cover). A fusion-only stage
left with no example that has a prior is an error before the run directory is touched.
Coverage (examples with a prior / all) is reported per stage.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarvlm.core.errors import SarvlmError
from sarvlm.training.recipe import Recipe, StageSpec


def fusion_only(spec: StageSpec, fusion: str) -> bool:
    """Whether ``spec`` trains the fusion module and nothing else (no LoRA, adapter or full model)."""
    return (
        fusion != "none"
        and spec.train_fusion
        and not spec.lora.enabled
        and not spec.train_merger
        and not spec.full_model
    )


@dataclass
class StageCoverage:
    """What one stage will see in the training split."""

    stage: str
    examples: int = 0  # training examples of the stage's tasks (with an answer)
    with_prior: int = 0
    without_prior: Counter = field(default_factory=Counter)  # reason -> examples
    excluded_no_prior: int = 0  # left out of a fusion-only stage
    tasks: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "examples": self.examples,
            "with_prior": self.with_prior,
            "without_prior": dict(sorted(self.without_prior.items())),
            "excluded_no_prior": self.excluded_no_prior,
            "prior_coverage": round(self.with_prior / self.examples, 4) if self.examples else 0.0,
            "tasks": dict(sorted(self.tasks.items())),
        }

    def summary(self) -> str:
        pct = 100.0 * self.with_prior / self.examples if self.examples else 0.0
        text = f"[{self.stage}] priors: {self.with_prior}/{self.examples} training examples have one ({pct:.0f}%)"
        if self.without_prior:
            text += "; without: " + ", ".join(f"{r} {n}" for r, n in sorted(self.without_prior.items()))
        if self.excluded_no_prior:
            text += f"; {self.excluded_no_prior} excluded from this stage (it trains only the fusion module)"
        return text


def _prior_reason(cache: Any, sample_id: str) -> str:
    """'' when the sample has a prior, else why not."""
    if cache is None:
        return "no prior cache"
    if sample_id not in cache:
        return "not in the prior cache"
    return cache.reason(sample_id)


def check_stages(
    recipe: Recipe,
    selected: list[str],
    data: Path,
    cache: Any | None,
) -> dict[str, StageCoverage]:
    """Count each selected stage's examples and prior coverage; raise before training when a stage
    would have nothing to train on. ``cache`` is the opened prior cache (None without one)."""
    from sarvlm.training.dataset import split_path
    from sarvlm.training.example_index import ExampleIndex

    uses_priors = recipe.fusion != "none"
    indexes = {}
    for split in ("train", "val"):
        if split == "train" or any(recipe.stage(n).eval for n in selected):
            # the persistent row index: built (one parse) the first time, read afterwards
            indexes[split] = ExampleIndex.load(split_path(data, split))
    # per-row tuples only where priors are looked up per sample; otherwise counts per task suffice
    rows = {split: index.rows() if uses_priors else index.task_counts() for split, index in indexes.items()}
    present: Counter[str] = Counter()
    for task, _, _, n in _weighted(rows["train"]):
        present[task] += n
    reasons: dict[str, str] = {}
    out: dict[str, StageCoverage] = {}
    for name in selected:
        spec = recipe.stage(name)
        wanted = None if "*" in spec.tasks else set(spec.tasks)
        cov = StageCoverage(stage=name)
        tasks: Counter[str] = Counter()
        for task, sample_id, has_answer, n in _weighted(rows["train"]):
            if (wanted is not None and task not in wanted) or not has_answer:
                continue
            cov.examples += n
            tasks[task] += n
            if not uses_priors:
                continue
            if sample_id not in reasons:
                reasons[sample_id] = _prior_reason(cache, sample_id)
            reason = reasons[sample_id]
            if reason:
                cov.without_prior[reason] += 1
            else:
                cov.with_prior += 1
        cov.tasks = dict(tasks)
        if cov.examples == 0:
            have = ", ".join(f"{t} {n}" for t, n in sorted(present.items())) or "none"
            from sarvlm.tasks.registry import TASKS

            needs = "; ".join(f"{t} needs {TASKS[t].needs}" for t in spec.tasks if t in TASKS and TASKS[t].needs)
            raise SarvlmError(
                f"{data / 'train.jsonl'}: stage {name} of recipe {recipe.name} trains on tasks "
                f"{', '.join(spec.tasks)} but the data has none of them (it has: {have}); rebuild with "
                f"`sarvlm build --tasks {','.join(spec.tasks)}`" + (f" ({needs})" if needs else "")
            )
        if spec.eval and "val" in rows:
            n_val = sum(n for task, _, ok, n in _weighted(rows["val"]) if ok and (wanted is None or task in wanted))
            if n_val == 0:
                raise SarvlmError(
                    f"{data / 'val.jsonl'}: stage {name} evaluates on tasks {', '.join(spec.tasks)} but val.jsonl has none"
                )
        if fusion_only(spec, recipe.fusion):
            cov.excluded_no_prior = cov.examples - cov.with_prior
            if cov.with_prior == 0:
                why = ", ".join(f"{r} {n}" for r, n in sorted(cov.without_prior.items()))
                raise SarvlmError(
                    f"stage {name} of recipe {recipe.name} trains only the fusion module, but none of its "
                    f"{cov.examples} training examples has a prior ({why}); build priors that cover the data "
                    f"(`sarvlm priors DATA --source SPEC`, see its coverage report) or run only the other stages"
                )
        out[name] = cov
    return out


def _weighted(rows: list[tuple]) -> list[tuple[str, str, bool, int]]:
    """``(task, sample_id, has_answer, count)``: per-row tuples get count 1; per-task counts
    (:meth:`ExampleIndex.task_counts`) carry no sample id."""
    return [r if len(r) == 4 else (*r, 1) for r in rows]
