"""Quality control for instruction data, with a per-reason report.

Checks on annotations (before any task sees them):

- ``box_clipped`` / ``box_partly_outside_dropped``: a box reaching outside the image is clipped to it
  (``boxes="clip"``, default) or dropped (``boxes="drop"``);
- ``box_outside``: a box entirely outside the image is dropped;
- ``zero_area_box``: a box with no area (after clipping) is dropped;
- ``category_mapped``: a category renamed through the synonym table of :mod:`sarvlm.core.vocabulary`
  (``plane`` -> ``aircraft``, ``oil_tank`` -> ``tank``; a dataset's type label such as SAR-AIRcraft's
  ``A330`` -> ``aircraft``, the label kept as the object's fine type);
- ``unknown_category``: a category not in a given vocabulary (after synonyms) is dropped;
- ``crowd_region``: COCO ``iscrowd`` regions are kept in the record but are not targets.

Checks on generated text (captions, dialogues, imported VQA):

- ``colour_word``: colour claims in a SAR text (SARLANG-1M §3.1/§3.3 removed "references to color
  information that are applicable to RGB images but not to SAR images", Fig. 7 "unsuitable color
  information"); achromatic words such as dark/bright/white/black are allowed, since SAR images are shown
  in grey levels; land-use terms that contain a colour word but describe no colour ("green space",
  "green area", "green belt", "greenbelt", "green land", "green corridor", "blue-green infrastructure")
  and vegetation words ("greenery", "lush") are not colour claims and are kept;
- ``count_mismatch``: "3 ships" where the annotations hold a different number of ships;
- ``position_mismatch``: "ships on the left" where no ship lies in the left region;
- ``empty_question`` / ``empty_answer`` / ``duplicate_question`` (the same question with the same answer
  twice for one sample; the same question with different answers, e.g. several reference captions, is kept).

Count and position checks run only on samples that have object annotations and only for categories
of the build's vocabulary. ``mode="drop"`` removes flagged examples, ``mode="flag"`` keeps them; both
count them.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sarvlm.core.record import SampleRecord
from sarvlm.core.vocabulary import (
    CARDINALS,
    POSITION_WORDS,
    SYNONYMS,
    box_centre,
    canonical_category,
    grid_cell,
    is_fine_type,
)
from sarvlm.tasks.base import SampleView, Target, plural

REASONS: dict[str, str] = {
    "box_clipped": "box partly outside the image: clipped to the image",
    "box_partly_outside_dropped": "box partly outside the image: dropped (--boxes drop)",
    "box_outside": "box entirely outside the image: dropped",
    "zero_area_box": "box with zero area: dropped",
    "category_mapped": "category renamed through the synonym table",
    "unknown_category": "category not in the vocabulary: object dropped",
    "crowd_region": "iscrowd region: not used as a target",
    "colour_word": "colour word in a SAR text",
    "count_mismatch": "count in the text contradicts the annotations",
    "position_mismatch": "position in the text contradicts the annotations",
    "empty_question": "empty question",
    "empty_answer": "empty answer",
    "duplicate_question": "same question and answer twice for one sample: repeat dropped",
    "missing_image": "image file missing: sample skipped (--skip-missing)",
}
TEXT_REASONS = ("colour_word", "count_mismatch", "position_mismatch")

COLOUR_WORDS = (
    "red",
    "green",
    "blue",
    "yellow",
    "orange",
    "purple",
    "pink",
    "brown",
    "violet",
    "cyan",
    "magenta",
    "turquoise",
    "beige",
    "golden",
    "teal",
    "maroon",
    "greenish",
    "bluish",
    "reddish",
    "yellowish",
    "brownish",
    "colorful",
    "colourful",
    "colored",
    "coloured",
    "color",
    "colour",
    "colors",
    "colours",
)
_COLOUR_RE = re.compile(r"\b(" + "|".join(COLOUR_WORDS) + r")\b", re.I)
# Land-use phrases that name a kind of land, not a colour seen in the image (planning vocabulary:
# "green space" is a park whatever its backscatter). They are blanked before the colour search.
LAND_USE_COLOUR_PHRASES = (
    r"green[\s-]+(?:spaces?|areas?|belts?|lands?|corridors?|zones?|infrastructure)",
    r"greenbelts?",
    r"blue[\s-]+green[\s-]+(?:spaces?|infrastructure|corridors?)",
)
_LAND_USE_RE = re.compile(r"\b(?:" + "|".join(LAND_USE_COLOUR_PHRASES) + r")\b", re.I)
_LINKS = {"and", "or", "of", "to", "the", "with", "than", "in", "on", "at", "from", "by", "for"}


@dataclass
class QualityReport:
    """Counts per reason, with the first few record/example ids for each."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    keep_examples: int = 5

    def add(self, reason: str, who: str, n: int = 1) -> None:
        self.counts[reason] += n
        ids = self.examples.setdefault(reason, [])
        if len(ids) < self.keep_examples and who not in ids:
            ids.append(who)

    def to_dict(self) -> dict[str, Any]:
        return {
            r: {"count": self.counts[r], "meaning": REASONS.get(r, r), "examples": self.examples.get(r, [])}
            for r in sorted(self.counts)
        }

    def markdown(self) -> str:
        if not self.counts:
            return "No quality issues found.\n"
        lines = ["| reason | count | meaning | examples |", "|---|---:|---|---|"]
        for r in sorted(self.counts):
            lines.append(f"| {r} | {self.counts[r]} | {REASONS.get(r, r)} | {', '.join(self.examples.get(r, []))} |")
        return "\n".join(lines) + "\n"


