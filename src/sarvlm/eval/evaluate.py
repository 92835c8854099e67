"""Score a whole predictions file against its test data, task by task.

``evaluate(predictions, data, out_dir)`` pairs predictions with examples by id, parses
each answer with :func:`sarvlm.eval.parsing.parse_prediction`, dispatches every task to
its metric, and writes ``metrics.json``, ``report.md`` and PNG plots (atomically, as one
directory). Missing predictions count as wrong; predictions for unknown ids are
reported and ignored; unparsable answers are counted per task as ``no_answer``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sarvlm.core.errors import SarvlmError

# Tasks whose answer is one category/word compared after canonicalisation.
SINGLE_LABEL_TASKS = ("classify_box", "landform_main", "landform_region", "refer")
CLOSED_TASKS = ("identify", "position")
TEXT_TASKS = ("caption", "dialogue")
# SARLANG-1M's question types (Table 5) besides imported open VQA: under a SARLANG-1M VQA
# protocol they are also scored with the released script's rule, as its Table 8 is, and
# reported as "<task>@<protocol>" next to their structured metrics.
SARLANG_VQA_TASKS = ("identify", "classify", "count", "position", "refer")


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


def _question(ex) -> str:
    for m in reversed(ex.prompt_messages):
        if m.role == "user":
            return m.content.replace("<image>", "").strip()
    return ""


def _history(ex) -> str:
    msgs = ex.prompt_messages[:-1]
    return "\n".join(f"{m.role}: {m.content.replace('<image>', '').strip()}" for m in msgs if m.role != "system")


def _canon(v: Any) -> Any:
    from sarvlm.eval.parsing import canonical_category

    if isinstance(v, str):
        return canonical_category(v)
    if isinstance(v, (list, tuple)):
        return sorted(canonical_category(str(x)) for x in v)
    return v


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
            answers under ``vqa_protocol="sarlang1m"``; all of them give LunarOS-Mini
            five-dimension scores to caption/dialogue/VQA answers when ``five_dimensions``.
        tokenizer: caption tokenizer (``python``, ``java``, ``none``).
        vqa_protocol: ``exact`` (normalised exact match), ``sarlang1m`` (SARLANG-1M's released
            script, also applied to the SARLANG-1M question types as ``<task>@sarlang1m``) or
            ``sarlang1m-strict`` (sarvlm's stricter reading); see docs/protocols.md.
        run_name: name shown in reports and used by ``compare`` to group seeds
            (default: the output directory's name).

    Returns the metrics dictionary that is written to ``metrics.json``.
    """
    from sarvlm.core.progress import track
    from sarvlm.eval import parsing
    from sarvlm.eval.caption import caption_scores, per_type_means
    from sarvlm.eval.classification import classification_scores, multilabel_scores
    from sarvlm.eval.counting import count_scores
    from sarvlm.eval.detection import detection_scores
    from sarvlm.eval.grid import grid_scores

    examples, preds, unknown = _load(predictions_path, data_path)
    # Label vocabulary per task from the ground truth: lets the parser find fine-grained
    # names ("A320") in free text, on top of the built-in synonym table.
    vocab: dict[str, set[str]] = defaultdict(set)
    for ex in examples.values():
        if ex.task in (*SINGLE_LABEL_TASKS, "landform_all", "classify"):
            for a in ex.answer if isinstance(ex.answer, list) else [ex.answer]:
                if isinstance(a, str) and a.strip():
                    vocab[ex.task].add(a)
    by_task: dict[str, list[tuple[Any, Any, Any]]] = defaultdict(list)  # (example, prediction|None, parsed)
    for ex in track(examples.values(), "parsing answers", total=len(examples)):
        p = preds.get(ex.id)
        parsed = None
        if p is not None:
            cats = sorted(vocab[ex.task]) if ex.task in vocab else None
            parsed = parsing.parse_prediction(
                ex.task,
                p.prediction,
                params=ex.params,
                coords=ex.coords,
                width=ex.width,
                height=ex.height,
                categories=cats,
            )
        by_task[ex.task].append((ex, p, parsed))

    tasks: dict[str, Any] = {}
    answers: dict[str, Any] = {}
    raw: dict[str, Any] = {}  # data for plots, not written to metrics.json
    for task in sorted(by_task):
        rows = by_task[task]
        n_missing = sum(1 for _, p, _ in rows if p is None)
        n_none = sum(1 for _, p, v in rows if p is not None and v is None)
        answers[task] = {"n": len(rows), "missing": n_missing, "no_answer": n_none}
        gts = [ex.answer for ex, _, _ in rows]
        vals = [v for _, _, v in rows]
        if task == "count":
            gt_i = [int(g) for g in gts]
            tasks[task] = count_scores(gt_i, vals)
            raw["count_errors"] = [int(v) - g for g, v in zip(gt_i, vals) if v is not None]
        elif task == "grid":
            tasks[task] = grid_scores([set(g) for g in gts], [set(v) if v is not None else None for v in vals])
        elif task == "detect":

            def cat(ex):
                return str(ex.params.get("category") or "object")

            gt_b = [[(cat(ex), *b) for b in (ex.answer or [])] for ex, _, _ in rows]
            pr_b = [[(cat(ex), *b) for b in v] if v is not None else None for ex, _, v in rows]
            tasks[task] = detection_scores(gt_b, pr_b)
        elif task in SINGLE_LABEL_TASKS or (
            task == "classify" and all(ex.params.get("mode", "main") != "all" for ex, _, _ in rows)
        ):
            levels: dict[str, list[int]] = defaultdict(list)
            for i, (ex, _, _) in enumerate(rows):
                levels[str(ex.params.get("level", "all"))].append(i)
            res = {}
            for level, idx in sorted(levels.items()):
                res[level] = classification_scores([_canon(gts[i]) for i in idx], [_canon(vals[i]) for i in idx])
                # fine classes under their coarse parent, when the data names it (FUSAR-GPT Table 3)
                parents = {
                    str(_canon(gts[i])): str(rows[i][0].params["category"])
                    for i in idx
                    if level == "fine" and rows[i][0].params.get("category")
                }
                if parents:
                    res[level]["parent"] = dict(sorted(parents.items()))
            tasks[task] = res if len(res) > 1 else next(iter(res.values()))
            if len(res) > 1:
                tasks[task]["top1"] = sum(r["top1"] * r["n"] for r in res.values()) / len(rows)
                tasks[task]["n"] = len(rows)
        elif task in ("landform_all", "classify"):
            tasks[task] = multilabel_scores(
                [_canon(g if isinstance(g, list) else [g]) for g in gts],
                [_canon(v if isinstance(v, list) else [v]) if v is not None else None for v in vals],
            )
        elif task in CLOSED_TASKS:
            ok = [int(v is not None and str(v).lower() == str(g).lower()) for g, v in zip(gts, vals)]
            tasks[task] = {"n": len(rows), "accuracy": sum(ok) / len(rows), "no_answer": n_none + n_missing}
        elif task in TEXT_TASKS:
            refs = {}
            hyps = {}
            for ex, _p, v in rows:
                a = ex.answer if ex.answer is not None else ex.reference
                if task == "dialogue":
                    # The model sees the earlier turns in its prompt and answers the final one.
                    a = ex.reference if ex.reference is not None else (a[-1] if isinstance(a, list) and a else a)
                if isinstance(a, list):
                    a = [str(x) for x in a]
                refs[ex.id] = a if isinstance(a, list) else [str(a)]
                hyps[ex.id] = (" ".join(v) if isinstance(v, list) else v) or ""
            tasks[task] = caption_scores(refs, hyps, meteor=meteor, spice=spice, tokenizer=tokenizer)
            per_sample = tasks[task].pop("per_sample")
            styles = {ex.id: str(ex.params.get("style") or ex.params.get("type") or "all") for ex, _, _ in rows}
            if len(set(styles.values())) > 1:
                tasks[task]["per_type"] = per_type_means(per_sample, styles)
        else:  # open-ended VQA
            g = [str(x if x is not None else (ex.reference or "")) for x, (ex, _, _) in zip(gts, rows)]
            tasks[task] = _protocol_vqa(rows, g, vqa_protocol, judge)
        tasks[task]["no_answer"] = n_none + n_missing

    if vqa_protocol != "exact":
        for task in sorted(set(by_task) & set(SARLANG_VQA_TASKS)):
            rows = by_task[task]
            tasks[f"{task}@{vqa_protocol}"] = _protocol_vqa(
                rows, [ex.reference or "" for ex, _, _ in rows], vqa_protocol, judge
            )

    judged: dict[str, Any] = {}
    if five_dimensions and judge:
        from sarvlm.eval.judges import five_dimension_scores

        for task in sorted(by_task):
            if task in TEXT_TASKS or task not in tasks or "protocol" in tasks[task]:
                items = [
                    {
                        "question": _question(ex),
                        "reference": str(ex.reference or ex.answer or ""),
                        "answer": p.prediction if p is not None else "",
                        "history": _history(ex),
                    }
                    for ex, p, _ in by_task[task]
                ]
                res = five_dimension_scores(judge, items)
                for j in res["judges"].values():
                    j.pop("per_sample")
                judged[task] = res

    metrics: dict[str, Any] = {
        "run_name": run_name or (Path(out_dir).name if out_dir is not None else "run"),
        "inputs": {"predictions": Path(predictions_path).name, "data": Path(data_path).name},
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
            "missing": "missing predictions count as wrong; unparsable answers count as wrong (no_answer)",
            "judges": [{"name": j.name, "model": j.model, "endpoint": j.base_url} for j in (judge or [])],
        },
        "versions": _versions(),
    }
    metrics = _clean(metrics)
    if out_dir is not None:
        from sarvlm.eval.report import write_report

        write_report(metrics, out_dir, raw=raw, plots=plots, overwrite=overwrite)
    return metrics


