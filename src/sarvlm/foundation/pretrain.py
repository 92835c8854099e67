"""``sarvlm pretrain``: KLIP pretraining on Accelerate, resumable, with optional SCIO phases.

Run directory::

    RUN/run.json               config, data, options, sizes
    RUN/checkpoint/            latest resumable state (model dir + optimizer.pt + state.json), atomic
    RUN/loss.csv, loss.png     one row per step: phase, lr, total / ITC / ITM / MLM loss, seconds
    RUN/scio/                  (--scio) fragments.jsonl, summary.json, refined.jsonl, *.png
    RUN/final/                 the trained model (``KlipModel.from_pretrained``)

Steps: ``--steps N`` or ``--epochs E`` (an epoch = ``len(data) // global batch`` steps, the last
partial batch dropped). With SCIO the run is split into three phases by ``config.scio.phases``
(paper: 12 + 12 + 12 epochs): phase 1 trains on the full texts; at its end phase 2 screens the
fragments and the following steps exclude dropped fragments from the MLM targets; at the end of
phase 2, phase 3 reconstructs dropped fragments and the rest of the run trains on refined texts.

Determinism: batches come from ``default_rng([seed, epoch])`` permutations; masking and hard
negatives from a ``torch.Generator`` seeded with ``seed``; all of it is saved in checkpoints, so
a resumed run continues with the same losses as one that was never interrupted (CPU).
LR: linear warm-up from ``warmup_lr`` to ``lr`` over ``warmup_steps``, then ``lr * decay**epoch``
floored at ``min_lr`` (BLIP's schedule); the ITC soft-target weight ramps up over epoch 1.
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
from sarvlm.foundation.config import KlipConfig
from sarvlm.foundation.data import KlipItem, load_images, load_items, render_fragment
from sarvlm.foundation.fragments import drop_fragments, swap_fragment_negatives
from sarvlm.foundation.optim import make_optimizer

LOSS_COLUMNS = ("step", "epoch", "phase", "lr", "loss", "itc", "itm", "mlm", "seconds", "data_seconds")


@dataclass
class PretrainResult:
    run_dir: Path
    steps: int
    final_dir: Path
    resumed_from: int
    scio: dict[str, Any] | None


def encode_fragments(
    tokenizer, items: list[KlipItem], max_length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokenise each text fragment by fragment. Returns ``input_ids``, ``attention_mask`` and the
    fragment index of every token (−1 for [CLS]/[SEP]/padding), all ``(N, L)``."""
    rows, frags = [], []
    for it in items:
        ids, owner = [tokenizer.cls_token_id], [-1]
        for j, (k, v) in enumerate(zip(it.fields, it.values)):
            piece = tokenizer(render_fragment(k, v), add_special_tokens=False)["input_ids"]
            ids += piece
            owner += [j] * len(piece)
        ids, owner = ids[: max_length - 1] + [tokenizer.sep_token_id], owner[: max_length - 1] + [-1]
        rows.append(ids)
        frags.append(owner)
    length = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    frag = torch.full((len(rows), length), -1, dtype=torch.long)
    att = torch.zeros((len(rows), length), dtype=torch.long)
    for i, (r, f) in enumerate(zip(rows, frags)):
        input_ids[i, : len(r)] = torch.tensor(r)
        frag[i, : len(f)] = torch.tensor(f)
        att[i, : len(r)] = 1
    return input_ids, att, frag


