"""3x3 grid localisation (FUSAR-GPT Table 2): Acc@100, Acc@50, Top1."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def grid_scores(gt: Sequence[Iterable[int]], pred: Sequence[Iterable[int] | None]) -> dict[str, float | int]:
    """Fractions of samples whose predicted cell set
    equals the truth (``acc100``), has set IoU >= 0.5 with it (``acc50``), or intersects it (``top1``).

    ``None`` (no answer) and empty predictions score 0 on all three.
    """
    if len(gt) != len(pred):
        raise ValueError(f"grid_scores: {len(gt)} ground truths but {len(pred)} predictions")
    n = len(gt)
    a100 = a50 = top1 = 0
    for g, p in zip(gt, pred):
        gs = set(int(c) for c in g)
        ps = set(int(c) for c in p) if p is not None else set()
        inter, union = len(gs & ps), len(gs | ps)
        a100 += int(gs == ps and bool(ps))
        a50 += int(union > 0 and inter / union >= 0.5)
        top1 += int(inter > 0)
    d = float(n) if n else 1.0
    return {"n": n, "acc100": a100 / d, "acc50": a50 / d, "top1": top1 / d,
            "no_answer": sum(1 for p in pred if p is None)}
