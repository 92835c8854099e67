"""Batched prediction over a built dataset, with cached priors, resumable.

``predict(model, data.jsonl, out.jsonl)`` answers every :class:`InstructionExample` (its prompt:
the messages before the final assistant turn) and writes one :class:`Prediction` per example
(``id``, ``task``, ``prediction`` text, ``parsed`` structured answer).

Resuming: finished rows are journalled to ``out.jsonl.partial`` (flushed and fsync'ed per batch);
a rerun skips ids already in ``out.jsonl`` or the journal. The final ``out.jsonl`` is written
atomically, in dataset order, so it is never half-written and is byte-identical for the same inputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarvlm.core.errors import InputError, NotFoundError
from sarvlm.core.example import InstructionExample, Prediction, read_examples, read_predictions
from sarvlm.core.progress import track
from sarvlm.inference.generate import GenerationOptions, Query, generate_batch

PARTIAL_SUFFIX = ".partial"


@dataclass
class PredictSummary:
    """What a :func:`predict` call did."""

    out: Path
    total: int  # examples considered (after ``limit``)
    generated: int  # answered in this call
    skipped: int  # already answered by an earlier run

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "total": self.total, "generated": self.generated, "skipped": self.skipped}


def parse_answer(example: InstructionExample, text: str) -> Any:
    """The structured answer parsed by ``sarvlm.tasks.registry.parse_prediction`` (None when unparseable or unavailable)."""
    try:
        from sarvlm.tasks.registry import parse_prediction
    except ImportError:
        return None
    return parse_prediction(
        example.task, text, params=example.params, coords=example.coords, width=example.width, height=example.height
    )


def _read_journal(path: Path) -> Iterator[Prediction]:
    """Rows of an interrupted run; a torn last line (crash mid-write) is ignored."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield Prediction.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValueError):
            if lineno >= len(lines) - 1:
                return  # the incomplete last line
            raise InputError(f"{path}:{lineno}: corrupt resume journal (delete it to start over)") from None


def _resolve_model(model: Any, dtype: Any, device: Any) -> tuple[Any, Any]:
    if isinstance(model, tuple):
        return model
    from sarvlm.models.loading import load_model

    return load_model(model, dtype=dtype, device=device)


def _open_priors(priors_dir: str | Path | None) -> Any:
    if priors_dir is None:
        return None
    from sarvlm.priors.cache import PriorCache

    return PriorCache(priors_dir)


