"""VQA accuracy: normalised exact match (default), SARLANG-1M's released protocol, and a stricter variant.

``exact`` (sarvlm's protocol): both answers are lower-cased, punctuation and the
articles a/an/the removed, number words mapped to digits; correct iff equal. Yes/no and
count answers are therefore strict.

``sarlang1m`` reproduces the released ``Evaluate_VQA.py`` of SARLANG-1M rule for rule
(docs/protocols.md): question, truth and prediction are lower-cased with ``str.lower()``
and nothing else (no stripping, no punctuation removal); then, in this order,

1. the truth is a substring of the prediction → correct (so truth ``1`` vs prediction
   ``10`` is correct, and truth ``no`` vs ``no, there is none`` too);
2. the truth is ``yes``, ``no`` or an integer ``0``..``99`` written as ``str(n)`` → correct
   iff the prediction equals it;
3. otherwise the LLM judge decides (``gpt-4o-mini`` with the script's prompt,
   :data:`sarvlm.eval.judges.SARLANG_PROMPT`); its reply counts as the script's
   ``int(reply)`` would: ``1`` correct, ``0`` wrong. A reply ``int()`` cannot read (the
   script would stop with a ValueError) or another integer (the script would add it to
   the correct count) is counted under ``judge_unparsable`` and excluded from the score.
   Without a judge these questions count as wrong and are reported as ``unjudged``.

A missing prediction is the empty string, as an empty CSV cell is in the script.

``sarlang1m-strict`` is sarvlm's earlier, stricter reading (not the paper's): surrounding
whitespace and a final ``.`` are ignored; yes/no and 0..99 truths need an exact match
*before* any substring test; a prediction contained in the truth also counts; then the judge.
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


PROTOCOLS = ("exact", "sarlang1m", "sarlang1m-strict")
# The script's list: ['yes', 'no'] + list(map(str, range(100))).
_SARLANG_EXACT = frozenset(["yes", "no", *map(str, range(100))])


def _is_strict(gt: str) -> bool:
    g = gt.strip().lower().rstrip(".")
    return g in ("yes", "no") or (g.isdigit() and 0 <= int(g) <= 99)


def sarlang1m_rule(ground_truth: str, predicted: str | None) -> float | None:
    """The script's decision before the judge: 1.0 / 0.0, or None when the judge must decide.

    Both strings are lower-cased exactly as ``Evaluate_VQA.py`` does (``str.lower()`` only).
    """
    gt, pred = str(ground_truth).lower(), ("" if predicted is None else str(predicted)).lower()
    if gt in pred:
        return 1.0
    if gt in _SARLANG_EXACT:
        return float(gt == pred)
    return None


def sarlang1m_strict_rule(ground_truth: str, predicted: str | None) -> float | None:
    """sarvlm's stricter reading (``sarlang1m-strict``); None when the judge must decide."""
    if predicted is None:
        return 0.0
    gl, pl = str(ground_truth).strip().lower(), str(predicted).strip().lower()
    if _is_strict(gl):
        return float(pl.rstrip(".") == gl.rstrip("."))
    if gl and (gl in pl or (pl and pl in gl)):
        return 1.0
    return None


def judge_needed(protocol: str, ground_truth: str, predicted: str | None) -> bool:
    """Whether ``protocol`` asks the judge for this pair (used to prefetch exactly those)."""
    if protocol == "sarlang1m":
        return sarlang1m_rule(ground_truth, predicted) is None
    if protocol == "sarlang1m-strict":
        return sarlang1m_strict_rule(ground_truth, predicted) is None
    return False


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
    if protocol not in PROTOCOLS:
        raise ValueError(f"vqa_accuracy: unknown protocol {protocol!r} (one of {', '.join(PROTOCOLS)})")
    types = list(types) if types is not None else ["all"] * len(gt)
    correct: list[float | None] = []
    unjudged = unparsable = judged = 0
    for q, g, p in zip(questions, gt, pred):
        if protocol == "exact":
            correct.append(float(p is not None and normalize_answer(p) == normalize_answer(g)))
            continue
        if protocol == "sarlang1m":
            decided = sarlang1m_rule(g, p)
            # The script sends the lower-cased question, truth and prediction to its judge.
            q, g, p = str(q).lower(), str(g).lower(), ("" if p is None else str(p)).lower()
        else:
            decided = sarlang1m_strict_rule(g, p)
        if decided is not None:
            correct.append(decided)
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
    if protocol != "exact":
        out.update(judged=judged, judge_unparsable=unparsable, unjudged=unjudged)
    for t in sorted(set(types)):
        vals = [c for c, tt in zip(correct, types) if tt == t and c is not None]
        out["per_type"][t] = {
            "n": sum(1 for tt in types if tt == t),
            "accuracy": sum(vals) / len(vals) if vals else 0.0,
        }
    return out
