"""FUSAR-KLIP's foundation-model tasks (paper 004, Table 6): image-text retrieval and zero-shot
scene classification.

Neither is built by the instruction builder (``generator=None``): ``sarvlm retrieve`` and
``sarvlm zeroshot`` produce them from a pretrained KLIP model, and any other model can be scored
the same way from examples that carry the references.

- ``retrieval``: one example per query; ``params.direction`` is ``i2t`` (an image ranks the
  texts) or ``t2i`` (a text ranks the images); the answer is the id of the true candidate (or the
  list of ids that count as true, e.g. the several captions of one image); the model's answer is the
  candidate ids ranked best first (comma- or line-separated). Metrics are BLIP's ``itm_eval`` names,
  as in :mod:`sarvlm.foundation.retrieval`: ``txt_r1/5/10`` (image -> text), ``img_r1/5/10``
  (text -> image), ``txt_r_mean``, ``img_r_mean``, ``r_mean``.
- ``zeroshot``: one example per image; the answer is the class name, the model's answer one class
  name (or a ranking, best first, of which the first counts for top-1 and the first three for
  top-3). Metrics ``n``, ``top1``, ``top3``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sarvlm.core.vocabulary import answer_keys
from sarvlm.tasks.spec import AnswerContext, Scored, ScoreOptions, TaskScore, TaskSpec

_PAPER = "FUSAR-KLIP (paper 004, Table 6)"
RECALL_KS = (1, 5, 10)
RETRIEVAL_METRICS = (
    "n",
    *(f"txt_r{k}" for k in RECALL_KS),
    *(f"img_r{k}" for k in RECALL_KS),
    "txt_r_mean",
    "img_r_mean",
    "r_mean",
)


def ranked_ids(text: str, ctx: AnswerContext) -> list[str] | None:
    """``"t3, t1\\nt7"`` -> ``["t3", "t1", "t7"]`` (duplicates after the first dropped); None when empty."""
    out: list[str] = []
    for part in re.split(r"[,\n;]+", text):
        part = part.strip().strip("'\"[]() ")
        if part and part not in out:
            out.append(part)
    return out or None


def _truths(answer: Any) -> set[str]:
    return {str(a) for a in answer} if isinstance(answer, (list, tuple, set)) else {str(answer)}


def retrieval_rank(parsed: list[str] | None, answer: Any) -> int | None:
    """0-based rank of the best true candidate in a ranking; None when no true candidate is ranked."""
    if not parsed:
        return None
    truths = _truths(answer)
    return next((i for i, c in enumerate(parsed) if c in truths), None)


def score_retrieval(rows: Sequence[Scored], options: ScoreOptions) -> TaskScore:
    """Recall@1/5/10 per direction (percent); a missing or unranked truth is a miss."""
    res: dict[str, Any] = {"n": len(rows)}
    means = []
    for direction, prefix in (("i2t", "txt"), ("t2i", "img")):
        ranks = [retrieval_rank(r.parsed, r.example.answer) for r in rows if _direction(r) == direction]
        if not ranks:
            continue
        for k in RECALL_KS:
            res[f"{prefix}_r{k}"] = 100.0 * sum(1 for r in ranks if r is not None and r < k) / len(ranks)
        res[f"{prefix}_r_mean"] = sum(res[f"{prefix}_r{k}"] for k in RECALL_KS) / len(RECALL_KS)
        means.append(res[f"{prefix}_r_mean"])
    if means:
        res["r_mean"] = sum(means) / len(means)
    return TaskScore(res)


def _direction(row: Scored) -> str:
    return str(row.example.params.get("direction", "i2t"))


def retrieval_matches(parsed: Any, answer: Any) -> bool:
    """Correct at R@1: the first ranked candidate is a true one."""
    return retrieval_rank(parsed, answer) == 0


def class_ranking(text: str, ctx: AnswerContext) -> list[str] | None:
    """A class name, or several best first (comma/line separated); None when empty."""
    return ranked_ids(text, ctx)


def score_zeroshot(rows: Sequence[Scored], options: ScoreOptions) -> TaskScore:
    """Top-1 and top-3 accuracy (class names compared through the vocabulary's answer keys)."""
    top1 = top3 = 0
    for r in rows:
        truth = answer_keys(r.example.answer)
        ranked = [answer_keys(c) for c in (r.parsed or [])]
        top1 += int(bool(ranked) and ranked[0] == truth)
        top3 += int(truth in ranked[:3])
    n = len(rows)
    return TaskScore({"n": n, "top1": top1 / n if n else 0.0, "top3": top3 / n if n else 0.0})


def zeroshot_matches(parsed: Any, answer: Any) -> bool:
    return bool(parsed) and answer_keys(parsed[0]) == answer_keys(answer)


SPECS = (
    TaskSpec(
        name="retrieval",
        paper=_PAPER,
        answer="ranked list[str] of candidate ids, best first (params.direction i2t | t2i)",
        generator=None,
        parser=ranked_ids,
        scorer=score_retrieval,
        metrics=RETRIEVAL_METRICS,
        max_new_tokens=128,
        matches=retrieval_matches,
        needs="a KLIP model (sarvlm retrieve)",
    ),
    TaskSpec(
        name="zeroshot",
        paper=_PAPER,
        answer="str class name (or a ranking of class names, best first)",
        generator=None,
        parser=class_ranking,
        scorer=score_zeroshot,
        metrics=("n", "top1", "top3"),
        max_new_tokens=32,
        matches=zeroshot_matches,
        label_vocabulary=True,
        needs="a KLIP model (sarvlm zeroshot)",
    ),
)
