"""``sarvlm finetune-caption`` / ``sarvlm caption``: fine-tune KLIP's decoder for captioning or VQA, then generate.

Fine-tuning settings follow FUSAR-KLIP Table 5 (paper 004 §4.4) by default:

=========  ==========  ======  =======  =========
task       max tokens  epochs  lr       optimizer
=========  ==========  ======  =======  =========
caption    100         12      1e-5     AdamW
vqa        35          12      2e-5     AdamW
=========  ==========  ======  =======  =========

plus BLIP's fine-tuning recipe for what the table leaves open (weight decay 0.05, cosine decay of
the learning rate to 0, batch 32, beam search with 3 beams). Table 5 lists ITC/ITM/MLM as the
losses of its runs; the decoder here is trained with the language-modelling loss of its targets
only, as BLIP's ``blip_decoder`` / ``blip_vqa`` do (see docs/foundation.md).

Run directory::

    RUN/run.json               task, settings, data, sizes
    RUN/loss.csv, loss.png     one row per step: epoch, lr, loss, seconds
    RUN/checkpoint/            latest resumable state (model + optimizer.pt + state.json), atomic
    RUN/final/                 the fine-tuned decoder (:class:`KlipDecoderModel`)

Batches: the items are visited in ``default_rng([seed, epoch])`` permutations laid end to end, so
a batch may span two epochs and data smaller than one batch still trains; a resumed run draws the
same batches as one never interrupted.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarvlm.core.atomic import atomic_dir, atomic_open, ensure_writable_dir
from sarvlm.core.errors import ConfigurationError, InputError, SarvlmError
from sarvlm.core.progress import track
from sarvlm.foundation.checkpoint import write_loss_csv, write_training_checkpoint
from sarvlm.foundation.decoder_data import DecoderItem, _first_row, load_decoder_items
from sarvlm.foundation.optim import make_optimizer

# FUSAR-KLIP Table 5 (token budget, epochs, learning rate) + BLIP's fine-tuning defaults.
TABLE5: dict[str, dict[str, Any]] = {
    "caption": {"max_tokens": 100, "epochs": 12, "lr": 1e-5},
    "vqa": {"max_tokens": 35, "epochs": 12, "lr": 2e-5},
}
COMMON: dict[str, Any] = {
    "batch_size": 32,
    "weight_decay": 0.05,
    "label_smoothing": 0.0,
    "question_tokens": 35,
    "checkpoint_every": 500,
}
GENERATION: dict[str, dict[str, Any]] = {
    "caption": {"num_beams": 3, "max_new_tokens": 100, "min_new_tokens": 5},
    "vqa": {"num_beams": 3, "max_new_tokens": 10, "min_new_tokens": 1},
}
LOSS_COLUMNS = ("step", "epoch", "lr", "loss", "seconds")


def default_settings(task: str, **overrides: Any) -> dict[str, Any]:
    """Table 5 settings of ``task`` with ``overrides`` (``None`` values ignored); bad values fail with one line."""
    if task not in TABLE5:
        raise InputError(f"--task: unknown decoder task {task!r} (expected caption or vqa)")
    s = {**COMMON, **TABLE5[task], **{k: v for k, v in overrides.items() if v is not None}}
    for key in ("max_tokens", "epochs", "batch_size", "question_tokens", "checkpoint_every"):
        if not isinstance(s[key], int) or s[key] <= 0:
            raise ConfigurationError(f"--{key.replace('_', '-')} must be a positive integer, got {s[key]!r}")
    if not s["lr"] > 0 or s["weight_decay"] < 0 or not 0 <= s["label_smoothing"] < 1:
        raise ConfigurationError("--lr must be positive, weight decay >= 0, label smoothing in [0, 1)")
    if s["max_tokens"] < 3:
        raise ConfigurationError("--max-tokens must be at least 3 ([DEC] text [SEP])")
    return s


@dataclass
class FinetuneResult:
    run_dir: Path
    steps: int
    final_dir: Path
    resumed_from: int
    final_loss: float


def _load_pixels(items: list[DecoderItem], config) -> torch.Tensor:
    from sarvlm.foundation.transforms import load_sar_image

    v = config.vision
    window = (float(config.db_window[0]), float(config.db_window[1]))
    out = torch.empty(len(items), v.num_channels, v.image_size, v.image_size)
    for i, it in enumerate(track(items, description=f"reading {len(items)} images", total=len(items))):
        out[i] = load_sar_image(it.image, v.image_size, v.num_channels, window)
    return out


def batch_indices(step: int, n: int, global_bs: int, rank: int, bs: int, seed: int) -> np.ndarray:
    """Item indices of ``rank``'s share of global batch ``step``: per-epoch permutations laid end to end."""
    pos = np.arange(step * global_bs + rank * bs, step * global_bs + (rank + 1) * bs)
    epochs = pos // n
    out = np.empty(len(pos), dtype=np.int64)
    for e in np.unique(epochs):
        perm = np.random.default_rng([seed, int(e)]).permutation(n)
        sel = epochs == e
        out[sel] = perm[pos[sel] % n]
    return out


