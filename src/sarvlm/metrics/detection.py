"""Detection from text answers: P/R/F1 with one-to-one greedy IoU matching, and COCO mAP@50.

Boxes are ``(category, x1, y1, x2, y2)`` in original pixels, continuous coordinates
(area = (x2-x1)*(y2-y1), no +1-pixel convention). Matching, per image and category:
all (prediction, ground truth) pairs with IoU >= threshold are sorted by IoU (ties:
prediction order, then ground-truth order) and accepted greedily, each box used at
most once. Text answers carry no confidence, so mAP@50 (pycocotools COCOeval) uses a
score derived from output rank: the k-th box of an image's answer (0-based) scores
``1 / (1 + k)`` — earlier boxes are trusted more. This is stated in every report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Box = Sequence  # (category, x1, y1, x2, y2)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), continuous coordinates."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def greedy_match(pred: np.ndarray, gt: np.ndarray, threshold: float) -> int:
    """Number of one-to-one matches with IoU >= threshold, accepted in descending IoU order."""
    iou = iou_matrix(pred, gt)
    if iou.size == 0:
        return 0
    pi, gi = np.nonzero(iou >= threshold)
    if len(pi) == 0:
        return 0
    order = np.lexsort((gi, pi, -iou[pi, gi]))
    used_p: set[int] = set()
    used_g: set[int] = set()
    for k in order:
        p, g = int(pi[k]), int(gi[k])
        if p not in used_p and g not in used_g:
            used_p.add(p)
            used_g.add(g)
    return len(used_p)


def _prf(tp: int, n_pred: int, n_gt: int) -> dict[str, float | int]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gt if n_gt else 0.0
    return {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "tp": tp,
        "n_pred": n_pred,
        "n_gt": n_gt,
    }


def detection_scores(
    gt: Sequence[Sequence[Box]],
    pred: Sequence[Sequence[Box] | None],
    iou_thresholds: Sequence[float] = (0.25, 0.5, 0.75),
    map50: bool = True,
) -> dict[Any, Any]:
    """P/R/F1 per IoU threshold, overall (``"all"``) and per category; plus ``"map50"``.

    ``gt[i]``/``pred[i]`` are the boxes of image ``i``; ``None`` predictions (no answer)
    contribute no boxes. Returns ``{threshold: {"all": {...}, category: {...}}, "map50": {...}}``.
    """
    if len(gt) != len(pred):
        raise ValueError(f"detection_scores: {len(gt)} images of ground truth but {len(pred)} of predictions")
    cats = sorted({str(b[0]) for boxes in gt for b in boxes} | {str(b[0]) for boxes in pred if boxes for b in boxes})
    out: dict[Any, Any] = {}
    # Per image and category arrays, built once.
    per_image: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
    for g_boxes, p_boxes in zip(gt, pred):
        d: dict[str, tuple[list, list]] = {}
        for b in g_boxes:
            d.setdefault(str(b[0]), ([], []))[1].append([float(v) for v in b[1:5]])
        for b in p_boxes or []:
            d.setdefault(str(b[0]), ([], []))[0].append([float(v) for v in b[1:5]])
        per_image.append(
            {c: (np.asarray(p, float).reshape(-1, 4), np.asarray(g, float).reshape(-1, 4)) for c, (p, g) in d.items()}
        )
    for t in iou_thresholds:
        tp = {c: 0 for c in cats}
        npred = {c: 0 for c in cats}
        ngt = {c: 0 for c in cats}
        for img in per_image:
            for c, (p, g) in img.items():
                tp[c] += greedy_match(p, g, t)
                npred[c] += len(p)
                ngt[c] += len(g)
        res: dict[str, Any] = {"all": _prf(sum(tp.values()), sum(npred.values()), sum(ngt.values()))}
        for c in cats:
            res[c] = _prf(tp[c], npred[c], ngt[c])
        out[float(t)] = res
    if map50 and has_pycocotools():
        # without pycocotools (a bare GPU machine, say) mAP@50 is left out rather than failing the run;
        # P/R/F1 above need nothing but numpy
        out["map50"] = coco_map50(gt, pred)
    return out


def has_pycocotools() -> bool:
    """Whether pycocotools (mAP@50) can be imported here."""
    import importlib.util

    try:
        return importlib.util.find_spec("pycocotools") is not None
    except (ImportError, ValueError):
        return False


def coco_map50(gt: Sequence[Sequence[Box]], pred: Sequence[Sequence[Box] | None]) -> dict[str, Any]:
    """mAP at IoU 0.5 through pycocotools' COCOeval, scores from output rank (see module doc).

    Note: pycocotools measures areas/IoU on [x, y, w, h] boxes with continuous coordinates,
    like :func:`iou_matrix`. Returns ``{"all": AP or nan, category: AP, ...}`` (-1 from
    COCOeval, i.e. no ground truth, is reported as NaN).
    """
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats = sorted({str(b[0]) for boxes in gt for b in boxes})
    if not cats:
        return {"all": float("nan")}
    cat_id = {c: i + 1 for i, c in enumerate(cats)}
    images, anns, dets = [], [], []
    for i, (g_boxes, p_boxes) in enumerate(zip(gt, pred)):
        images.append({"id": i + 1, "width": 1, "height": 1})
        for b in g_boxes:
            x1, y1, x2, y2 = (float(v) for v in b[1:5])
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": cat_id[str(b[0])],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
        for k, b in enumerate(p_boxes or []):
            if str(b[0]) not in cat_id:
                continue
            x1, y1, x2, y2 = (float(v) for v in b[1:5])
            dets.append(
                {
                    "image_id": i + 1,
                    "category_id": cat_id[str(b[0])],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": 1.0 / (1.0 + k),
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": v, "name": c} for c, v in cat_id.items()],
        }
        coco_gt.createIndex()
        if not dets:
            return {"all": 0.0, **{c: 0.0 for c in cats}}
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [1, 10, max(100, max(len(p or []) for p in pred))]
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][0, :, :, 0, -1]  # [recall thresholds, categories] at area=all, max dets
    out: dict[str, Any] = {}
    per = []
    for j, c in enumerate(cats):
        col = prec[:, j]
        ap = float(np.mean(col[col > -1])) if np.any(col > -1) else float("nan")
        out[c] = ap
        if ap == ap:
            per.append(ap)
    out["all"] = float(np.mean(per)) if per else float("nan")
    out["scores"] = "rank-derived: k-th box of an answer scores 1/(1+k)"
    return out
