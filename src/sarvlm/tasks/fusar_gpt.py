"""FUSAR-GPT's four target tasks (paper 001, §4.1, Fig. 4): counting, 3x3 grid localization,
classification of the object in a given box (coarse and fine), detection from a category prompt.

Answers are derived from the cleaned targets of a sample (crowd regions excluded):

- ``count``: int, the number of targets of ``params.category`` (all targets when it is null).
- ``grid``: sorted cells 1..9 holding a target centre (rule in :mod:`sarvlm.core.vocabulary`);
  text ``"2, 5"`` or ``"none"``.
- ``classify_box``: the category (``level`` coarse) or fine type (``level`` fine) of the object in
  ``params.box`` (original pixels; the prompt prints it in the build's ``--coords`` convention).
- ``detect``: list of ``[x1, y1, x2, y2]`` original-pixel boxes sorted by (y1, x1, y2, x2); text
  ``[[x1, y1, x2, y2], ...]`` in the ``--coords`` convention or ``"none"``.

Questions are asked about up to ``max_per_sample`` present categories, the whole target set
(``category`` null), and with probability ``negative_rate`` one category absent from the image.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from sarvlm.core.vocabulary import grid_cells, same_answer
from sarvlm.tasks.base import (
    NONE_ANSWER,
    Draft,
    SampleView,
    TaskContext,
    absent_categories,
    choose,
    plural,
    single_turn,
)
from sarvlm.tasks.parsing import boxes_answer, category_answer, count_answer, grid_answer
from sarvlm.tasks.scoring import score_count, score_detect, score_grid, score_single_label
from sarvlm.tasks.spec import TaskSpec

TASKS = ("count", "grid", "classify_box", "detect")

_COUNT_PROMPTS = (
    "How many {what} are there in this SAR image? Answer with a number.",
    "Count the {what} in this SAR image. Answer with a number.",
    "Question: How many {what} are visible in the image? Answer the question concisely.",  # SARLANG-1M Table 5
)
_GRID_PROMPTS = (
    "The image is divided into a 3x3 grid whose cells are numbered 1 to 9 from left to right and top to bottom. "
    "In which cells are the {what} located? Answer with the cell numbers, or none.",
    "Split the image into 3x3 cells numbered 1-9 row by row from the top-left. Which cells contain {what}? "
    "Answer with the cell numbers, or none.",
)
_CLASSIFY_PROMPTS = {
    "coarse": "What is the category of the object in the box {box}? Answer with the category name.",
    "fine": "What is the fine-grained type of the {category} in the box {box}? Answer with the type name.",
}
_DETECT_PROMPTS = (
    "Detect all {what} in the image. Output their bounding boxes as [[x1, y1, x2, y2], ...], or none.",
    "Find all {what} in this SAR image and give the bounding box of each as [[x1, y1, x2, y2], ...], or none.",
)


def _questions(view: SampleView, ctx: TaskContext, rng: random.Random) -> list[str | None]:
    """Categories to ask about: some present ones, all targets (None), maybe one absent one."""
    cats: list[str | None] = list(choose(rng, list(view.by_category), ctx.max_per_sample))
    if view.targets and len(view.by_category) > 1:
        cats.append(None)
    absent = absent_categories(view, ctx)
    if absent and rng.random() < ctx.negative_rate:
        cats.append(absent[rng.randrange(len(absent))])
    return cats


def _what(category: str | None) -> str:
    return plural(category) if category else "targets"


def generate(task: str, view: SampleView, ctx: TaskContext, rng: random.Random) -> Iterator[Draft]:
    """Generate examples of one FUSAR-GPT task for one sample."""
    if task == "classify_box":
        yield from _classify_box(view, ctx, rng)
        return
    for cat in _questions(view, ctx, rng):
        targets = view.by_category.get(cat, []) if cat else view.targets
        params = {"category": cat}
        if task == "count":
            prompt = _COUNT_PROMPTS[rng.randrange(len(_COUNT_PROMPTS))].format(what=_what(cat))
            yield single_turn(task, prompt, str(len(targets)), len(targets), params)
        elif task == "grid":
            cells = grid_cells((t.box for t in targets), view.width, view.height)
            text = ", ".join(map(str, cells)) if cells else NONE_ANSWER
            prompt = _GRID_PROMPTS[rng.randrange(len(_GRID_PROMPTS))].format(what=_what(cat))
            yield single_turn(task, prompt, text, cells, params)
        elif task == "detect":
            boxes = sorted((t.box for t in targets), key=lambda b: (b[1], b[0], b[3], b[2]))
            prompt = _DETECT_PROMPTS[rng.randrange(len(_DETECT_PROMPTS))].format(what=_what(cat))
            text = ctx.boxes_text(boxes, view.width, view.height)
            yield single_turn(task, prompt, text, [list(b) for b in boxes], params)
        else:
            raise ValueError(f"not a FUSAR-GPT task: {task}")


def _classify_box(view: SampleView, ctx: TaskContext, rng: random.Random) -> Iterator[Draft]:
    for t in choose(rng, view.targets, ctx.max_per_sample):
        box = list(t.box)
        box_text = ctx.box_text(box, view.width, view.height)
        prompt = _CLASSIFY_PROMPTS["coarse"].format(box=box_text)
        yield single_turn("classify_box", prompt, t.category, t.category, {"box": box, "level": "coarse"})
        if t.fine:
            prompt = _CLASSIFY_PROMPTS["fine"].format(box=box_text, category=t.category)
            # the coarse parent lets reports group fine classes under it (FUSAR-GPT Table 3)
            yield single_turn(
                "classify_box", prompt, t.fine, t.fine, {"box": box, "level": "fine", "category": t.category}
            )


_PAPER = "FUSAR-GPT (paper 001, §4.1)"
SPECS = (
    TaskSpec(
        needs="annotated objects (boxes)",
        name="count",
        paper=_PAPER + "; SARLANG-1M counting",
        answer="int",
        generator=generate,
        parser=count_answer,
        scorer=score_count,
        metrics=("n", "accuracy", "mae", "answered"),
        max_new_tokens=16,
        groups=("fusar-gpt", "sarlang"),
    ),
    TaskSpec(
        needs="annotated objects (boxes)",
        name="grid",
        paper=_PAPER,
        answer="sorted list[int] of cells 1..9",
        generator=generate,
        parser=grid_answer,
        scorer=score_grid,
        metrics=("n", "acc100", "acc50", "top1"),
        max_new_tokens=32,
        groups=("fusar-gpt",),
    ),
    TaskSpec(
        needs="annotated objects (boxes)",
        name="classify_box",
        paper=_PAPER,
        answer="str (coarse category or fine type)",
        generator=generate,
        parser=category_answer,
        scorer=score_single_label,
        metrics=("n", "top1"),
        max_new_tokens=24,
        groups=("fusar-gpt",),
        matches=same_answer,
        label_vocabulary=True,
    ),
    TaskSpec(
        needs="annotated objects (boxes)",
        name="detect",
        paper=_PAPER,
        answer="list of [x1, y1, x2, y2] original pixels",
        generator=generate,
        parser=boxes_answer,
        scorer=score_detect,
        metrics=("0.25", "0.5", "0.75", "map50"),
        max_new_tokens=384,
        groups=("fusar-gpt",),
    ),
)