def predict(
    model_path: str | Path | tuple[Any, Any],
    data_jsonl: str | Path,
    out_jsonl: str | Path,
    *,
    priors_dir: str | Path | None = None,
    batch_size: int = 4,
    limit: int | None = None,
    max_new_tokens: int | dict[str, int] | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 50,
    num_beams: int = 1,
    seed: int = 0,
    dtype: Any = None,
    device: Any = None,
    allow_missing_priors: bool = False,
) -> PredictSummary:
    """Generate answers for a dataset split.

    Args:
        model_path: a model for :func:`sarvlm.models.loading.load_model`, or a loaded ``(model, processor)``.
        data_jsonl: the examples (e.g. ``DATA/test.jsonl``); image paths are relative to it.
        out_jsonl: the predictions file (also the resume state, with its ``.partial`` journal).
        priors_dir: a prior cache (``sarvlm priors``); None = no priors. A sample missing from the
            cache is an error unless ``allow_missing_priors`` (then it runs without a prior).
        batch_size: conversations per ``generate`` call (batches hold one task, for its token budget).
        limit: only the first ``limit`` examples.
        max_new_tokens: int for all tasks, per-task dict, or None for the per-task defaults.
        do_sample, temperature, top_p, top_k, num_beams, seed: decoding (greedy by default).
    """
    data_jsonl, out_jsonl = Path(data_jsonl), Path(out_jsonl)
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    if limit is not None and limit < 0:
        raise InputError(f"--limit must be >= 0, got {limit}")
    examples = list(read_examples(data_jsonl))
    if limit is not None:
        examples = examples[:limit]
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise InputError(f"{data_jsonl}: example id {ex.id!r} appears twice")
        seen.add(ex.id)
        if not ex.prompt_messages:
            raise InputError(f"{data_jsonl}: example {ex.id!r}: messages: no prompt before the answer")

    journal = out_jsonl.with_name(out_jsonl.name + PARTIAL_SUFFIX)
    done: dict[str, Prediction] = {}
    if out_jsonl.exists():
        done.update((p.id, p) for p in read_predictions(out_jsonl))
    if journal.exists():
        done.update((p.id, p) for p in _read_journal(journal))
    todo = [ex for ex in examples if ex.id not in done]
    skipped = len(examples) - len(todo)

    if todo:
        model, processor = _resolve_model(model_path, dtype, device)
        cache = _open_priors(priors_dir) if processor.settings.fusion != "none" else None
        options = GenerationOptions(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            num_beams=num_beams,
            seed=seed,
        )
        # One task per batch (its token budget); dataset order within a task.
        by_task: dict[str, list[InstructionExample]] = {}
        for ex in todo:
            by_task.setdefault(ex.task, []).append(ex)
        batches = [group[i : i + batch_size] for group in by_task.values() for i in range(0, len(group), batch_size)]
        base_dir = data_jsonl.parent
        from sarvlm.core.atomic import ensure_writable_dir

        ensure_writable_dir(out_jsonl.parent)
        with open(journal, "a", encoding="utf-8") as fh:
            for batch in track(batches, description=f"predict {data_jsonl.name}", total=len(batches)):
                queries = [_query(ex, base_dir, processor, cache, data_jsonl, allow_missing_priors) for ex in batch]
                texts = generate_batch(model, processor, queries, options.budget(batch[0].task), options)
                for ex, query, text in zip(batch, queries, texts):
                    row = Prediction(
                        id=ex.id,
                        task=ex.task,
                        prediction=text,
                        parsed=parse_answer(ex, text),
                        prior=_prior_note(query.prior, cache, ex.sample_id, processor),
                    )
                    done[ex.id] = row
                    fh.write(row.to_json() + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    _write_final(out_jsonl, examples, done)
    if journal.exists():
        journal.unlink()
    return PredictSummary(out=out_jsonl, total=len(examples), generated=len(todo), skipped=skipped)


def _prior_note(prior: Any, cache: Any, sample_id: str, processor: Any) -> dict[str, Any]:
    """Whether the answer used a prior, and why not (recorded on every prediction)."""
    if prior is not None and bool(prior.valid.any()):
        return {"used": True, "year": prior.year, "valid_nodes": int(prior.valid.sum())}
    if processor.settings.fusion == "none":
        reason = "the model fuses no prior"
    elif cache is None:
        reason = "no --priors"
    elif sample_id not in cache:
        reason = "not in the prior cache"
    else:
        reason = cache.reason(sample_id) if hasattr(cache, "reason") else "no prior"
    return {"used": False, "reason": reason or "no valid node"}


def _query(
    ex: InstructionExample, base_dir: Path, processor: Any, cache: Any, data_jsonl: Path, allow_missing: bool
) -> Query:
    images = []
    for rel in ex.images:
        path = (base_dir / rel).resolve()
        if not path.is_file():
            raise NotFoundError(f"{data_jsonl}: example {ex.id!r}: images: no such file {path}")
        images.append(processor.load_image(path))
    prior = None
    if cache is not None:
        if ex.sample_id in cache:
            prior = cache.get(ex.sample_id)
        elif not allow_missing:
            raise NotFoundError(
                f"{data_jsonl}: example {ex.id!r}: sample {ex.sample_id!r} is not in the prior cache "
                f"(rebuild it for this dataset, or pass --allow-missing-priors)"
            )
    messages = [{"role": m.role, "content": m.content} for m in ex.prompt_messages]
    return Query(messages=messages, images=images, prior=prior)


def _write_final(out_jsonl: Path, examples: list[InstructionExample], done: dict[str, Prediction]) -> None:
    from sarvlm.core.atomic import atomic_open

    order = [ex.id for ex in examples]
    listed = set(order)
    extra = [pid for pid in done if pid not in listed]  # rows of a previous, larger run are kept
    with atomic_open(out_jsonl) as fh:
        for pid in order + extra:
            if pid in done:
                fh.write(done[pid].to_json() + "\n")
