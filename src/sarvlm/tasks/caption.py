"""Captioning examples: imported captions (concise, complex, FUSAR-GEOVL 8-field structured) and,
for annotated samples without captions, captions generated from the annotations.

Prompts (SARLANG-1M §4.1 wording for the concise one):

- ``concise``: "Describe the content of this image in one sentence."
- ``complex``: "Describe the content of this image in detail."
- ``structured``: asks for FUSAR-GEOVL-1M's eight fields; the reference is one ``Field: value`` line
  per field in the order Terrain, Functionality, Distribution, Layout, Boundary, Buildings, Roads,
  Water (fields the caption lacks are left out).
- other styles: "Describe the content of this image."

From annotations (when a sample has targets but no caption):

- ``template``: one of FUSAR-KLIP's five caption templates (paper 004, §5.3: "the text content
  includes key information such as the category, quantity, and spatial location of the target ...
  five language templates"). The paper does not print them; sarvlm's five are in
  :data:`KLIP_TEMPLATES`. Counts are digits and locations are SARLANG-1M regions, so QC can check
  them against the annotations.
- ``complex``: several sentences: totals, each category's count, grid cells and main region, and
  the main landforms when a land-cover mask is present.

Answer: the reference text; ``params``: ``{"style": ..., "source": "caption" | "annotations"}``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from sarvlm.core.vocabulary import grid_cells, majority_region
from sarvlm.tasks.base import Draft, SampleView, Target, TaskContext, plural, single_turn
from sarvlm.tasks.parsing import text_answer
from sarvlm.tasks.scoring import score_caption
from sarvlm.tasks.spec import TaskSpec

TASKS = ("caption",)

GEOVL_FIELDS = ("Terrain", "Functionality", "Distribution", "Layout", "Boundary", "Buildings", "Roads", "Water")
PROMPTS = {
    "concise": "Describe the content of this image in one sentence.",
    "template": "Describe the content of this image in one sentence.",
    "complex": "Describe the content of this image in detail.",
    "structured": "Describe this SAR image in terms of its terrain, functionality, distribution, layout, boundary, "
    "buildings, roads and water, one line per aspect.",
}
DEFAULT_PROMPT = "Describe the content of this image."

KLIP_TEMPLATES = (
    "There {be} {objects} in this SAR image.",
    "This SAR image contains {objects}.",
    "In this SAR image, {objects} can be seen.",
    "The SAR image shows {objects}.",
    "{Objects} {be} visible in this SAR image.",
)
_REGION_PHRASE = {
    "center": "in the center",
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
}


def structured_text(fields: dict[str, str]) -> str:
    """FUSAR-GEOVL fields as ``Field: value`` lines in the canonical order (unknown fields after)."""
    lower = {k.lower(): (k, v) for k, v in fields.items()}
    lines = []
    for name in GEOVL_FIELDS:
        hit = lower.pop(name.lower(), None) or lower.pop(name.lower().rstrip("s"), None)
        if hit and hit[1].strip():
            lines.append(f"{name}: {hit[1].strip()}")
    lines += [f"{k}: {v.strip()}" for k, v in sorted(lower.values()) if v.strip()]
    return "\n".join(lines)


def _count_phrase(cat: str, targets: list[Target], width: int, height: int) -> str:
    n = len(targets)
    region = majority_region((t.box for t in targets), width, height)
    return f"{n} {cat if n == 1 else plural(cat)} {_REGION_PHRASE[region]}"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def template_caption(view: SampleView, rng: random.Random) -> str:
    """One KLIP-style sentence with each category's count and main location."""
    parts = [_count_phrase(c, ts, view.width, view.height) for c, ts in view.by_category.items()]
    objects = _join(parts)
    be = "is" if len(view.targets) == 1 else "are"
    tpl = KLIP_TEMPLATES[rng.randrange(len(KLIP_TEMPLATES))]
    return tpl.format(objects=objects, Objects=objects[0].upper() + objects[1:], be=be)


def complex_caption(view: SampleView) -> str:
    """A multi-sentence description from the annotations (and land cover, when present)."""
    n = len(view.targets)
    k = len(view.by_category)
    sents = [
        f"This SAR image contains {n} {'target' if n == 1 else 'targets'} of {k} "
        f"{'category' if k == 1 else 'categories'}."
    ]
    for cat, ts in view.by_category.items():
        cells = grid_cells((t.box for t in ts), view.width, view.height)
        where = majority_region((t.box for t in ts), view.width, view.height)
        noun = cat if len(ts) == 1 else plural(cat)
        cell_txt = f"cell {cells[0]}" if len(cells) == 1 else "cells " + _join([str(c) for c in cells])
        sents.append(
            f"There {'is' if len(ts) == 1 else 'are'} {len(ts)} {noun}, mostly {_REGION_PHRASE[where]}, "
            f"in {cell_txt} of a 3x3 grid."
        )
    shares = view.cache.get("landcover")
    if view.record.landcover is not None and shares is None:
        from sarvlm.tasks.landform import landcover_shares

        shares = view.cache["landcover"] = landcover_shares(view)
    if shares is not None and shares.overall:
        kinds = sorted(shares.overall.items(), key=lambda kv: (-kv[1], kv[0]))
        main = kinds[0][0]
        others = [c for c, s in kinds[1:] if s >= 0.05]
        sents.append(f"The main landform is {main}" + (f", with {_join(others)}." if others else "."))
    return " ".join(sents)


def generate(task: str, view: SampleView, ctx: TaskContext, rng: random.Random) -> Iterator[Draft]:
    """Caption examples for one sample."""
    if task != "caption":
        raise ValueError(f"not a caption task: {task}")
    rec = view.record
    for cap in rec.captions:
        style = cap.style
        text = structured_text(cap.fields) if cap.fields else cap.text.strip()
        if cap.fields:
            style = "structured"
        if not text:
            continue  # empty captions are counted by QC before they get here
        prompt = PROMPTS.get(style, DEFAULT_PROMPT)
        yield single_turn(task, prompt, text, text, {"style": style, "source": "caption"})
    if not rec.captions and view.targets:
        text = template_caption(view, rng)
        yield single_turn(task, PROMPTS["template"], text, text, {"style": "template", "source": "annotations"})
        text = complex_caption(view)
        yield single_turn(task, PROMPTS["complex"], text, text, {"style": "complex", "source": "annotations"})


SPECS = (
    TaskSpec(
        needs="captions or annotated objects",
        name="caption",
        paper="SARLANG-1M / FUSAR-KLIP / FUSAR-GEOVL",
        answer="str",
        generator=generate,
        parser=text_answer,
        scorer=score_caption,
        metrics=("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider"),
        max_new_tokens=160,
        free_text=True,
    ),
)
