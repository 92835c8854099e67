"""What every task generator sees and returns.

A task generator turns one cleaned sample (:class:`SampleView`) into zero or more :class:`Draft`
examples: chat messages, a structured answer derived from the annotations, and the parameters the
template asked about. The builder adds ids, image paths, the split and the sample's georeference.
Generators are pure functions of (sample, task, seed): each gets its own ``random.Random`` seeded
from ``(seed, sample id, task)``, so adding a task never changes the examples of another.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarvlm.core.coords import to_model_coords
from sarvlm.core.example import IMAGE_PLACEHOLDER
from sarvlm.core.record import SampleRecord

# SARLANG-1M's evaluation prompt wrapper for VQA (paper 003, §4.1).
VQA_PROMPT = "Question: {question} Answer the question concisely."
NONE_ANSWER = "none"  # text of an empty grid / detect answer

_INVARIANT_PLURALS = {"aircraft", "fish", "sheep", "deer", "series", "species"}


@dataclass(frozen=True, slots=True)
class Target:
    """One usable annotated object after quality control: coarse and fine category, box in pixels."""

    category: str
    fine: str | None
    box: tuple[float, float, float, float]


@dataclass(slots=True)
class SampleView:
    """A sample prepared for the generators: QC-cleaned targets grouped by category."""

    record: SampleRecord
    base_dir: Path  # directory of the samples JSONL (record paths are relative to it)
    targets: list[Target]
    by_category: dict[str, list[Target]]  # sorted by category name
    cache: dict[str, Any] = field(default_factory=dict)  # per-sample results shared by generators
    allow_outside_root: bool = False  # masks may lie outside base_dir (--allow-outside-root)

    @property
    def width(self) -> int:
        return self.record.width

    @property
    def height(self) -> int:
        return self.record.height


@dataclass(slots=True)
class Draft:
    """A generated example before the builder adds ids, images, split and georeference."""

    task: str
    messages: list[tuple[str, str]]  # (role, content); the first user turn carries <image>
    answer: Any
    params: dict[str, Any]


@dataclass(slots=True)
class TaskContext:
    """Options shared by all generators for one build."""

    coords: str = "qwen2.5"
    seed: int = 0  # the build seed (generators get their own RNG; this is for reference)
    vocabulary: tuple[str, ...] = ()  # every object category of the dataset, sorted
    max_per_sample: int = 3  # cap on examples of one task from one sample
    negative_rate: float = 0.25  # chance of one absent-category question for count/grid/detect
    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280
    landform_min_fraction: float = 0.05  # landform_all: classes covering at least this share
    class_hint: bool = False  # prefix SARLANG-style questions with the answer set ("The classes are: ...")
    extra: dict[str, Any] = field(default_factory=dict)

    def box_text(self, box: Sequence[float], width: int, height: int) -> str:
        """A pixel box printed in this build's coordinate convention, e.g. ``[12, 40, 88, 96]``."""
        vals = to_model_coords(box, self.coords, width, height, self.min_pixels, self.max_pixels)
        return "[" + ", ".join(_num(v) for v in vals) + "]"

    def boxes_text(self, boxes: Iterable[Sequence[float]], width: int, height: int) -> str:
        """``[[x1, y1, x2, y2], ...]`` in this build's convention, or ``none`` when empty."""
        parts = [self.box_text(b, width, height) for b in boxes]
        return "[" + ", ".join(parts) + "]" if parts else NONE_ANSWER


Generator = Callable[[str, SampleView, TaskContext, random.Random], Iterable[Draft]]


def _num(v: float | int) -> str:
    if isinstance(v, int):
        return str(v)
    return repr(round(v, 4)) if v != int(v) else str(int(v))


def plural(category: str) -> str:
    """English plural of a category name (``ship`` -> ``ships``, ``aircraft`` -> ``aircraft``)."""
    word = category.strip()
    last = word.split()[-1].lower() if word else word
    if last in _INVARIANT_PLURALS or last.endswith("s"):
        return word
    if last.endswith(("x", "ch", "sh", "z")):
        return word + "es"
    if last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def user_image_turn(text: str) -> tuple[str, str]:
    """The first user turn: the image placeholder, then the instruction."""
    return ("user", f"{IMAGE_PLACEHOLDER}\n{text}")


def vqa_question(question: str) -> str:
    """Wrap a question in SARLANG-1M's prompt ("Question: ... Answer the question concisely.")."""
    return VQA_PROMPT.format(question=question)


def single_turn(task: str, prompt: str, answer_text: str, answer: Any, params: dict[str, Any]) -> Draft:
    return Draft(task, [user_image_turn(prompt), ("assistant", answer_text)], answer, params)


def choose(rng: random.Random, items: Sequence[Any], k: int) -> list[Any]:
    """Up to ``k`` items in their original order, chosen by ``rng`` (all of them when few enough)."""
    if len(items) <= k:
        return list(items)
    idx = sorted(rng.sample(range(len(items)), k))
    return [items[i] for i in idx]


def absent_categories(view: SampleView, ctx: TaskContext) -> list[str]:
    """Vocabulary categories with no target in this sample (for negative questions)."""
    return [c for c in ctx.vocabulary if c not in view.by_category]
