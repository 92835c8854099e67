"""Segmentation: overall accuracy and mean IoU (FUSAR-KLIP Table 4)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """(num_classes, num_classes + 1) pixel counts: rows = truth, columns = prediction, the
    last column holding predictions outside 0..num_classes-1 (never correct)."""
    g = np.asarray(gt).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    if g.shape != p.shape:
        raise ValueError(f"segmentation: truth has {g.size} pixels but prediction {p.size}")
    keep = (g >= 0) & (g < num_classes)
    if ignore_index is not None:
        keep &= g != ignore_index
    p = np.clip(p[keep], 0, num_classes)  # out-of-range predictions land in an extra bin, never correct
    cm = np.bincount(g[keep] * (num_classes + 1) + p, minlength=num_classes * (num_classes + 1))
    return cm.reshape(num_classes, num_classes + 1)


def segmentation_scores(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    ignore_index: int | None = None,
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """OA and mIoU accumulated over all (truth mask, predicted mask) pairs.

    IoU per class = TP / (TP + FP + FN) over the whole set; classes absent from both
    truth and prediction are left out of the mean (NaN per class).
    """
    cm = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    for g, p in pairs:
        cm += confusion_matrix(g, p, num_classes, ignore_index)
    total = int(cm.sum())
    tp = np.diag(cm[:, :num_classes]).astype(float)
    fp = cm[:, :num_classes].sum(0) - tp
    fn = cm.sum(1) - tp
    denom = tp + fp + fn
    iou = np.where(denom > 0, tp / np.where(denom > 0, denom, 1), np.nan)
    names = class_names or [str(i) for i in range(num_classes)]
    return {
        "oa": float(tp.sum() / total) if total else float("nan"),
        "miou": float(np.nanmean(iou)) if np.any(denom > 0) else float("nan"),
        "iou": {n: float(v) for n, v in zip(names, iou)},
        "pixels": total,
    }
