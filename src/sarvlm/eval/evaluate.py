"""Score a whole predictions file against its test data, task by task.

``evaluate(predictions, data, out_dir)`` pairs predictions with examples by id, parses each answer
with its task's parser, scores every task present with its task's scorer (both from
:mod:`sarvlm.tasks.registry`), and writes ``metrics.json``, ``report.md`` and PNG plots
(atomically, as one directory). Missing predictions count as wrong; predictions for unknown ids are
reported and ignored; unparsable answers are counted per task as ``no_answer``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sarvlm.core.errors import SarvlmError


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for pkg in ("sarvlm", "pycocoevalcap", "pycocotools", "numpy", "openai"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuple -> list, float keys -> strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _load(predictions_path: str | Path, data_path: str | Path):
    from sarvlm.core.example import read_examples, read_predictions
    from sarvlm.data.fingerprint import check_prediction_source

    if Path(data_path).is_file() and Path(predictions_path).is_file():
        check_prediction_source(predictions_path, data_path)
    examples: dict[str, Any] = {}
    for ex in read_examples(data_path):
        if ex.id in examples:
            raise SarvlmError(f"{data_path}: {ex.id}: id: duplicated")
        examples[ex.id] = ex
    if not examples:
        raise SarvlmError(f"{data_path}: no examples (empty file)")
    preds: dict[str, Any] = {}
    unknown: list[str] = []
    for p in read_predictions(predictions_path):
        if p.id in preds:
            raise SarvlmError(f"{predictions_path}: {p.id}: id: duplicated prediction")
        if p.id not in examples:
            unknown.append(p.id)
            continue
        ex = examples[p.id]
        if p.task is not None and p.task != ex.task:
            raise SarvlmError(
                f"{predictions_path}: {p.id}: task: {p.task!r} but the data says {ex.task!r} "
                "(predictions made for another test file?)"
            )
        preds[p.id] = p
    if not preds and not unknown:
        raise SarvlmError(f"{predictions_path}: no predictions (empty file)")
    if not preds:
        raise SarvlmError(
            f"{predictions_path}: none of the {len(unknown)} prediction ids is in {data_path} (first: {unknown[0]!r})"
        )
    return examples, preds, unknown


def _history(ex) -> str:
    msgs = ex.prompt_messages[:-1]
    return "\n".join(f"{m.role}: {m.content.replace('<image>', '').strip()}" for m in msgs if m.role != "system")


def _label_vocabulary(examples: Sequence[Any]) -> dict[str, tuple[str, ...]]:
    """Category names per task from the ground truth: lets the parser find fine-grained names
    ("A320") in free text, on top of the vocabulary's synonym table."""
    from sarvlm.tasks.registry import task_spec

    vocab: dict[str, set[str]] = defaultdict(set)
    for ex in examples:
        if task_spec(ex.task).label_vocabulary:
            for a in ex.answer if isinstance(ex.answer, list) else [ex.answer]:
                if isinstance(a, str) and a.strip():
                    vocab[ex.task].add(a)
    return {task: tuple(sorted(names)) for task, names in vocab.items()}


def parse_answers(examples: dict[str, Any], preds: dict[str, Any]) -> dict[str, list[Any]]:
    """Every example with its prediction and parsed answer, grouped by task
    (:class:`sarvlm.tasks.spec.Scored` rows in input order)."""
    from sarvlm.core.progress import track
    from sarvlm.tasks.registry import parse_prediction
    from sarvlm.tasks.spec import Scored

    vocab = _label_vocabulary(list(examples.values()))
    by_task: dict[str, list[Scored]] = defaultdict(list)
    for ex in track(examples.values(), "parsing answers", total=len(examples)):
        p = preds.get(ex.id)
        parsed = None
        if p is not None:
            parsed = parse_prediction(
                ex.task,
                p.prediction,
                params=ex.params,
                coords=ex.coords,
                width=ex.width,
                height=ex.height,
                categories=vocab.get(ex.task),
            )
        by_task[ex.task].append(Scored(ex, p, parsed))
    return by_task


