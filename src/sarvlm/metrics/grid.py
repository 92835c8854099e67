"""3x3 grid localisation (FUSAR-GPT Table 2): Acc@100, Acc@50, Top1."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def grid_scores(gt: Sequence[Iterable[int]], pred: Sequence[Iterable[int] | None]) -> dict[str, float | int]:
    """Fractions of samples whose predicted cell set
    equals the truth (``acc100``), has set IoU >= 0.5 with it (``acc50``), or intersects it (``top1``).

    ``None`` (no answer) scores 0 on all three. An image without targets (empty truth)
    answered with an empty set ("none") scores 1 on all three; any other answer to it, 0.
    """
    if len(gt) != len(pred):
        raise ValueError(f"grid_scores: {len(gt)} ground truths but {len(pred)} predictions")
    n = len(gt)
    a100 = a50 = top1 = 0
    for g, p in zip(gt, pred):
        gs = set(int(c) for c in g)
        ps = set(int(c) for c in p) if p is not None else set()
        if p is not None and not gs and not ps:
            a100, a50, top1 = a100 + 1, a50 + 1, top1 + 1
            continue
        inter, union = len(gs & ps), len(gs | ps)
        a100 += int(p is not None and gs == ps)
        a50 += int(union > 0 and inter / union >= 0.5)
        top1 += int(inter > 0)
    d = float(n) if n else 1.0
    return {
        "n": n,
        "acc100": a100 / d,
        "acc50": a50 / d,
        "top1": top1 / d,
        "no_answer": sum(1 for p in pred if p is None),
    }
