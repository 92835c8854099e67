"""Target counting: accuracy (FUSAR-GPT Table 2 "@Acc") and mean absolute error."""

from __future__ import annotations

from collections.abc import Sequence


def count_scores(gt: Sequence[int], pred: Sequence[int | None]) -> dict[str, float | int]:
    """Exact-match accuracy and MAE of predicted counts.

    A ``None`` prediction (no answer) counts as wrong for accuracy and is left out of
    the MAE, which is reported over answered samples with ``answered`` alongside.
    """
    if len(gt) != len(pred):
        raise ValueError(f"count_scores: {len(gt)} ground truths but {len(pred)} predictions")
    n = len(gt)
    correct = sum(1 for g, p in zip(gt, pred) if p is not None and int(p) == int(g))
    errors = [abs(int(p) - int(g)) for g, p in zip(gt, pred) if p is not None]
    return {
        "n": n,
        "answered": len(errors),
        "accuracy": correct / n if n else 0.0,
        "mae": sum(errors) / len(errors) if errors else float("nan"),
        "no_answer": n - len(errors),
    }
