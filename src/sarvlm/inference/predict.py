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

from sarvlm.core.errors import InputError, NotFoundError, SarvlmError
from sarvlm.core.example import InstructionExample, Prediction, read_examples, read_predictions
from sarvlm.core.progress import track
from sarvlm.core.sharding import Shard, write_shard_info
from sarvlm.inference.generate import GenerationOptions, Query, generate_batch

PARTIAL_SUFFIX = ".partial"


@dataclass
class PredictSummary:
    """What a :func:`predict` call did."""

    out: Path
    total: int  # examples considered (after ``limit``)
    generated: int  # answered in this call
    skipped: int  # already answered by an earlier run
    placement: str | None = None  # "device cuda:0, dtype bfloat16, attention sdpa" when a model ran

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "total": self.total,
            "generated": self.generated,
            "skipped": self.skipped,
            "placement": self.placement,
        }


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


def _resolve_model(model: Any, dtype: Any, device: Any, attention: str | None) -> tuple[Any, Any]:
    if isinstance(model, tuple):
        return model
    from sarvlm.models.loading import load_model

    return load_model(model, dtype=dtype, device=device, attention=attention)


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
    dtype: Any = "auto",
    device: Any = "auto",
    attention: str | None = "auto",
    allow_missing_priors: bool = False,
    shard: Shard | str | None = None,
    allow_outside_root: bool = False,
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
        dtype, device, attention: where and how to run a model loaded here (default ``auto``: CUDA → MPS →
            CPU, bf16 where supported, FlashAttention 2 or SDPA; see :mod:`sarvlm.models.device`).
        shard: ``"K/N"``: answer only the K-th contiguous block of the generation batches (the batches
            one unsharded run would form) into ``STEM.shard-K-of-N.jsonl``; :func:`merge_prediction_shards`
            joins the N parts into the file one run writes. Under ``accelerate launch`` (or torchrun)
            with several processes each rank takes its shard on its own device and rank 0 merges.
        allow_outside_root: accept image paths leaving the dataset's image root (see
            :func:`sarvlm.data.example_root.example_image_root`).

    Every input (examples, images, output folder) is checked before the model is loaded.
    """
    data_jsonl, out_jsonl = Path(data_jsonl), Path(out_jsonl)
    state = _launched_state()
    final_out = out_jsonl
    if state is not None and shard is None:
        shard = Shard(state.process_index, state.num_processes)
        if device in (None, "auto"):
            device = state.device
    shard = Shard.parse(shard)
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    if limit is not None and limit < 0:
        raise InputError(f"--limit must be >= 0, got {limit}")
    examples = list(read_examples(data_jsonl))
    if not examples:
        raise SarvlmError(f"{data_jsonl}: no examples (empty file)")
    if limit is not None:
        examples = examples[:limit]
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise InputError(f"{data_jsonl}: example id {ex.id!r} appears twice")
        seen.add(ex.id)
        if not ex.prompt_messages:
            raise SarvlmError(f"{data_jsonl}: example {ex.id!r}: messages: no prompt before the answer")
    positions: list[int] = []
    n_all = len(examples)
    if shard is not None:
        chosen = {ex.id for batch in shard.select(_plan_batches(examples, batch_size)) for ex in batch}
        positions = [i for i, ex in enumerate(examples) if ex.id in chosen]
        examples = [examples[i] for i in positions]
        out_jsonl = shard.output_path(out_jsonl, directory=False)

    journal = out_jsonl.with_name(out_jsonl.name + PARTIAL_SUFFIX)
    done: dict[str, Prediction] = {}
    if out_jsonl.exists():
        done.update((p.id, p) for p in read_predictions(out_jsonl))
    if journal.exists():
        done.update((p.id, p) for p in _read_journal(journal))
    todo = [ex for ex in examples if ex.id not in done]
    skipped = len(examples) - len(todo)
    from sarvlm.core.atomic import ensure_writable_dir

    ensure_writable_dir(out_jsonl.parent)
    image_paths = _check_images(todo, data_jsonl, allow_outside_root)

    placement = None
    if todo:
        from sarvlm.models.device import describe_placement

        model, processor = _resolve_model(model_path, dtype, device, attention)
        placement = describe_placement(model)
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
        batches = _plan_batches(todo, batch_size)
        fresh_journal = not journal.exists()
        try:
            _predict_batches(
                batches, journal, done, model, processor, cache, options, image_paths, data_jsonl, allow_missing_priors
            )
        except SarvlmError:
            # an input error in a run that journalled nothing leaves nothing behind
            if fresh_journal and journal.exists() and journal.stat().st_size == 0:
                journal.unlink()
            raise
    _write_final(out_jsonl, examples, done)
    from sarvlm.data.fingerprint import record_prediction_source

    record_prediction_source(out_jsonl, data_jsonl)  # eval checks predictions answer this very dataset
    if journal.exists():
        journal.unlink()
    if shard is not None:
        write_shard_info(
            out_jsonl,
            "predict",
            shard,
            {"data": str(data_jsonl), "data_digest": _digest(data_jsonl), "examples": n_all, "positions": positions},
        )
    if state is not None:
        # every rank answered its shard; rank 0 joins them into the file one process would write
        state.wait_for_everyone()
        if state.is_main_process:
            merge_prediction_shards(final_out, overwrite=True, remove_parts=True)
        state.wait_for_everyone()
        out_jsonl = final_out
    return PredictSummary(out=out_jsonl, total=len(examples), generated=len(todo), skipped=skipped, placement=placement)


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


def _plan_batches(examples: list[InstructionExample], batch_size: int) -> list[list[InstructionExample]]:
    """One task per batch (its token budget); dataset order within a task."""
    by_task: dict[str, list[InstructionExample]] = {}
    for ex in examples:
        by_task.setdefault(ex.task, []).append(ex)
    return [group[i : i + batch_size] for group in by_task.values() for i in range(0, len(group), batch_size)]


def _launched_state() -> Any:
    """Accelerate's process state when launched with several processes (accelerate launch, torchrun)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from sarvlm.models.device import process_state

    state = process_state()
    return state if state.num_processes > 1 else None