def _protocol_vqa(rows: list[tuple[Any, Any, Any]], truths: list[str], protocol: str, judge: Sequence[Any] | None):
    """Open-VQA accuracy of ``rows`` (example, prediction, parsed) against ``truths`` under ``protocol``.

    ``sarlang1m`` reads the model's raw answer text, as the released script reads its CSV;
    the other protocols read the parsed answer.
    """
    from sarvlm.eval.vqa import vqa_accuracy

    judge_fn = _binary_judge(judge[0], protocol) if protocol != "exact" and judge else None
    q = [_question(ex) for ex, _, _ in rows]
    if protocol == "sarlang1m":
        v = [p.prediction if p is not None else None for _, p, _ in rows]
    else:
        v = [(" ".join(map(str, x)) if isinstance(x, list) else str(x)) if x is not None else None for _, _, x in rows]
    qtypes = [str(ex.params.get("type", ex.task)) for ex, _, _ in rows]
    if judge_fn is not None:
        judge_fn.prefetch(q, truths, v)
    return vqa_accuracy(q, truths, v, types=qtypes, protocol=protocol, judge=judge_fn)


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
        from sarvlm.eval.vqa import judge_needed

        prompts = [self._prompt(q, g, p) for q, g, p in zip(questions, gts, preds) if judge_needed(self.protocol, g, p)]
        if prompts:
            self.judge.complete_many(prompts, "SARLANG-1M judge")

    def __call__(self, question: str, gt: str, pred: str) -> bool | None:
        from sarvlm.eval.judges import parse_binary, parse_sarlang_reply

        reply = self.judge.complete(self._prompt(question, gt, pred))
        return parse_sarlang_reply(reply) if self.protocol == "sarlang1m" else parse_binary(reply)
