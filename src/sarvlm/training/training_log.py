"""Training log: a CSV of the Trainer's log history and a loss-curve PNG.

Both are rebuilt from ``TrainerState.log_history``, which the Trainer saves with each
checkpoint and restores on resume, so a resumed run's log is the same as an
uninterrupted one's. Timing fields are left out: same seed → byte-identical CSV.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from sarvlm.core.atomic import atomic_open, atomic_path

COLUMNS = ("step", "epoch", "loss", "learning_rate", "grad_norm", "eval_loss")


def log_rows(history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per training-loss or eval-loss entry of the log history."""
    rows = []
    for entry in history:
        if "loss" not in entry and "eval_loss" not in entry:
            continue  # the end-of-training summary (runtime, samples/s) is not a curve point
        rows.append({k: entry.get(k) for k in COLUMNS})
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, 10))
    return str(value)


def write_log_csv(path: Path, history: Sequence[dict[str, Any]]) -> int:
    """Write the log CSV atomically; returns the number of rows."""
    rows = log_rows(history)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_fmt(row[c]) for c in COLUMNS])
    with atomic_open(path) as fh:
        fh.write(buf.getvalue())
    return len(rows)


def read_log_csv(path: Path) -> list[dict[str, float | None]]:
    """Read a log CSV back (empty cells → None)."""
    with open(path, encoding="utf-8") as fh:
        return [{k: (float(v) if v != "" else None) for k, v in row.items()} for row in csv.DictReader(fh)]


def plot_loss_curve(path: Path, history: Sequence[dict[str, Any]], title: str) -> None:
    """Training (and evaluation) loss against step, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = log_rows(history)
    train = [(r["step"], r["loss"]) for r in rows if r["loss"] is not None and math.isfinite(r["loss"])]
    evals = [(r["step"], r["eval_loss"]) for r in rows if r["eval_loss"] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", color="tab:blue")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval loss", color="tab:orange")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (assistant tokens)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no loss logged yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        # no timestamps in the PNG metadata, so the file is byte-stable for a given curve
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


class TrainingLogCallback(TrainerCallback):
    """Keeps ``log.csv`` current while training and draws ``loss.png`` at checkpoints and at the end."""

    def __init__(self, stage_dir: Path, title: str) -> None:
        self.stage_dir = Path(stage_dir)
        self.title = title

    def on_log(self, args, state, control, **kwargs):  # noqa: ANN001 - Trainer callback signature
        if state.is_world_process_zero:
            write_log_csv(self.stage_dir / "log.csv", state.log_history)

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
        if state.is_world_process_zero:
            plot_loss_curve(self.stage_dir / "loss.png", state.log_history, self.title)

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if state.is_world_process_zero:
            write_log_csv(self.stage_dir / "log.csv", state.log_history)
            plot_loss_curve(self.stage_dir / "loss.png", state.log_history, self.title)
