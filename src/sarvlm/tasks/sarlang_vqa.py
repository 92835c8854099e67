"""SARLANG-1M VQA templates (paper 003, Table 5) generated from detection boxes.

Question templates (wrapped in the paper's evaluation prompt "Question: {question} Answer the
question concisely."):

- ``identify`` (yes/no): "Are there [category] in the image?" (``mode`` presence), "Is there a
  [category] located on the [position] side of the image?" (``mode`` side; sides are the five regions
  of :mod:`sarvlm.core.vocabulary`), "Are there any other categories apart from [category] in the
  image?" (``mode`` other). Balanced: every sample gets yes and, where the vocabulary allows, no
  questions.
- ``classify``: "What is the main object in the image?" (``mode`` main: the category with most
  targets; ties go to the larger total box area, then the name) and "What are the categories visible
  in the image?" (``mode`` all: sorted list, text comma-separated).
- ``count`` is shared with FUSAR-GPT (:mod:`sarvlm.tasks.fusar_gpt`), which includes the
  SARLANG-1M wording.
- ``position``: "Where are the most [category] positioned within the image?" -> the region
  (left/right/top/bottom/center) holding most targets of the category.
With ``class_hint`` (SARLANG-1M's README advice when mixing its SARDet-100k questions with other VQA
data), classify/refer questions start with "The classes are: <vocabulary>." and position questions
with "The classes are: top, center, bottom, left, right."

- ``refer``: "What is the object in the area [x1, y1, x2, y2]?" -> the category of the target whose
  box is the area. Areas overlapping a target of another category (IoU >= 0.3) are not asked, so the
  answer is unambiguous. The area is printed in the build's ``--coords`` convention; ``params.region``
  keeps original pixels.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from sarvlm.core.vocabulary import REGIONS, majority_region, regions_with, same_answer
from sarvlm.tasks.base import (
    Draft,
    SampleView,
    TaskContext,
    absent_categories,
    choose,
    plural,
    single_turn,
    vqa_question,
)
from sarvlm.tasks.parsing import category_answer, classify_answer, position_answer, yes_no_answer
from sarvlm.tasks.scoring import score_classify, score_closed, score_single_label
from sarvlm.tasks.spec import TaskSpec

TASKS = ("identify", "classify", "position", "refer")
REFER_MAX_IOU = 0.3


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def main_category(view: SampleView) -> str | None:
    """Most frequent category; ties -> larger total box area -> alphabetical."""
    if not view.by_category:
        return None

    def key(item: tuple[str, list]) -> tuple:
        cat, ts = item
        area = sum((t.box[2] - t.box[0]) * (t.box[3] - t.box[1]) for t in ts)
        return (-len(ts), -area, cat)

    return min(view.by_category.items(), key=key)[0]


POSITION_HINT = "The classes are: top, center, bottom, left, right. "


def _hint(ctx: TaskContext, positions: bool = False) -> str:
    if not ctx.class_hint:
        return ""
    return POSITION_HINT if positions else f"The classes are: {', '.join(ctx.vocabulary)}. "


def generate(task: str, view: SampleView, ctx: TaskContext, rng: random.Random) -> Iterator[Draft]:
    """Generate examples of one SARLANG-1M VQA task for one sample."""
    if task == "identify":
        yield from _identify(view, ctx, rng)
    elif task == "classify":
        if not view.targets:
            return
        main = main_category(view)
        q = vqa_question(_hint(ctx) + "What is the main object in the image?")
        yield single_turn(task, q, main, main, {"mode": "main"})
        cats = sorted(view.by_category)
        q = vqa_question(_hint(ctx) + "What are the categories visible in the image?")
        yield single_turn(task, q, ", ".join(cats), cats, {"mode": "all"})
    elif task == "position":
        for cat in choose(rng, list(view.by_category), ctx.max_per_sample):
            region = majority_region((t.box for t in view.by_category[cat]), view.width, view.height)
            q = vqa_question(
                _hint(ctx, positions=True) + f"Where are the most {plural(cat)} positioned within the image?"
            )
            yield single_turn(task, q, region, region, {"category": cat})
    elif task == "refer":
        yield from _refer(view, ctx, rng)
    else:
        raise ValueError(f"not a SARLANG-1M VQA task: {task}")


def _identify(view: SampleView, ctx: TaskContext, rng: random.Random) -> Iterator[Draft]:
    present = list(view.by_category)
    absent = absent_categories(view, ctx)
    for cat in choose(rng, present, ctx.max_per_sample):
        q = vqa_question(f"Are there {plural(cat)} in the image?")
        yield single_turn("identify", q, "yes", "yes", {"category": cat, "position": None, "mode": "presence"})
    if absent:
        cat = absent[rng.randrange(len(absent))]
        q = vqa_question(f"Are there {plural(cat)} in the image?")
        yield single_turn("identify", q, "no", "no", {"category": cat, "position": None, "mode": "presence"})
    if present:
        cat = present[rng.randrange(len(present))]
        held = regions_with((t.box for t in view.by_category[cat]), view.width, view.height)
        region = REGIONS[rng.randrange(len(REGIONS))]
        where = "in the center" if region == "center" else f"on the {region} side"
        q = vqa_question(f"Is there a {cat} located {where} of the image?")
        ans = _yes_no(region in held)
        yield single_turn("identify", q, ans, ans, {"category": cat, "position": region, "mode": "side"})
        cat = present[rng.randrange(len(present))]
        q = vqa_question(f"Are there any other categories apart from {plural(cat)} in the image?")
        ans = _yes_no(len(present) > 1)
        yield single_turn("identify", q, ans, ans, {"category": cat, "position": None, "mode": "other"})


def _refer(view: SampleView, ctx: TaskContext, rng: random.Random) -> Iterator[Draft]:
    # Visit targets in a seeded order and keep the first unambiguous ones: O(k * n), not O(n^2).
    order = list(range(len(view.targets)))
    rng.shuffle(order)
    picked: list[int] = []
    for i in order:
        t = view.targets[i]
        if not any(o.category != t.category and _iou(o.box, t.box) >= REFER_MAX_IOU for o in view.targets):
            picked.append(i)
            if len(picked) == ctx.max_per_sample:
                break
    for i in sorted(picked):
        t = view.targets[i]
        region = list(t.box)
        area = ctx.box_text(region, view.width, view.height)
        q = vqa_question(_hint(ctx) + f"What is the object in the area {area}?")
        yield single_turn("refer", q, t.category, t.category, {"region": region})


_PAPER = "SARLANG-1M (paper 003, Table 5)"
SPECS = (
    TaskSpec(
        needs="annotated objects (boxes)",
        name="identify",
        paper=_PAPER,
        answer='"yes" | "no"',
        generator=generate,
        parser=yes_no_answer,
        scorer=score_closed,
        metrics=("n", "accuracy"),
        max_new_tokens=8,
        groups=("sarlang",),
    ),
    TaskSpec(
        needs="annotated objects (boxes)",
        name="classify",
        paper=_PAPER,
        answer="str (main) | sorted list[str] (all)",
        generator=generate,
        parser=classify_answer,
        scorer=score_classify,
        metrics=("n",),  # plus top1 (main questions only) or accuracy/precision/recall/f1 (with "all")
        max_new_tokens=24,
        groups=("sarlang",),
        matches=same_answer,
        label_vocabulary=True,
    ),
    TaskSpec(
        needs="annotated objects (boxes)",
        name="position",
        paper=_PAPER,
        answer="left | right | top | bottom | center",
        generator=generate,
        parser=position_answer,
        scorer=score_closed,
        metrics=("n", "accuracy"),
        max_new_tokens=32,
        groups=("sarlang",),
    ),
    TaskSpec(
        needs="annotated objects (boxes)",
        name="refer",
        paper=_PAPER,
        answer="str category",
        generator=generate,
        parser=category_answer,
        scorer=score_single_label,
        metrics=("n", "top1"),
        max_new_tokens=64,
        groups=("sarlang",),
        matches=same_answer,
        label_vocabulary=True,
    ),
)
