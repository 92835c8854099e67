"""Scorers the task families register: the scored examples of one task -> :class:`TaskScore`.

Each scorer pairs the references with the parsed answers and calls the pure metric functions of
:mod:`sarvlm.metrics`. Category answers compare through :func:`sarvlm.core.vocabulary.answer_keys`,
so a reference ``tank`` and a prediction "storage tanks" are the same answer. Missing and unreadable
answers count as wrong; evaluation adds the ``no_answer`` count to every task's metrics.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sarvlm.core.vocabulary import answer_keys
from sarvlm.tasks.spec import Scored, ScoreOptions, TaskScore


def score_count(rows: Sequence[Scored], options: ScoreOptions) -> TaskScore:
    """FUSAR-GPT counting: accuracy, MAE, RMSE, off-by-one (plus signed errors for the plot)."""
    from sarvlm.metrics.counting import count_scores

    gts = [int(r.example.answer) for r in rows]
    vals = [r.parsed for r in rows]
    errors = [int(v) - g for g, v in zip(gts, vals) if v is not None]
    return TaskScore(count_scores(gts, vals), {"count_errors": errors})


def score_grid(rows: Sequence[Scored], options: ScoreOptions) -> TaskScore:
    """FUSAR-GPT 3x3 grid localisation: Acc@100, Acc@50, Top1."""
    from sarvlm.metrics.grid import grid_scores

    gts = [set(r.example.answer) for r in rows]
    vals = [set(r.parsed) if r.parsed is not None else None for r in rows]
    return TaskScore(grid_scores(gts, vals))


def score_detect(rows: Sequence[Scored], options: ScoreOptions) -> TaskScore:
    """Detection from a category prompt: P/R/F1 at IoU 0.25/0.5/0.75 and mAP@50, per category."""
    from sarvlm.metrics.detection import detection_scores

    def cat(ex: Any) -> str:
        return str(ex.params.get("category") or "object")

    gt_b = [[(cat(r.example), *b) for b in (r.example.answer or [])] for r in rows]
    pr_b = [[(cat(r.example), *b) for b in r.parsed] if r.parsed is not None else None for r in rows]
    return TaskScore(detection_scores(gt_b, pr_b))


def score_single_label(rows: Sequence[Scored], options: ScoreOptions) -> TaskScore:
    """One category per answer: top-1 and per-class scores, split by ``params.level`` (coarse/fine)
    with each fine class's coarse parent when the data names it (FUSAR-GPT Table 3)."""
    from sarvlm.metrics.classification import classification_scores

    levels: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        levels[str(r.example.params.get("level", "all"))].append(i)
    gts = [answer_keys(r.example.answer) for r in rows]
    vals = [answer_keys(r.parsed) for r in rows]
    res: dict[str, Any] = {}
    for level, idx in sorted(levels.items()):
        res[level] = classification_scores([gts[i] for i in idx], [vals[i] for i in idx])
        parents = {
            str(gts[i]): str(rows[i].example.params["category"])
            for i in idx
            if level == "fine" and rows[i].example.params.get("category")
        }
        if parents:
            res[level]["parent"] = dict(sorted(parents.items()))
    if len(res) == 1:
        return TaskScore(next(iter(res.values())))
    res["top1"] = sum(r["top1"] * r["n"] for r in res.values()) / len(rows)
    res["n"] = len(rows)
    return TaskScore(res)


def score_multi_label(rows: Sequence[Scored], options: ScoreOptions) -> TaskScore:
    """A set of categories per answer: exact-set accuracy, per-class and micro precision/recall/F1."""
    from sarvlm.metrics.classification import multilabel_scores

    def as_list(v: Any) -> list[Any]:
        return v if isinstance(v, list) else [v]

    gts = [answer_keys(as_list(r.example.answer)) for r in rows]
    vals = [answer_keys(as_list(r.parsed)) if r.parsed is not None else None for r in rows]
    return TaskScore(multilabel_scores(gts, vals))  # type: ignore[arg-type]


def score_classify(rows: Sequence[Scored], options: ScoreOptions) -> TaskScore:
    """SARLANG-1M classification: single-label unless some question asks for every category."""
    if any(r.example.params.get("mode", "main") == "all" for r in rows):
        return score_multi_label(rows, options)
    return score_single_label(rows, options)


