"""Classification: top-1 (top-3 where ranked scores exist), per-class accuracy, confusion matrix.

FUSAR-GPT Table 3 reports, per class, the fraction of that class's samples classified
correctly (recall), for coarse and fine levels; FUSAR-KLIP Table 4 reports top-1/top-3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def classification_scores(
    gt: Sequence[str], pred: Sequence[str | Sequence[str] | None], labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """Top-1 accuracy, per-class accuracy and the confusion matrix.

    ``pred`` items are a label, a ranked list of labels (then top-3 is reported too) or
    ``None`` (no answer: wrong, counted under ``no_answer``).
    """
    if len(gt) != len(pred):
        raise ValueError(f"classification_scores: {len(gt)} ground truths but {len(pred)} predictions")
    ranked = [([p] if isinstance(p, str) else list(p)) if p is not None else [] for p in pred]
    has_rank = any(len(r) > 1 for r in ranked)
    label_set = list(labels) if labels is not None else []
    label_set += sorted(set(gt) - set(label_set))
    idx = {c: i for i, c in enumerate(label_set)}
    cols = label_set + ["(other)", "(no answer)"]
    confusion = [[0] * len(cols) for _ in label_set]
    per_total = {c: 0 for c in label_set}
    per_correct = {c: 0 for c in label_set}
    top1 = top3 = 0
    for g, r in zip(gt, ranked):
        per_total[g] += 1
        first = r[0] if r else None
        if first == g:
            top1 += 1
            per_correct[g] += 1
        top3 += int(g in r[:3])
        col = len(cols) - 1 if first is None else idx.get(first, len(cols) - 2)
        confusion[idx[g]][col] += 1
    n = len(gt)
    out: dict[str, Any] = {
        "n": n,
        "top1": top1 / n if n else 0.0,
        "per_class": {c: (per_correct[c] / per_total[c] if per_total[c] else float("nan")) for c in label_set},
        "support": dict(per_total),
        "labels": label_set,
        "confusion": {"rows": label_set, "cols": cols, "matrix": confusion},
        "no_answer": sum(1 for r in ranked if not r),
    }
    if has_rank:
        out["top3"] = top3 / n if n else 0.0
    return out


def multilabel_scores(gt: Sequence[Sequence[str]], pred: Sequence[Sequence[str] | None]) -> dict[str, Any]:
    """Set-valued answers (all landforms, all classes): exact-set accuracy and micro P/R/F1."""
    if len(gt) != len(pred):
        raise ValueError(f"multilabel_scores: {len(gt)} ground truths but {len(pred)} predictions")
    exact = tp = fp = fn = 0
    for g, p in zip(gt, pred):
        gs, ps = set(g), set(p or [])
        exact += int(gs == ps and p is not None)
        tp += len(gs & ps)
        fp += len(ps - gs)
        fn += len(gs - ps)
    n = len(gt)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {
        "n": n,
        "accuracy": exact / n if n else 0.0,
        "precision": prec,
        "recall": rec,
        "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "no_answer": sum(1 for p in pred if p is None),
    }
