"""Template captions of a synthetic scene, written from its annotations only.

Two styles per scene:

- ``template``: resolution and band, scene kind, land-cover shares (classes ≥ 5%), then each
  annotated target category with its count, fine types and where it lies on a 3×3 grid;
- ``concise``: one short sentence (scene kind and the main targets), in the spirit of
  SARLANG-1M's concise captions.

Unannotated land clutter is never mentioned: captions say only what the annotations say.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sarvlm.core.record import Caption, ObjectAnnotation
from sarvlm.core.vocabulary import box_centre, cell_name, grid_cell, number_word
from sarvlm.tasks.category_phrases import CATEGORY_ORDER
from sarvlm.tasks.category_phrases import count_phrase as _count_phrase

_KIND_PHRASE = {
    "port": "a coastal port",
    "coast": "a stretch of coast",
    "river": "a river landscape",
    "airport": "an airport",
    "rural": "a rural area",
}


def _where(objs: Sequence[ObjectAnnotation], width: int, height: int) -> str:
    # where the targets lie, in the words of the 3x3 grid (the same cells as FUSAR-GPT's grid task)
    cells = Counter(cell_name(grid_cell(*box_centre(o.bbox), width, height)) for o in objs)
    if len(cells) == 1:
        return f"in the {next(iter(cells))}"
    if len(cells) <= 2:
        a, b = sorted(cells)
        return f"in the {a} and {b}"
    return "scattered across the image"


def _fine_phrase(objs: Sequence[ObjectAnnotation]) -> str:
    fine = Counter(o.fine_category for o in objs if o.fine_category)
    if not fine:
        return ""
    parts = [
        f"{number_word(n)} {name.replace('_', ' ')}" for name, n in sorted(fine.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return " (" + ", ".join(parts) + ")"


def make_captions(
    kind: str,
    objects: Sequence[ObjectAnnotation],
    fractions: dict[str, float],
    width: int,
    height: int,
    resolution_m: float,
    polarization: str = "VV",
) -> list[Caption]:
    """The ``template`` and ``concise`` captions of one scene."""
    by_cat: dict[str, list[ObjectAnnotation]] = {}
    for o in objects:
        by_cat.setdefault(o.category, []).append(o)
    land = [(name, f) for name, f in sorted(fractions.items(), key=lambda kv: (-kv[1], kv[0])) if f >= 0.05]
    land_txt = ", ".join(f"{name} ({round(100 * f)}%)" for name, f in land)

    sentences = [
        f"A {resolution_m:g} m C-band {polarization} SAR image of {_KIND_PHRASE[kind]}.",
        f"Land cover: {land_txt}.",
    ]
    target_parts = []
    for cat in CATEGORY_ORDER:
        objs = by_cat.get(cat)
        if objs:
            target_parts.append(f"{_count_phrase(cat, len(objs))}{_fine_phrase(objs)} {_where(objs, width, height)}")
    if target_parts:
        first = len(by_cat[next(c for c in CATEGORY_ORDER if c in by_cat)])
        sentences.append(f"There {'is' if first == 1 else 'are'} {_join(target_parts)}.")
    else:
        sentences.append("No ships, aircraft, vehicles or other targets are visible.")
    template = " ".join(sentences)

    main = [_count_phrase(c, len(by_cat[c])) for c in CATEGORY_ORDER if c in by_cat][:3]
    head = _KIND_PHRASE[kind]
    head = head[0].upper() + head[1:]
    if main:
        concise = f"{head} with {_join(main)}."
    else:
        dominant = land[0][0] if land else "land"
        concise = f"{head} of mostly {dominant}, without visible targets."
    return [
        Caption(text=template, style="template", source="sarvlm-synth"),
        Caption(text=concise, style="concise", source="sarvlm-synth"),
    ]


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