def score_closed(rows: Sequence[Scored], options: ScoreOptions) -> TaskScore:
    """A closed answer set (yes/no, five regions): case-insensitive exact-match accuracy."""
    ok = [int(r.parsed is not None and str(r.parsed).lower() == str(r.example.answer).lower()) for r in rows]
    return TaskScore({"n": len(rows), "accuracy": sum(ok) / len(rows)})


def _caption_reference(ex: Any, dialogue: bool) -> list[str]:
    a = ex.answer if ex.answer is not None else ex.reference
    if dialogue:
        # The model sees the earlier turns in its prompt and answers the final one.
        a = ex.reference if ex.reference is not None else (a[-1] if isinstance(a, list) and a else a)
    if isinstance(a, list):
        return [str(x) for x in a]
    return [str(a)]


def _score_text(rows: Sequence[Scored], options: ScoreOptions, dialogue: bool) -> TaskScore:
    from sarvlm.metrics.caption import caption_scores, per_type_means

    refs = {r.example.id: _caption_reference(r.example, dialogue) for r in rows}
    hyps = {r.example.id: (" ".join(r.parsed) if isinstance(r.parsed, list) else r.parsed) or "" for r in rows}
    scores = caption_scores(refs, hyps, meteor=options.meteor, spice=options.spice, tokenizer=options.tokenizer)
    per_sample = scores.pop("per_sample")
    styles = {r.example.id: str(r.example.params.get("style") or r.example.params.get("type") or "all") for r in rows}
    if len(set(styles.values())) > 1:
        scores["per_type"] = per_type_means(per_sample, styles)
    return TaskScore(scores)


def score_caption(rows: Sequence[Scored], options: ScoreOptions) -> TaskScore:
    """Captioning: pycocoevalcap BLEU-1..4, ROUGE-L, CIDEr-D (METEOR/SPICE on request), per style."""
    return _score_text(rows, options, dialogue=False)


def score_dialogue(rows: Sequence[Scored], options: ScoreOptions) -> TaskScore:
    """Dialogue: the caption metrics of the final assistant turn against its reference."""
    return _score_text(rows, options, dialogue=True)


def question_text(ex: Any) -> str:
    """The last user turn of an example, without image placeholders."""
    for m in reversed(ex.prompt_messages):
        if m.role == "user":
            return m.content.replace("<image>", "").strip()
    return ""


def protocol_vqa(rows: Sequence[Scored], truths: Sequence[str], options: ScoreOptions) -> dict[str, Any]:
    """Open-VQA accuracy of ``rows`` against ``truths`` under ``options.vqa_protocol``, per ``params.type``.

    ``sarlang1m`` reads the model's raw answer text, as SARLANG-1M's released script reads its CSV;
    the other protocols read the parsed answer (docs/protocols.md).
    """
    from sarvlm.metrics.vqa import vqa_accuracy

    protocol = options.vqa_protocol
    judge = options.judge if protocol != "exact" else None
    q = [question_text(r.example) for r in rows]
    if protocol == "sarlang1m":
        v = [r.prediction.prediction if r.prediction is not None else None for r in rows]
    else:
        v = [
            (" ".join(map(str, r.parsed)) if isinstance(r.parsed, list) else str(r.parsed))
            if r.parsed is not None
            else None
            for r in rows
        ]
    qtypes = [str(r.example.params.get("type", r.example.task)) for r in rows]
    if judge is not None and hasattr(judge, "prefetch"):
        judge.prefetch(q, list(truths), v)
    return vqa_accuracy(q, list(truths), v, types=qtypes, protocol=protocol, judge=judge)


def score_open_vqa(rows: Sequence[Scored], options: ScoreOptions) -> TaskScore:
    """Open-ended VQA: normalised exact match, or a SARLANG-1M protocol (released script / strict
    reading, with the LLM judge), broken down by ``params.type``."""
    truths = [str(r.example.answer if r.example.answer is not None else (r.example.reference or "")) for r in rows]
    return TaskScore(protocol_vqa(rows, truths, options))
