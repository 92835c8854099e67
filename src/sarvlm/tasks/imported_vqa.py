"""Imported question-answer pairs (SARLANG-1M VQA files, other VQA sets) as ``vqa`` examples.

The question is wrapped in SARLANG-1M's evaluation prompt ("Question: {question} Answer the question
concisely."); the answer is the imported text; ``params`` carry the imported question ``type`` (e.g.
SARLANG-1M's "counting"), so evaluation can break accuracy down by type.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from sarvlm.tasks.base import Draft, SampleView, TaskContext, single_turn, vqa_question
from sarvlm.tasks.parsing import text_answer
from sarvlm.tasks.scoring import score_open_vqa
from sarvlm.tasks.spec import TaskSpec

TASKS = ("vqa",)


def generate(task: str, view: SampleView, ctx: TaskContext, rng: random.Random) -> Iterator[Draft]:
    """One example per imported QA pair with a non-empty question and answer."""
    if task != "vqa":
        raise ValueError(f"not an imported-VQA task: {task}")
    for qa in view.record.qa:
        q, a = qa.question.strip(), qa.answer.strip()
        if q and a:
            yield single_turn(task, vqa_question(q), a, a, {"type": qa.type})


SPECS = (
    TaskSpec(
        needs="imported question-answer pairs (record.qa)",
        name="vqa",
        paper="imported QA (SARLANG-1M VQA files and other VQA sets)",
        answer="str (imported answer)",
        generator=generate,
        parser=text_answer,
        scorer=score_open_vqa,
        metrics=("n", "accuracy", "per_type"),
        max_new_tokens=64,
        free_text=True,
    ),
)