def _digest(path: Path) -> str:
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def merge_prediction_shards(out_jsonl: str | Path, overwrite: bool = True, remove_parts: bool = False) -> Path:
    """Join the parts ``STEM.shard-K-of-N.jsonl`` of a sharded :func:`predict` into ``out_jsonl``, in
    dataset order: byte-identical to the file one unsharded run writes.

    ``overwrite`` defaults to True: a predictions file is one file, replaced atomically.
    """
    from sarvlm.core.atomic import atomic_open
    from sarvlm.core.sharding import find_parts, read_shard_info, shard_info_path

    out_jsonl = Path(out_jsonl)
    if out_jsonl.exists() and not overwrite:
        raise SarvlmError(f"{out_jsonl}: exists (use --overwrite)")
    parts = find_parts(out_jsonl, directory=False)
    infos = [read_shard_info(p) for p in parts]
    n = infos[0].get("examples")
    rows: list[str | None] = [None] * int(n or 0)
    extra: list[str] = []
    for p, info in zip(parts, infos):
        if info.get("kind") != "predict":
            raise SarvlmError(f"{p}: a {info.get('kind')} shard, not a predict shard")
        if info.get("data_digest") != infos[0].get("data_digest") or info.get("examples") != n:
            raise SarvlmError(f"{p}: predicted on other data than {parts[0]}; cannot merge")
        lines = p.read_text(encoding="utf-8").splitlines(keepends=True)
        positions = info["positions"]
        if len(lines) < len(positions):
            raise SarvlmError(f"{p}: {len(lines)} rows for {len(positions)} examples (the shard run did not finish)")
        for pos, line in zip(positions, lines):
            if rows[pos] is not None:
                raise SarvlmError(f"{p}: example {pos} is also in another part")
            rows[pos] = line
        extra += lines[len(positions) :]
    missing = [i for i, r in enumerate(rows) if r is None]
    if missing:
        raise SarvlmError(f"{out_jsonl}: {len(missing)} example(s) in no part (first: row {missing[0] + 1})")
    with atomic_open(out_jsonl) as fh:
        for line in rows:
            fh.write(line)
        for line in extra:
            fh.write(line)
    # The merged file answers the same dataset as its parts: keep eval's dataset check for it.
    from sarvlm.data.fingerprint import side_file

    prints = {side_file(p).read_text(encoding="utf-8") if side_file(p).is_file() else None for p in parts}
    if len(prints) == 1 and None not in prints:
        with atomic_open(side_file(out_jsonl)) as fh:
            fh.write(prints.pop())
    if remove_parts:
        for p in parts:
            p.unlink()
            shard_info_path(p).unlink(missing_ok=True)
            side_file(p).unlink(missing_ok=True)
    return out_jsonl


def _predict_batches(
    batches: list[list[InstructionExample]],
    journal: Path,
    done: dict[str, Prediction],
    model: Any,
    processor: Any,
    cache: Any,
    options: GenerationOptions,
    image_paths: dict[str, list[Path]],
    data_jsonl: Path,
    allow_missing_priors: bool,
) -> None:
    with open(journal, "a", encoding="utf-8") as fh:
        for batch in track(batches, description=f"predict {data_jsonl.name}", total=len(batches)):
            queries = [
                _query(ex, image_paths[ex.id], processor, cache, data_jsonl, allow_missing_priors) for ex in batch
            ]
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


def _check_images(
    examples: list[InstructionExample], data_jsonl: Path, allow_outside_root: bool
) -> dict[str, list[Path]]:
    """Resolve every example image inside the dataset's image root and open its header (safe opener:
    allow-list, size limit, truncation) before any model is loaded. Returns paths per example id."""
    from sarvlm.core.paths import resolve_in_root
    from sarvlm.data.example_root import example_image_root
    from sarvlm.io.raster import raster_info

    root, allow = example_image_root(data_jsonl, allow_outside_root)
    checked: set[Path] = set()
    paths: dict[str, list[Path]] = {}
    for ex in examples:
        where = f"{data_jsonl}: example {ex.id!r}"
        try:
            resolved = [
                resolve_in_root(root, rel, allow_outside=allow, what="images", base=data_jsonl.parent)
                for rel in ex.images
            ]
            for path in resolved:
                if path in checked:
                    continue
                if not path.is_file():
                    raise SarvlmError(f"images: no such file {path}")
                raster_info(path)
                checked.add(path)
        except SarvlmError as exc:
            raise SarvlmError(f"{where}: {exc}") from None
        paths[ex.id] = resolved
    return paths


def _query(
    ex: InstructionExample, paths: list[Path], processor: Any, cache: Any, data_jsonl: Path, allow_missing: bool
) -> Query:
    images = []
    for path in paths:
        try:
            images.append(processor.load_image(path))
        except SarvlmError as exc:
            raise SarvlmError(f"{data_jsonl}: example {ex.id!r}: {exc}") from None
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
