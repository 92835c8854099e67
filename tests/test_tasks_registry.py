"""The task registry: every task is complete, its reference answers parse back, its scorer reports
the metrics it declares, and every consumer reads budgets, parsers and free-text flags from it."""

from __future__ import annotations

import dataclasses
import random

import pytest

from sarvlm.core.example import InstructionExample, Message
from sarvlm.core.record import parse_sample
from sarvlm.data.quality import QualityReport, clean_targets
from sarvlm.tasks.base import SampleView, TaskContext
from sarvlm.tasks.registry import (
    DEFAULT_MAX_NEW_TOKENS,
    GENERATORS,
    TASK_GROUPS,
    TASKS,
    answer_is_correct,
    is_free_text,
    max_new_tokens,
    parse_prediction,
    resolve_tasks,
    task_problems,
    task_spec,
)
from sarvlm.tasks.spec import AnswerContext, Scored, ScoreOptions

W, H = 90, 60


def test_every_registered_task_is_complete():
    assert set(TASKS) >= {"count", "grid", "classify_box", "detect", "caption", "dialogue", "vqa"}
    for name, spec in TASKS.items():
        assert spec.name == name
        assert task_problems(spec) == [], name


@pytest.mark.parametrize("field", ["parser", "scorer"])
def test_a_task_without_a_parser_or_scorer_is_reported(field):
    broken = dataclasses.replace(TASKS["count"], **{field: None})
    assert task_problems(broken) == [f"no {field}"]
    assert "no metric names" in task_problems(dataclasses.replace(TASKS["count"], metrics=()))


def test_groups_and_resolution_come_from_the_specs():
    assert TASK_GROUPS["fusar-gpt"] == ("count", "grid", "classify_box", "detect")
    assert set(TASK_GROUPS["sarlang"]) == {"identify", "classify", "count", "position", "refer"}
    assert TASK_GROUPS["all"] == tuple(GENERATORS)
    for group, names in TASK_GROUPS.items():
        if group != "all":
            assert all(group in TASKS[n].groups for n in names)
    assert resolve_tasks("fusar-gpt,caption") == ["count", "grid", "classify_box", "detect", "caption"]


def test_budgets_free_text_and_unknown_tasks():
    assert max_new_tokens("count") == TASKS["count"].max_new_tokens == 16
    assert max_new_tokens("detect") == 384
    assert max_new_tokens("no-such-task") == max_new_tokens(None) == DEFAULT_MAX_NEW_TOKENS
    assert [n for n in TASKS if is_free_text(n)] == ["caption", "dialogue", "vqa"]
    # rows re-imported from other tools carry task "imported": an open, free-text answer
    assert is_free_text("imported") and task_spec("imported").name == "imported"
    assert parse_prediction("imported", "  <think>x</think> A harbor. ") == "A harbor."


def _view() -> SampleView:
    objects = [
        ("ship", [5, 5, 15, 12], "cargo"),
        ("ship", [70, 40, 85, 55], None),
        ("oil_tank", [40, 2, 50, 8], None),
        ("aircraft", [35, 25, 55, 35], "fighter"),
    ]
    rec = parse_sample(
        {
            "id": "s",
            "image": "s.png",
            "width": W,
            "height": H,
            "objects": [{"category": c, "bbox": b, **({"fine_category": f} if f else {})} for c, b, f in objects],
            "qa": [{"question": "What shape is the tank?", "answer": "round", "type": "shape"}],
        }
    )
    targets = clean_targets(rec, QualityReport())
    groups: dict = {}
    for t in targets:
        groups.setdefault(t.category, []).append(t)
    return SampleView(rec, None, targets, {c: groups[c] for c in sorted(groups)})


STRUCTURED = ["count", "grid", "classify_box", "detect", "identify", "classify", "position", "refer"]


