"""VQA accuracy: normalised exact match (default) and SARLANG-1M's protocol.

``exact`` (sarvlm's protocol): both answers are lower-cased, punctuation and the
articles a/an/the removed, number words mapped to digits; correct iff equal. Yes/no and
count answers are therefore strict.

``sarlang1m`` (the published ``Evaluate_VQA.py``): lower-cased; yes/no and integer
0..99 ground truths need an exact match; otherwise a prediction containing the truth
(or contained in it) is correct, and the rest go to an LLM judge (binary prompt of
§4.1.2) when one is given — without a judge they count as wrong and are reported as
``unjudged``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")
_NUMS = {
    "zero": "0",
    "none": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
}


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, number words -> digits, squeeze spaces."""
    t = str(text).lower().replace("\u2019", "'")
    t = _PUNCT.sub(" ", t)
    t = _ARTICLES.sub(" ", t)
    return " ".join(_NUMS.get(w, w) for w in t.split())


def _is_strict(gt: str) -> bool:
    g = gt.strip().lower().rstrip(".")
    return g in ("yes", "no") or (g.isdigit() and 0 <= int(g) <= 99)


def vqa_accuracy(
    questions: Sequence[str],
    gt: Sequence[str],
    pred: Sequence[str | None],
    types: Sequence[str] | None = None,
    protocol: str = "exact",
    judge: Callable[[str, str, str], bool | None] | None = None,
) -> dict[str, Any]:
    """Accuracy overall and per question type.

    ``judge(question, ground_truth, prediction)`` returns True/False or None (unparsable
    reply: counted under ``judge_unparsable`` and excluded from that sample's score).
    """
    if not (len(questions) == len(gt) == len(pred)):
        raise ValueError("vqa_accuracy: questions, ground truths and predictions differ in length")
    if protocol not in ("exact", "sarlang1m"):
        raise ValueError(f"vqa_accuracy: unknown protocol {protocol!r} (exact or sarlang1m)")
    types = list(types) if types is not None else ["all"] * len(gt)
    correct: list[float | None] = []
    unjudged = unparsable = judged = 0
    for q, g, p in zip(questions, gt, pred):
        if p is None:
            correct.append(0.0)
            continue
        if protocol == "exact":
            correct.append(float(normalize_answer(p) == normalize_answer(g)))
            continue
        gl, pl = str(g).strip().lower(), str(p).strip().lower()
        if _is_strict(gl):
            correct.append(float(pl.rstrip(".") == gl.rstrip(".")))
        elif gl and (gl in pl or (pl and pl in gl)):
            correct.append(1.0)
        elif judge is None:
            unjudged += 1
            correct.append(0.0)
        else:
            verdict = judge(q, g, p)
            judged += 1
            if verdict is None:
                unparsable += 1
                correct.append(None)
            else:
                correct.append(float(bool(verdict)))
    scored = [c for c in correct if c is not None]
    out: dict[str, Any] = {
        "protocol": protocol,
        "n": len(gt),
        "accuracy": sum(scored) / len(scored) if scored else 0.0,
        "no_answer": sum(1 for p in pred if p is None),
        "per_type": {},
    }
    if protocol == "sarlang1m":
        out.update(judged=judged, judge_unparsable=unparsable, unjudged=unjudged)
    for t in sorted(set(types)):
        vals = [c for c, tt in zip(correct, types) if tt == t and c is not None]
        out["per_type"][t] = {
            "n": sum(1 for tt in types if tt == t),
            "accuracy": sum(vals) / len(vals) if vals else 0.0,
        }
    return out
