"""What one task is: :class:`TaskSpec`, and the small value types its parser and scorer see.

A task is one object: its name, the paper it comes from, the kind of answer, the generator that
writes its examples, the parser that reads a model's free text back into that answer, the scorer
(with the names of the metrics it reports), the answer budget for generation and whether the answer
is free text. Every layer that needs to know something about a task reads it from here (through
:mod:`sarvlm.tasks.registry`), never from a list of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sarvlm.tasks.base import Generator


@dataclass(frozen=True, slots=True)
class AnswerContext:
    """What a parser may use besides the text: the example's parameters and image size, the box
    convention the model was asked to answer in, and the category names the ground truth uses."""

    params: dict[str, Any] = field(default_factory=dict)
    coords: str | None = None
    width: int | None = None
    height: int | None = None
    categories: tuple[str, ...] | None = None


@dataclass(slots=True)
class Scored:
    """One test example with its prediction (None when missing) and the parsed answer (None when
    missing or unreadable)."""

    example: Any  # sarvlm.core.example.InstructionExample
    prediction: Any | None  # sarvlm.core.example.Prediction
    parsed: Any | None


@dataclass(frozen=True, slots=True)
class ScoreOptions:
    """Options of one evaluation run that scorers may use.

    ``judge`` is a binary judge ``judge(question, ground_truth, prediction) -> bool | None`` with an
    optional ``prefetch(questions, gts, preds)`` (SARLANG-1M protocol); evaluation builds it from its
    LLM judges, so this layer never imports them.
    """

    meteor: bool = False
    spice: bool = False
    tokenizer: str = "python"
    vqa_protocol: str = "exact"
    judge: Any | None = None


@dataclass(slots=True)
class TaskScore:
    """A scorer's result: the metrics written to ``metrics.json`` and data only plots need."""

    metrics: dict[str, Any]
    plot_data: dict[str, Any] = field(default_factory=dict)


Parser = Callable[[str, AnswerContext], Any]
Scorer = Callable[[Sequence[Scored], ScoreOptions], TaskScore]
Matcher = Callable[[Any, Any], bool]


def equal_answers(parsed: Any, answer: Any) -> bool:
    """Plain equality (numbers, cell lists, exact strings)."""
    return parsed is not None and parsed == answer


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task (see docs/tasks.md).

    Attributes:
        name: stable task name (the ``task`` field of every example).
        paper: where the task comes from (shown in docs and reports).
        answer: the structured answer's kind, e.g. ``"int"`` or ``"sorted list[int] of cells 1..9"``.
        generator: writes examples from a cleaned sample; None for tasks only read from imported data.
        parser: free text -> structured answer, or None when the text holds none. Must not raise.
        scorer: every scored example of the task -> :class:`TaskScore`.
        metrics: names of the metrics the scorer reports (keys of ``TaskScore.metrics``).
        max_new_tokens: default generation budget (tokens of the real Qwen tokenizer).
        free_text: the answer is free text (quality control checks its words; LLM judges score it).
        groups: named groups the task belongs to (``--tasks fusar-gpt``). ``sarlang`` marks SARLANG-1M's
            question types: under a SARLANG-1M VQA protocol evaluation also scores them with the
            protocol's rule as ``<task>@<protocol>``.
        matches: per-example correctness of a parsed answer against the reference.
        label_vocabulary: the ground-truth answers of a test file are the categories the parser looks for.
        needs: what a sample must carry for the generator to write examples (said when a requested
            task produces none).
    """

    name: str
    paper: str
    answer: str
    generator: Generator | None
    parser: Parser
    scorer: Scorer
    metrics: tuple[str, ...]
    max_new_tokens: int
    free_text: bool = False
    groups: tuple[str, ...] = ()
    matches: Matcher = equal_answers
    label_vocabulary: bool = False
    needs: str = ""