@pytest.mark.parametrize("task", STRUCTURED + ["vqa"])
def test_reference_answers_parse_back_and_score_perfectly(task):
    ctx = TaskContext(coords="qwen3", vocabulary=("aircraft", "car", "ship", "tank"), max_per_sample=10)
    drafts = list(GENERATORS[task](task, _view(), ctx, random.Random(0)))
    assert drafts
    spec = TASKS[task]
    cats = None
    if spec.label_vocabulary:  # the parser looks for the names the references use, as evaluation does
        cats = sorted({a for d in drafts for a in (d.answer if isinstance(d.answer, list) else [d.answer])})
    rows = []
    for k, d in enumerate(drafts):
        ex = InstructionExample(
            id=f"s/{task}/{k}",
            sample_id="s",
            task=task,
            images=["s.png"],
            messages=[Message(role=r, content=c) for r, c in d.messages],
            answer=d.answer,
            params=d.params,
            coords="qwen3",
            width=W,
            height=H,
        )
        text = d.messages[-1][1]
        parsed = parse_prediction(
            task,
            text,
            params=d.params,
            coords="qwen3",
            width=W,
            height=H,
            categories=cats,
        )
        if task == "detect":
            assert parsed is not None and len(parsed) == len(d.answer)
            for pb, gb in zip(parsed, d.answer):
                assert pb == pytest.approx(gb, abs=0.5)  # 0-1000 rounding
        else:
            assert answer_is_correct(task, parsed, d.answer), (text, parsed, d.answer)
        rows.append(Scored(ex, object(), parsed))
    metrics = spec.scorer(rows, ScoreOptions()).metrics
    keys = {str(k) for k in metrics}
    assert set(spec.metrics) <= keys, (task, sorted(keys))
    headline = {
        "count": "accuracy",
        "grid": "acc100",
        "identify": "accuracy",
        "position": "accuracy",
        "vqa": "accuracy",
    }
    if task in headline:
        assert metrics[headline[task]] == 1.0
    if task == "detect":
        assert metrics[0.5]["all"]["f1"] == 1.0


@pytest.mark.parametrize("task", ["landform_main", "landform_all", "landform_region", "caption", "dialogue"])
def test_other_scorers_report_their_declared_metrics(task):
    answers = {
        "landform_main": ["farmland", "water", "urban"],
        "landform_all": [["farmland", "water"], ["urban"], ["forest", "water"]],
        "landform_region": ["grassland", "bare", "water"],
        "caption": ["several ships are moored in the harbor.", "an airport with aircraft.", "a river."],
        "dialogue": [["a port."], ["two ships."], ["on the left."]],
    }[task]
    rows = []
    for k, a in enumerate(answers):
        text = ", ".join(a) if task == "landform_all" else ("\n\n".join(a) if task == "dialogue" else a)
        ex = InstructionExample(
            id=f"e{k}",
            sample_id=f"s{k}",
            task=task,
            images=["s.png"],
            messages=[Message(role="user", content="<image>Q?"), Message(role="assistant", content=text)],
            answer=a,
        )
        rows.append(Scored(ex, object(), parse_prediction(task, text)))
    spec = TASKS[task]
    metrics = spec.scorer(rows, ScoreOptions()).metrics
    assert set(spec.metrics) <= set(metrics), sorted(metrics)
    if task.startswith("landform"):
        assert metrics["top1" if spec.metrics[1] == "top1" else "accuracy"] == 1.0


def test_the_worked_example_in_docs_tasks_md_runs():
    """docs/tasks.md shows how to add a task; its code must define a complete, working task."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "tasks.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "zero_shot_type" in b)
    namespace: dict = {"__name__": "zero_shot_example"}
    exec(compile(code, "docs/tasks.md", "exec"), namespace)
    (spec,) = namespace["SPECS"]
    assert task_problems(spec) == []
    ctx = TaskContext(coords="qwen3", vocabulary=("aircraft", "ship", "tank"))
    drafts = list(spec.generator(spec.name, _view(), ctx, random.Random(0)))
    assert [d.answer for d in drafts] == ["cargo"]
    parsed = spec.parser("Probably a cargo ship.", AnswerContext(categories=("cargo", "tanker")))
    assert spec.matches(parsed, "cargo")


def test_the_demo_trains_registered_tasks():
    from sarvlm.demo.config import BUILD_TASKS, STAGE2_TASKS

    assert set(STAGE2_TASKS) <= set(BUILD_TASKS) <= set(GENERATORS)