def cosine_lr(lr: float, step: int, total: int) -> float:
    return 0.5 * lr * (1.0 + math.cos(math.pi * step / max(1, total)))


def _plot_loss(run: Path, rows: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sarvlm.core.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in rows], [float(r["loss"]) for r in rows], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("language-modelling loss")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(run / "loss.png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _check_run_dir(run: Path, resume: bool, overwrite: bool) -> None:
    if run.exists() and not run.is_dir():
        raise InputError(f"{run}: exists and is not a directory")
    if resume:
        if (run / "final").is_dir():
            raise InputError(f"{run}: this run already finished (final/ exists); nothing to resume")
        if not (run / "checkpoint" / "state.json").is_file():
            raise InputError(f"{run}: no checkpoint to resume from (start the run without --resume)")
    elif run.exists() and any(run.iterdir()) and not overwrite:
        hint = " (an interrupted run: add --resume to continue it)" if (run / "checkpoint").is_dir() else ""
        raise InputError(f"{run}: output directory exists and is not empty{hint}; use --overwrite to start again")


def finetune_decoder(
    model_dir: str | Path,
    data: str | Path,
    run_dir: str | Path,
    *,
    task: str = "caption",
    steps: int | None = None,
    settings: dict[str, Any] | None = None,
    tasks: list[str] | None = None,
    text_field: str | None = None,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    log=print,
) -> FinetuneResult:
    """Fine-tune the decoder of the KLIP model in ``model_dir`` on ``data``; see the module docstring.

    ``settings``: from :func:`default_settings`; ``steps`` overrides ``settings["epochs"]``.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from sarvlm.foundation.decoder_model import KlipDecoderModel
    from sarvlm.foundation.model import KlipModel

    run = Path(run_dir)
    s = settings or default_settings(task)
    if steps is not None and steps <= 0:
        raise ConfigurationError("--steps must be positive")
    _check_run_dir(run, resume, overwrite)
    items = load_decoder_items(data, task, tasks=tasks, text_field=text_field)

    cuda = torch.cuda.is_available()
    accelerator = Accelerator(cpu=not cuda, mixed_precision="bf16" if cuda and torch.cuda.is_bf16_supported() else "no")
    world, bs = accelerator.num_processes, s["batch_size"]
    global_bs = bs * world
    steps_per_epoch = max(1, math.ceil(len(items) / global_bs))
    total = steps if steps is not None else s["epochs"] * steps_per_epoch
    set_seed(seed)

    start, rows, added = 0, [], []
    if resume:
        ck = run / "checkpoint"
        state = json.loads((ck / "state.json").read_text(encoding="utf-8"))
        if state.get("data") != str(Path(data).resolve()) or state.get("total") != total or state.get("task") != task:
            raise InputError(
                f"{run}: the checkpoint was made with other data, steps or --task; resume with the same options (run.json)"
            )
        model = KlipDecoderModel.from_pretrained(ck)
        rows = json.loads((ck / "loss.json").read_text(encoding="utf-8"))
        start = int(state["step"])
    else:
        klip = KlipModel.from_pretrained(model_dir)
        model = KlipDecoderModel.from_klip(klip, task, s)
        del klip
        added = model.add_characters([it.answer or "" for it in items] + [it.question or "" for it in items])
        if added:
            log(f"added {len(added)} characters the pretrained vocabulary lacks: {' '.join(added)}")
    cfg = model.config
    device = accelerator.device
    pixels = _load_pixels(items, cfg)
    if not resume:
        # only now, with every input read: a bad image leaves no new directory and a replaced run intact
        ensure_writable_dir(run)
        if overwrite:
            import shutil

            for name in ("checkpoint", "final"):
                shutil.rmtree(run / name, ignore_errors=True)
    tgt_ids, tgt_mask = model.tokenize([it.answer or "" for it in items], s["max_tokens"])
    unk = model.tokenizer.unk_token_id
    unknown = int(((tgt_ids == unk) & (tgt_mask == 1)).any(1).sum()) if unk is not None else 0
    if unknown:  # e.g. digits in answers to a model whose vocabulary was built from captions without them
        first = next(it.answer for it, row in zip(items, tgt_ids) if (row == unk).any())
        log(
            f"warning: {unknown} of {len(items)} targets hold characters the model's tokenizer cannot spell "
            f"([UNK], e.g. in {first!r}); the decoder cannot generate them"
        )
    q_ids = q_mask = None
    if task == "vqa":
        q_ids, q_mask = model.tokenize([it.question or "" for it in items], s["question_tokens"])

    optimizer = make_optimizer(model, s["lr"], s["weight_decay"])
    if resume:
        optimizer.load_state_dict(torch.load(run / "checkpoint" / "optimizer.pt", weights_only=True))
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    model, optimizer = accelerator.prepare(model, optimizer)
    core = accelerator.unwrap_model(model)

    if accelerator.is_main_process and not resume:
        with atomic_open(run / "run.json") as fh:
            json.dump(
                {
                    "task": task,
                    "settings": s,
                    "model": str(Path(model_dir).resolve()),
                    "data": str(Path(data).resolve()),
                    "items": len(items),
                    "added_characters": added,
                    "targets_with_unknown_tokens": unknown,
                    "tasks": sorted({it.task for it in items}),
                    "steps": total,
                    "steps_per_epoch": steps_per_epoch,
                    "processes": world,
                    "seed": seed,
                    "device": str(device),
                    "mixed_precision": accelerator.mixed_precision,
                },
                fh,
                indent=2,
            )
            fh.write("\n")

    def checkpoint(step: int) -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            st = {
                "step": step,
                "total": total,
                "task": task,
                "data": str(Path(data).resolve()),
                "torch_rng": torch.get_rng_state().tolist(),
            }
            write_training_checkpoint(run, core, optimizer, st, rows, LOSS_COLUMNS)

    model.train()
    rank = accelerator.process_index
    for step in track(range(start, total), description=f"fine-tune {task} decoder", total=total - start):
        t0 = time.perf_counter()
        idx = torch.from_numpy(batch_indices(step, len(items), global_bs, rank, bs, seed))
        keep = int(tgt_mask[idx].sum(1).max())
        kwargs: dict[str, torch.Tensor] = {}
        if q_ids is not None and q_mask is not None:
            qk = int(q_mask[idx].sum(1).max())
            kwargs = {"question_ids": q_ids[idx, :qk].to(device), "question_mask": q_mask[idx, :qk].to(device)}
        lr = cosine_lr(s["lr"], step, total)
        for g in optimizer.param_groups:
            g["lr"] = lr
        with accelerator.autocast():
            loss = model(
                pixels[idx].to(device),
                tgt_ids[idx, :keep].to(device),
                tgt_mask[idx, :keep].to(device),
                label_smoothing=s["label_smoothing"],
                **kwargs,
            )
        if not torch.isfinite(loss.detach()):
            raise SarvlmError(f"finetune-caption: loss became {float(loss.detach())} at step {step} (lower --lr?)")
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        rows.append(
            {
                "step": step + 1,
                "epoch": round((step + 1) / steps_per_epoch, 4),
                "lr": f"{lr:.3e}",
                "loss": round(float(loss.detach()), 6),
                "seconds": round(time.perf_counter() - t0, 5),
            }
        )
        if (step + 1) % s["checkpoint_every"] == 0 and step + 1 < total:
            checkpoint(step + 1)

    if accelerator.is_main_process:
        with atomic_dir(run / "final", overwrite=True) as tmp:
            core.save_pretrained(tmp)
        write_loss_csv(run, rows, LOSS_COLUMNS)
        _plot_loss(run, rows, f"KLIP {task} decoder fine-tuning")
        import shutil

        shutil.rmtree(run / "checkpoint", ignore_errors=True)
    accelerator.wait_for_everyone()
    tail = [float(r["loss"]) for r in rows[-10:]]
    return FinetuneResult(run, total, run / "final", start, sum(tail) / len(tail) if tail else math.nan)


def resolve_decoder_dir(path: str | Path) -> Path:
    """A fine-tuning run directory means its ``final/`` model."""
    p = Path(path)
    return p / "final" if not (p / "config.json").is_file() and (p / "final" / "config.json").is_file() else p


def predict_decoder(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    tasks: list[str] | None = None,
    text_field: str | None = None,
    num_beams: int | None = None,
    max_new_tokens: int | None = None,
    min_new_tokens: int | None = None,
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """Generate a caption / answer for every item of ``data`` and write ``out`` (Prediction JSONL, atomic).

    Generation defaults depend on the model's task (:data:`GENERATION`); ``num_beams=1`` is greedy.
    For instruction examples the data's fingerprint is recorded beside ``out`` for ``sarvlm eval``.
    """
    from sarvlm.core.example import Prediction
    from sarvlm.foundation.decoder_model import KlipDecoderModel

    model = KlipDecoderModel.from_pretrained(resolve_decoder_dir(model_dir))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    gen = {**GENERATION[model.task]}
    for k, v in (("num_beams", num_beams), ("max_new_tokens", max_new_tokens), ("min_new_tokens", min_new_tokens)):
        if v is not None:
            if v <= 0:
                raise ConfigurationError(f"--{k.replace('_', '-')} must be positive, got {v}")
            gen[k] = v
    if batch_size <= 0:
        raise ConfigurationError(f"--batch-size must be positive, got {batch_size}")
    items = load_decoder_items(data, model.task, tasks=tasks, text_field=text_field, need_answer=False)
    pixels = _load_pixels(items, model.config)
    s = model.settings
    rows: list[dict[str, Any]] = []
    for start in track(range(0, len(items), batch_size), description=f"{model.task} generation"):
        chunk = items[start : start + batch_size]
        px = pixels[start : start + batch_size].to(device)
        q = {}
        if model.task == "vqa":
            qi, qm = model.tokenize([it.question or "" for it in chunk], s.get("question_tokens", 35), device)
            q = {"question_ids": qi, "question_mask": qm}
        texts = model.generate(px, **q, **gen)
        rows += [
            Prediction(id=it.id, task=it.task, prediction=t).model_dump(mode="json") for it, t in zip(chunk, texts)
        ]
    out = Path(out)
    with atomic_open(out) as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    if "messages" in (_first_row(Path(data)) or {}):
        from sarvlm.data.fingerprint import record_prediction_source

        record_prediction_source(out, data)
    return rows


def answered_examples(data: str | Path, ids: set[str], predictions: str | Path) -> Path:
    """``data`` itself when ``ids`` cover all its examples; else the answered examples copied verbatim to
    ``examples.jsonl`` beside ``predictions`` (whose dataset fingerprint then names that file)."""
    from sarvlm.data.fingerprint import record_prediction_source

    data = Path(data)
    with open(data, encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip()]
    keep = [line for line in lines if json.loads(line).get("id") in ids]
    if len(keep) == len(lines):
        return data
    subset = Path(predictions).with_name("examples.jsonl")
    with atomic_open(subset) as fh:
        fh.writelines(line if line.endswith("\n") else line + "\n" for line in keep)
    record_prediction_source(predictions, subset)
    return subset


def score_record_captions(
    predictions: list[dict[str, Any]], data: str | Path, out_dir: str | Path, text_field: str | None = None
) -> dict[str, Any]:
    """Caption metrics (:func:`sarvlm.metrics.caption.caption_scores`) of predictions for sample records,
    every caption of the chosen style being a reference; writes ``out_dir/metrics.json`` (atomic)."""
    from sarvlm.core.record import read_samples
    from sarvlm.metrics.caption import caption_scores

    refs = {}
    for rec in read_samples(data):
        caps = [c.text for c in rec.captions if text_field is None or c.style == text_field]
        if caps:
            refs[rec.id] = caps
    if not refs:
        raise InputError(f"{data}: no reference captions to score against")
    preds = {p["id"]: p["prediction"] for p in predictions}
    scores = caption_scores(refs, {k: preds.get(k, "") for k in refs})
    with atomic_dir(out_dir, overwrite=True) as tmp:
        with open(tmp / "metrics.json", "w", encoding="utf-8") as fh:
            json.dump({"tasks": {"caption": scores}, "references": "record captions"}, fh, indent=2)
            fh.write("\n")
    return scores