def score_tasks(by_task: dict[str, list[Any]], options: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(metrics per task, answer counts per task, plot data) with each task's registered scorer."""
    from sarvlm.tasks.registry import task_spec

    tasks: dict[str, Any] = {}
    answers: dict[str, Any] = {}
    plot_data: dict[str, Any] = {}
    for task in sorted(by_task):
        rows = by_task[task]
        n_missing = sum(1 for r in rows if r.prediction is None)
        n_none = sum(1 for r in rows if r.prediction is not None and r.parsed is None)
        answers[task] = {"n": len(rows), "missing": n_missing, "no_answer": n_none}
        score = task_spec(task).scorer(rows, options)
        tasks[task] = score.metrics
        tasks[task]["no_answer"] = n_none + n_missing
        plot_data.update(score.plot_data)
    if options.vqa_protocol != "exact":
        # SARLANG-1M's question types are also scored with the protocol's VQA rule on the reference
        # text, as its Table 8 is, and reported as "<task>@<protocol>" beside their structured metrics.
        from sarvlm.tasks.scoring import protocol_vqa

        for task in sorted(by_task):
            if "sarlang" in task_spec(task).groups:
                rows = by_task[task]
                truths = [r.example.reference or "" for r in rows]
                tasks[f"{task}@{options.vqa_protocol}"] = protocol_vqa(rows, truths, options)
    return tasks, answers, plot_data


def _five_dimensions(by_task: dict[str, list[Any]], judge: Sequence[Any]) -> dict[str, Any]:
    """LunarOS-Mini five-dimension scores of every free-text task's answers by each judge."""
    from sarvlm.eval.judges import five_dimension_scores
    from sarvlm.tasks.registry import is_free_text
    from sarvlm.tasks.scoring import question_text

    judged: dict[str, Any] = {}
    for task in sorted(by_task):
        if not is_free_text(task):
            continue
        items = [
            {
                "question": question_text(r.example),
                "reference": str(r.example.reference or r.example.answer or ""),
                "answer": r.prediction.prediction if r.prediction is not None else "",
                "history": _history(r.example),
            }
            for r in by_task[task]
        ]
        res = five_dimension_scores(judge, items)
        for j in res["judges"].values():
            j.pop("per_sample")
        judged[task] = res
    return judged


def evaluate(
    predictions_path: str | Path,
    data_path: str | Path,
    out_dir: str | Path | None = None,
    judge: Sequence[Any] | None = None,
    *,
    meteor: bool = False,
    spice: bool = False,
    tokenizer: str = "python",
    vqa_protocol: str = "exact",
    five_dimensions: bool = False,
    run_name: str | None = None,
    plots: bool = True,
    overwrite: bool = True,
) -> dict[str, Any]:
    """Score ``predictions_path`` against ``data_path``; write a report to ``out_dir`` if given.

    Args:
        judge: :class:`sarvlm.eval.judges.LLMJudge` objects. The first one judges open VQA
            answers under the SARLANG-1M protocols; all of them give LunarOS-Mini
            five-dimension scores to free-text answers (caption/dialogue/VQA) when ``five_dimensions``.
        tokenizer: caption tokenizer (``python``, ``java``, ``none``).
        vqa_protocol: ``exact`` (normalised exact match), ``sarlang1m`` (SARLANG-1M's released
            script, also applied to the SARLANG-1M question types as ``<task>@sarlang1m``) or
            ``sarlang1m-strict`` (sarvlm's stricter reading); see docs/protocols.md.
        run_name: name shown in reports and used by ``compare`` to group seeds
            (default: the output directory's name).

    Returns the metrics dictionary that is written to ``metrics.json``.
    """
    from sarvlm.tasks.spec import ScoreOptions

    examples, preds, unknown = _load(predictions_path, data_path)
    by_task = parse_answers(examples, preds)
    options = ScoreOptions(
        meteor=meteor,
        spice=spice,
        tokenizer=tokenizer,
        vqa_protocol=vqa_protocol,
        judge=_binary_judge(judge[0], vqa_protocol) if vqa_protocol != "exact" and judge else None,
    )
    tasks, answers, raw = score_tasks(by_task, options)
    judged = _five_dimensions(by_task, judge) if five_dimensions and judge else {}
    metrics = _metrics_document(
        run_name or (Path(out_dir).name if out_dir is not None else "run"),
        (predictions_path, data_path),
        (examples, preds, unknown),
        answers,
        tasks,
        judged,
        tokenizer=tokenizer,
        vqa_protocol=vqa_protocol,
        judge=judge,
    )
    if out_dir is not None:
        from sarvlm.eval.report import write_report

        write_report(metrics, out_dir, raw=raw, plots=plots, overwrite=overwrite)
    return metrics


def _metrics_document(
    run_name: str,
    paths: tuple[str | Path, str | Path],
    loaded: tuple[dict[str, Any], dict[str, Any], list[str]],
    answers: dict[str, Any],
    tasks: dict[str, Any],
    judged: dict[str, Any],
    *,
    tokenizer: str,
    vqa_protocol: str,
    judge: Sequence[Any] | None,
) -> dict[str, Any]:
    """The JSON-safe ``metrics.json`` content: inputs, counts, per-task metrics, protocol, versions."""
    examples, preds, unknown = loaded
    metrics: dict[str, Any] = {
        "run_name": run_name,
        "inputs": {"predictions": Path(paths[0]).name, "data": Path(paths[1]).name},
        "counts": {
            "examples": len(examples),
            "predictions": len(preds) + len(unknown),
            "missing": sum(a["missing"] for a in answers.values()),
            "unknown_ids": len(unknown),
            "unknown_id_examples": sorted(unknown)[:10],
        },
        "answers": answers,
        "tasks": tasks,
        "judges": judged,
        "protocol": {
            "caption": f"pycocoevalcap 1.2 scorers (BLEU corpus-level, ROUGE-L, CIDEr-D); tokenizer={tokenizer}",
            "vqa": vqa_protocol,
            "detection": "P/R/F1: one-to-one greedy matching by IoU per image and category, continuous coordinates; "
            "mAP@50: pycocotools COCOeval, rank-derived scores 1/(1+k)",
            "grid": "acc100 exact set, acc50 set IoU >= 0.5, top1 non-empty intersection",
            "categories": "category answers compare through sarvlm.core.vocabulary.answer_key "
            "(synonyms, plurals, case, '_' as space)",
            "missing": "missing predictions count as wrong; unparsable answers count as wrong (no_answer)",
            "judges": [{"name": j.name, "model": j.model, "endpoint": j.base_url} for j in (judge or [])],
        },
        "versions": _versions(),
    }
    return _clean(metrics)


class _binary_judge:
    """Adapter: vqa_accuracy's judge(question, gt, pred) over a batched, cached LLMJudge.

    ``sarlang1m`` sends the script's request and reads the reply as ``int(reply)``;
    ``sarlang1m-strict`` keeps the lenient binary parser.
    """

    def __init__(self, judge, protocol: str) -> None:
        from sarvlm.eval.judges import sarlang_judge

        self.protocol = protocol
        self.judge = sarlang_judge(judge) if protocol == "sarlang1m" else judge

    def _prompt(self, question: str, gt: str, pred: str | None) -> str:
        from sarvlm.eval.judges import SARLANG_PROMPT

        q, g, p = str(question), str(gt), "" if pred is None else str(pred)
        if self.protocol == "sarlang1m":
            q, g, p = q.lower(), g.lower(), p.lower()
        return SARLANG_PROMPT.format(question=q, ground_truth=g, predicted_answer=p)

    def prefetch(self, questions, gts, preds) -> None:
        from sarvlm.metrics.vqa import judge_needed

        prompts = [self._prompt(q, g, p) for q, g, p in zip(questions, gts, preds) if judge_needed(self.protocol, g, p)]
        if prompts:
            self.judge.complete_many(prompts, "SARLANG-1M judge")

    def __call__(self, question: str, gt: str, pred: str) -> bool | None:
        from sarvlm.eval.judges import parse_binary, parse_sarlang_reply

        reply = self.judge.complete(self._prompt(question, gt, pred))
        return parse_sarlang_reply(reply) if self.protocol == "sarlang1m" else parse_binary(reply)
