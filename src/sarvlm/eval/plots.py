"""Evaluation plots (matplotlib, Agg backend): per-task bars, confusion matrices,
count-error histogram, detection P/R per IoU threshold, and the run comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Stable PNG bytes: no software/date metadata.
_META = {"Software": None}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _headline(task: str, m: dict[str, Any]) -> tuple[str, float] | None:
    for key, label in (
        ("accuracy", "accuracy"),
        ("acc100", "Acc@100"),
        ("top1", "top-1"),
        ("cider", "CIDEr"),
        ("f1", "F1"),
    ):
        v = m.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return label, float(v)
    if task == "detect" and isinstance(m.get("0.5"), dict):
        return "F1@0.5", float(m["0.5"]["all"]["f1"])
    return None


def plot_task_bars(metrics: dict[str, Any], path: Path) -> None:
    """Headline metric per task; CIDEr (0-10 scale, x100) gets its own panel."""
    plt = _plt()
    frac, cider = [], []
    for task, m in sorted(metrics.get("tasks", {}).items()):
        h = _headline(task, m) if isinstance(m, dict) else None
        if h is not None:
            (cider if h[0] == "CIDEr" else frac).append((f"{task}\n({h[0]})", h[1] * 100))
    panels = [(frac, "score (%)", "headline metric per task")] + ([(cider, "CIDEr x100", "captions")] if cider else [])
    widths = [max(2, len(p[0])) for p in panels]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(max(4, 1.1 * sum(widths)), 3.6), squeeze=False, gridspec_kw={"width_ratios": widths}
    )
    for ax, (items, ylabel, title) in zip(axes[0], panels):
        ax.bar([i[0] for i in items], [i[1] for i in items], color="#3b75af")
        for x, (_, v) in enumerate(items):
            ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{metrics.get('run_name', '')}: {title}", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    if frac:
        axes[0][0].set_ylim(0, 105)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    plt.close(fig)


def plot_confusion(conf: dict[str, Any], title: str, path: Path) -> None:
    import numpy as np

    plt = _plt()
    mat = np.asarray(conf["matrix"], dtype=float)
    rows, cols = conf["rows"], conf["cols"]
    norm = mat / np.maximum(mat.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(cols), 1.0 + 0.5 * len(rows)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if mat[i, j]:
                ax.text(
                    j,
                    i,
                    int(mat[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    plt.close(fig)


def plot_count_errors(errors: list[int], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if errors:
        lo, hi = min(errors), max(errors)
        ax.hist(errors, bins=range(lo, hi + 2), align="left", color="#c0504d", rwidth=0.9)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("predicted − true count")
    ax.set_ylabel("samples")
    ax.set_title("Counting error (answered samples)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    plt.close(fig)


def plot_detection_pr(det: dict[str, Any], path: Path) -> None:
    plt = _plt()
    from sarvlm.eval.metrics_view import iou_thresholds

    thr = iou_thresholds(det)
    cats = ["all"] + sorted({c for k in thr for c in det[k] if c != "all"})
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    for c in cats:
        xs = [float(k) for k in thr]
        axes[0].plot(xs, [det[k].get(c, {}).get("precision", 0) * 100 for k in thr], marker="o", label=c)
        axes[1].plot(xs, [det[k].get(c, {}).get("recall", 0) * 100 for k in thr], marker="o", label=c)
    axes[0].set_title("precision vs IoU threshold")
    axes[1].set_title("recall vs IoU threshold")
    for ax in axes:
        ax.set_xlabel("IoU threshold")
    axes[0].set_ylabel("%")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    plt.close(fig)


def plot_run(metrics: dict[str, Any], raw: dict[str, Any], out_dir: Path) -> list[Path]:
    """All plots for one run into ``out_dir``; returns the files written."""
    from sarvlm.eval.metrics_view import classification_levels

    out_dir = Path(out_dir)
    written = []
    tasks = metrics.get("tasks", {})
    if tasks:
        plot_task_bars(metrics, out_dir / "tasks.png")
        written.append(out_dir / "tasks.png")
    # every task scored as classification (a per-class result, per level), registered now or later
    for task in sorted(tasks):
        if isinstance(tasks[task], dict):
            for level, res in sorted(classification_levels(tasks[task]).items()):
                p = out_dir / f"confusion_{task}_{level}.png"
                plot_confusion(res["confusion"], f"{task} ({level})", p)
                written.append(p)
    if "count" in tasks:
        p = out_dir / "count_errors.png"
        plot_count_errors(raw.get("count_errors", []), p)
        written.append(p)
    if "detect" in tasks:
        p = out_dir / "detection_pr.png"
        plot_detection_pr(tasks["detect"], p)
        written.append(p)
    return written


def plot_compare(result: dict[str, Any], path: Path) -> None:
    """Grouped bars of every compared metric (except MAE), error bars = std over seeds."""
    import numpy as np

    from sarvlm.core.atomic import atomic_path

    plt = _plt()
    cols = [c for c in result["columns"] if "MAE" not in c]
    runs = list(result["runs"])
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(cols) * max(1, len(runs)) / 2), 3.6))
    width = 0.8 / max(1, len(runs))
    for i, r in enumerate(runs):
        vals = [(result["runs"][r].get(c) or {}).get("mean") for c in cols]
        errs = [(result["runs"][r].get(c) or {}).get("std") for c in cols]
        xs = np.arange(len(cols)) + i * width
        ax.bar(xs, [100 * (v or 0) for v in vals], width, yerr=[100 * (e or 0) for e in errs], label=r, capsize=2)
    ax.set_xticks(np.arange(len(cols)) + 0.4 - width / 2, cols, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("%")
    ax.legend(fontsize=7)
    ax.set_title("Run comparison")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, metadata=_META, format="png")
    plt.close(fig)