def learning_rate(cfg: KlipConfig, step: int, steps_per_epoch: int) -> float:
    t = cfg.train
    if step < t.warmup_steps:
        return t.warmup_lr + (t.lr - t.warmup_lr) * step / max(1, t.warmup_steps)
    return max(t.min_lr, t.lr * t.lr_decay_rate ** (step // steps_per_epoch))


def phase_bounds(total: int, fractions: list[float]) -> tuple[int, int]:
    """First step of phase 2 and of phase 3."""
    s = sum(fractions)
    s1 = int(round(total * fractions[0] / s))
    s2 = int(round(total * (fractions[0] + fractions[1]) / s))
    return max(1, s1), max(s1 + 1, s2)


class TrainingTexts:
    """The texts the current phase trains on, tokenised once per phase."""

    def __init__(self, tokenizer, items: list[KlipItem], max_length: int, keeps: list[list[bool]] | None = None):
        self.ids, self.att, frag = encode_fragments(tokenizer, items, max_length)
        self.frag = frag
        # field id of each item's fragment j (−1 where the item has fewer fragments): fragment swaps
        # only exchange fragments of the same field
        names = sorted({f for it in items for f in it.fields})
        width = max(len(it.fields) for it in items)
        self.field_of = torch.full((len(items), width), -1, dtype=torch.long)
        for i, it in enumerate(items):
            for j, f in enumerate(it.fields):
                self.field_of[i, j] = names.index(f) if f else -1
        # every fragment alone as a text ([CLS] fragment [SEP]) with a (field, value) id, for the
        # fragment-level ITC loss; SCIO's dropped fragments are left out (value −1)
        self.frag_ids, self.frag_att = _fragment_texts(tokenizer, items, max_length)
        value_ids: dict[tuple[str, str], int] = {}
        self.frag_value = torch.full((len(items), width), -1, dtype=torch.long)
        for i, it in enumerate(items):
            for j, (f, v) in enumerate(zip(it.fields, it.values)):
                if keeps is None or keeps[i][j]:
                    self.frag_value[i, j] = value_ids.setdefault(
                        (f, v.strip().rstrip(".").strip().lower()), len(value_ids)
                    )
        self.protect = None
        if keeps is not None:  # phase 2: dropped fragments are not MLM targets
            protect = torch.zeros_like(frag, dtype=torch.bool)
            for i, keep in enumerate(keeps):
                for j, k in enumerate(keep):
                    if not k:
                        protect[i] |= frag[i] == j
            self.protect = protect


def _fragment_texts(tokenizer, items: list[KlipItem], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, F, Lf)`` ids and attention of every item's fragments as stand-alone texts (padding beyond)."""
    width = max(len(it.fields) for it in items)
    rows = [[render_fragment(k, v) for k, v in zip(it.fields, it.values)] for it in items]
    flat = [t for r in rows for t in r]
    enc = tokenizer(flat, padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
    length = enc["input_ids"].shape[1]
    ids = torch.full((len(items), width, length), tokenizer.pad_token_id, dtype=torch.long)
    att = torch.zeros((len(items), width, length), dtype=torch.long)
    k = 0
    for i, r in enumerate(rows):
        ids[i, : len(r)] = enc["input_ids"][k : k + len(r)]
        att[i, : len(r)] = enc["attention_mask"][k : k + len(r)]
        k += len(r)
    return ids, att


def _batch_fragments(texts: TrainingTexts, batch: torch.Tensor, device) -> tuple[torch.Tensor, ...]:
    """The batch's fragments with a value id, flattened: ``(ids (M, Lf), att, row (M,), field (M,), value (M,))``."""
    value = texts.frag_value[batch]  # (B, F)
    rows, cols = (value >= 0).nonzero(as_tuple=True)
    ids = texts.frag_ids[batch][rows, cols]
    att = texts.frag_att[batch][rows, cols]
    keep = int(att.sum(1).max())
    field = texts.field_of[batch][rows, cols]
    return (
        ids[:, :keep].to(device),
        att[:, :keep].to(device),
        rows.to(device),
        field.to(device),
        value[rows, cols].to(device),
    )


def batch_inputs(
    texts: TrainingTexts,
    batch: torch.Tensor,
    config: KlipConfig,
    generator: torch.Generator,
    pad_id: int,
    device: torch.device | str,
) -> dict[str, Any]:
    """Text inputs of one pretraining step for :meth:`KlipModel.forward`, for the batch rows ``batch`` ``(B,)``.

    ``input_ids``/``attention_mask`` ``(B, L)`` cut to the longest text, ``mlm_protect`` (SCIO phase 2),
    and, as ``config.train`` asks, fragment dropout, fragment-swap ITM negatives and the fragments for
    the fragment-level ITC loss. ``benchmarks/bench_foundation.py`` times the step through this too.
    """
    ids, att = texts.ids[batch], texts.att[batch]
    keep_cols = int(att.sum(1).max())
    ids, att = ids[:, :keep_cols].to(device), att[:, :keep_cols].to(device)
    protect = texts.protect[batch][:, :keep_cols].to(device) if texts.protect is not None else None
    frag = texts.frag[batch][:, :keep_cols].to(device)
    if config.train.fragment_keep < 1.0:
        ids, att, frag, protect = drop_fragments(ids, att, frag, config.train.fragment_keep, generator, protect, pad_id)
    swaps = None
    if config.train.itm_fragment_negatives:
        swaps = swap_fragment_negatives(ids, att, frag, texts.field_of[batch], batch, generator, pad_id)
    fragments = _batch_fragments(texts, batch, device) if config.train.loss_weights.get("fragment_itc", 0) else None
    return {
        "input_ids": ids,
        "attention_mask": att,
        "mlm_protect": protect,
        "itm_text_negatives": swaps,
        "fragments": fragments,
    }


def _plot_loss(run: Path, rows: list[dict], bounds: tuple[int, int] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sarvlm.core.atomic import atomic_path

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("loss", "itc", "itm", "mlm"):
        ax.plot(steps, [float(r[key]) for r in rows], label=key.upper() if key != "loss" else "total", lw=1)
    if bounds:
        for b, name in zip(bounds, ("phase 2", "phase 3")):
            ax.axvline(b, color="grey", ls="--", lw=0.8)
            ax.text(b, ax.get_ylim()[1], f" {name}", va="top", fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("KLIP pretraining")
    ax.legend()
    fig.tight_layout()
    with atomic_path(run / "loss.png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _check_run_dir(run: Path, resume: bool, overwrite: bool) -> None:
    if run.exists() and not run.is_dir():
        raise InputError(f"{run}: exists and is not a directory")
    busy = run.exists() and any(run.iterdir())
    if resume:
        if (run / "final").is_dir():
            raise InputError(f"{run}: this run already finished (final/ exists); nothing to resume")
        if not (run / "checkpoint" / "state.json").is_file():
            raise InputError(f"{run}: no checkpoint to resume from (start the run without --resume)")
    elif busy and not overwrite:
        hint = " (an interrupted run: add --resume to continue it)" if (run / "checkpoint").is_dir() else ""
        raise InputError(f"{run}: output directory exists and is not empty{hint}; use --overwrite to start again")


def pretrain(
    config: KlipConfig,
    data: str | Path,
    run_dir: str | Path,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    scio: bool = False,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    text_field: str = "structured",
    checkpoint_every: int | None = None,
    log=print,
) -> PretrainResult:
    """Pretrain (or resume) a KLIP model on the sample records in ``data``; see the module docstring."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from sarvlm.foundation.model import KlipModel, build_model
    from sarvlm.foundation.scio import attach_truth, reconstruct, screen

    run = Path(run_dir)
    if steps is not None and epochs is not None:
        raise ConfigurationError("give --steps or --epochs, not both")
    if (steps is not None and steps <= 0) or (epochs is not None and epochs <= 0):
        raise ConfigurationError("--steps/--epochs must be positive")
    _check_run_dir(run, resume, overwrite)
    items = load_items(data, text_field)

    cuda = torch.cuda.is_available()
    accelerator = Accelerator(cpu=not cuda, mixed_precision="bf16" if cuda and torch.cuda.is_bf16_supported() else "no")
    world = accelerator.num_processes
    bs = config.train.batch_size
    global_bs = bs * world
    if len(items) < global_bs:
        raise InputError(f"{data}: {len(items)} samples, fewer than one batch ({global_bs}); lower train.batch_size")
    steps_per_epoch = len(items) // global_bs
    total = steps if steps is not None else (epochs or config.train.epochs) * steps_per_epoch
    every = checkpoint_every or config.train.checkpoint_every
    bounds = phase_bounds(total, config.scio.phases) if scio else None
    if scio and bounds[1] >= total:
        raise ConfigurationError(f"--scio needs at least 3 steps per phase; {total} steps is too few")

    set_seed(seed)
    start, rows, scio_state = 0, [], None
    if resume:
        ck = run / "checkpoint"
        state = json.loads((ck / "state.json").read_text())
        if state.get("data") != str(Path(data).resolve()) or state.get("total") != total or state.get("scio") != scio:
            raise InputError(
                f"{run}: the checkpoint was made with other data, steps or --scio; "
                "resume with the same options (see run.json)"
            )
        model = KlipModel.from_pretrained(ck)
        rows = json.loads((ck / "loss.json").read_text())
        start = int(state["step"])
        scio_state = state.get("scio_state")
    else:
        ensure_writable_dir(run)
        model = build_model(config, [it.text() for it in items])
    cfg = model.config
    device = accelerator.device
    images = load_images(items, cfg.vision.image_size, cfg.vision.num_channels, cfg.db_window)
    if overwrite and not resume:  # only now: a bad image or config must not cost the user the old run
        import shutil

        for name in ("checkpoint", "final", "scio"):
            if (run / name).exists():
                shutil.rmtree(run / name)

    optimizer = make_optimizer(model, cfg.train.lr, cfg.train.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    if resume:
        optimizer.load_state_dict(torch.load(run / "checkpoint" / "optimizer.pt", weights_only=True))
        gen.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    model, optimizer = accelerator.prepare(model, optimizer)
    core = accelerator.unwrap_model(model)

    if accelerator.is_main_process and not resume:
        with atomic_open(run / "run.json") as fh:
            json.dump(
                {
                    "config": cfg.to_dict(),
                    "data": str(Path(data).resolve()),
                    "samples": len(items),
                    "text_field": text_field,
                    "steps": total,
                    "steps_per_epoch": steps_per_epoch,
                    "processes": world,
                    "scio": scio,
                    "scio_phase_starts": list(bounds) if bounds else None,
                    "seed": seed,
                    "device": str(device),
                    "mixed_precision": accelerator.mixed_precision,
                },
                fh,
                indent=2,
            )
            fh.write("\n")

    # ---- SCIO state: which texts train in the current phase ----
    decisions = keeps = None
    train_items = items
    if scio_state:
        keeps = scio_state.get("keeps")
        if scio_state.get("refined"):
            train_items = [
                KlipItem(
                    id=it.id, image=it.image, fields=r["fields"], values=r["values"], label=it.label, record=it.record
                )
                for it, r in zip(items, scio_state["refined"])
            ]
    texts = TrainingTexts(core.tokenizer, train_items, cfg.text.max_length, keeps if train_items is items else None)

    def run_scio_phase(step: int) -> None:
        nonlocal decisions, keeps, train_items, texts, scio_state
        if step == bounds[0]:
            log(f"SCIO phase 2 (screening) at step {step}")
            decisions, keeps = screen(
                core,
                items,
                images,
                cfg.scio.itc_margin,
                cfg.scio.itm_margin,
                cfg.scio.chunk,
                device,
                rule=cfg.scio.rule,
                use_itm=cfg.scio.use_itm,
            )
            scio_state = {"keeps": keeps, "decisions": [[d.to_dict() for d in r] for r in decisions]}
            texts = TrainingTexts(core.tokenizer, items, cfg.text.max_length, keeps)
        elif step == bounds[1]:
            log(f"SCIO phase 3 (reconstruction) at step {step}")
            if decisions is None:
                from sarvlm.foundation.scio import FragmentDecision

                decisions = [[FragmentDecision(**d) for d in r] for r in scio_state["decisions"]]
            train_items = reconstruct(core, items, images, decisions, keeps, device, cfg.scio.chunk)
            scio_state = {
                "keeps": keeps,
                "decisions": [[d.to_dict() for d in r] for r in decisions],
                "refined": [{"fields": it.fields, "values": it.values} for it in train_items],
            }
            texts = TrainingTexts(core.tokenizer, train_items, cfg.text.max_length, None)
        core.train()

    def checkpoint(step: int) -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            state = {
                "step": step,
                "total": total,
                "data": str(Path(data).resolve()),
                "scio": scio,
                "generator": gen.get_state().tolist(),
                "torch_rng": torch.get_rng_state().tolist(),
                "scio_state": scio_state,
            }
            write_training_checkpoint(run, core, optimizer, state, rows, LOSS_COLUMNS)

    model.train()
    rank = accelerator.process_index
    perm_epoch, perm = -1, None
    for step in track(range(start, total), description=f"pretrain {cfg.name}", total=total - start):
        if bounds and step in bounds and not (scio_state and _phase_done(scio_state, step, bounds)):
            run_scio_phase(step)
            checkpoint(step)
        t0 = time.perf_counter()
        epoch = step // steps_per_epoch
        if epoch != perm_epoch:
            perm = np.random.default_rng([seed, epoch]).permutation(len(items))
            perm_epoch = epoch
        k = step % steps_per_epoch
        batch = torch.from_numpy(perm[k * global_bs + rank * bs : k * global_bs + (rank + 1) * bs].copy())
        px = images[batch].to(device)
        inputs = batch_inputs(texts, batch, cfg, gen, core.ids["pad"], device)
        t_data = time.perf_counter() - t0
        lr = learning_rate(cfg, step, steps_per_epoch)
        for g in optimizer.param_groups:
            g["lr"] = lr
        alpha = cfg.alpha * min(1.0, (step + 1) / steps_per_epoch) if epoch == 0 else cfg.alpha
        with accelerator.autocast():
            out = model(px, idx=batch.to(device), alpha=alpha, generator=gen, **inputs)
        if not torch.isfinite(out.loss.detach()):
            raise SarvlmError(f"pretrain: loss became {float(out.loss.detach())} at step {step} (lower train.lr?)")
        accelerator.backward(out.loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        core.itc.clamp_()
        phase = 1 if not bounds else (1 if step < bounds[0] else 2 if step < bounds[1] else 3)
        rows.append(
            {
                "step": step + 1,
                "epoch": round((step + 1) / steps_per_epoch, 4),
                "phase": phase,
                "lr": f"{lr:.3e}",
                "loss": round(float(out.loss.detach()), 6),
                "itc": round(float(out.loss_itc), 6),
                "itm": round(float(out.loss_itm), 6),
                "mlm": round(float(out.loss_mlm), 6),
                "seconds": round(time.perf_counter() - t0, 5),
                "data_seconds": round(t_data, 5),
            }
        )
        if (step + 1) % every == 0 and step + 1 < total:
            checkpoint(step + 1)

    scio_summary = None
    if accelerator.is_main_process:
        if scio:
            from sarvlm.foundation.scio import FragmentDecision
            from sarvlm.foundation.scio_report import write_scio_outputs

            decisions = [[FragmentDecision(**d) for d in r] for r in scio_state["decisions"]]
            attach_truth(decisions, items)
            scio_summary = write_scio_outputs(run / "scio", Path(data), items, decisions, train_items)
        final = run / "final"
        with atomic_dir(final, overwrite=True) as tmp:
            core.save_pretrained(tmp)
        write_loss_csv(run, rows, LOSS_COLUMNS)
        _plot_loss(run, rows, bounds)
        import shutil

        shutil.rmtree(run / "checkpoint", ignore_errors=True)
    accelerator.wait_for_everyone()
    return PretrainResult(run, total, run / "final", start, scio_summary)


def _phase_done(scio_state: dict, step: int, bounds: tuple[int, int]) -> bool:
    """On resume: was the SCIO work scheduled at ``step`` already done (and saved)?"""
    if step == bounds[0]:
        return scio_state.get("keeps") is not None
    return scio_state.get("refined") is not None


def final_loss(rows: list[dict], last: int = 10) -> float:
    tail = [float(r["loss"]) for r in rows[-last:]]
    return sum(tail) / len(tail) if tail else math.nan