def clean_targets(
    record: SampleRecord,
    report: QualityReport,
    boxes: str = "clip",
    synonyms: dict[str, str] | None = SYNONYMS,
    vocabulary: set[str] | None = None,
) -> list[Target]:
    """The record's usable targets: boxes clipped/dropped, categories canonicalised, crowds left out."""
    w, h = record.width, record.height
    out: list[Target] = []
    for obj in record.objects:
        if obj.iscrowd:
            report.add("crowd_region", record.id)
            continue
        cat = canonical_category(obj.category, synonyms)
        if cat != obj.category:
            report.add("category_mapped", f"{record.id}: {obj.category} -> {cat}")
        if vocabulary is not None and cat not in vocabulary:
            report.add("unknown_category", f"{record.id}: {cat}")
            continue
        x1, y1, x2, y2 = obj.bbox
        if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
            report.add("box_outside", record.id)
            continue
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
            if boxes == "drop":
                report.add("box_partly_outside_dropped", record.id)
                continue
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
            report.add("box_clipped", record.id)
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            report.add("zero_area_box", record.id)
            continue
        # A type label (SAR-AIRcraft's "A330") mapped to its coarse category stays the object's type.
        fine = obj.fine_category or (obj.category if cat != obj.category and is_fine_type(obj.category) else None)
        out.append(Target(cat, fine, (float(x1), float(y1), float(x2), float(y2))))
    return out


def colour_words(text: str) -> list[str]:
    """Colour words found in a text (lower case, in order); land-use phrases such as "green space" are not colours."""
    return [m.group(1).lower() for m in _COLOUR_RE.finditer(_LAND_USE_RE.sub(" ", text))]


@functools.lru_cache(maxsize=64)
def _category_pattern(categories: tuple[str, ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    by_name = {n.lower(): c for c in categories for n in (c, plural(c))}
    names = sorted({n for c in categories for n in (c, plural(c))}, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b", re.I), by_name


def _mentions(text: str, categories: tuple[str, ...]) -> tuple[list[tuple[int, str]], list[tuple[str, str]]]:
    """(count, category) and (category, region) statements in a text, for the given categories."""
    cat_re, by_name = _category_pattern(categories)
    counts, positions = [], []
    for m in cat_re.finditer(text):
        cat = by_name[m.group(1).lower()]
        before = text[: m.start()].rstrip().split()
        value = _number(before[-1]) if before else None
        if value is None and len(before) >= 2 and before[-1].isalpha() and before[-1].lower() not in _LINKS:
            value = _number(before[-2])  # one adjective in between: "two large ships"
        if value is not None:
            counts.append((value, cat))
        after = text[m.end() : m.end() + 60]
        pos = re.match(
            r"(?:\W+\w+){0,3}?\W+(?:on|in|at|to|towards) the (left|right|top|bottom|upper|lower|"
            r"center|centre|middle)\b",
            after,
            re.I,
        )
        if pos:
            positions.append((cat, POSITION_WORDS[pos.group(1).lower()]))
    return counts, positions


def _number(word: str) -> int | None:
    word = word.lower().strip("(,")
    return int(word) if word.isdigit() else CARDINALS.get(word)


def text_problems(text: str, view: SampleView, vocabulary: tuple[str, ...]) -> list[str]:
    """Reasons (from :data:`TEXT_REASONS`) why a SAR text is suspect."""
    problems = []
    if colour_words(text):
        problems.append("colour_word")
    if view.record.objects and vocabulary:
        counts, positions = _mentions(text, tuple(vocabulary))
        if any(len(view.by_category.get(cat, [])) != n for n, cat in counts):
            problems.append("count_mismatch")
        for cat, region in positions:
            if not _loosely_at(view.by_category.get(cat, []), region, view.width, view.height):
                problems.append("position_mismatch")
                break
    return problems


def _loosely_at(targets: list[Target], region: str, width: int, height: int) -> bool:
    """Whether any target centre lies in the half of the image a text names (cell 5 for center).

    Texts say "on the left" of a target in the top-left corner too, so text checks use half-planes,
    not the exclusive five regions used for generated answers.
    """
    for t in targets:
        cx, cy = box_centre(t.box)
        if region == "center":
            if grid_cell(cx, cy, width, height) == 5:
                return True
        elif (
            (region == "left" and cx < width / 2)
            or (region == "right" and cx > width / 2)
            or (region == "top" and cy < height / 2)
            or (region == "bottom" and cy > height / 2)
        ):
            return True
    return False
