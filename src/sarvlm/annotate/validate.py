"""Checking a reply against the record's annotations (the papers' main failure mode is factual error).

Each text of the answer (every field; each dialogue answer; both transferred captions) is checked with
the project's vocabulary (:mod:`sarvlm.annotate.vocabulary`):

- ``count``: "three ships" / "12 aircraft" / "no vehicles" against the number of annotated objects of
  that category; a ``Count`` field with a bare number against the prompt's objects in total;
- ``category``: an object category named (not negated: "no ships" is a count of 0) that has no
  annotated object in the record;
- ``position``: left/right/top/bottom/center named next to a category (or anywhere in a ``Location``
  field) where no such object's centre lies in that half of the image (cell 5 for center), the loose
  rule of instruction-data quality control;
- ``landcover``: a land cover named (not negated) that the record's land cover lacks, or a ``Water``
  field saying "none" where water covers at least 10 %;
- ``size``: lengths in metres in a ``Size`` field outside half the shortest to twice the longest box
  diagonal (only when the resolution is known);
- ``colour``: colour words in a SAR text (SARLANG-1M §3.3; not checked in the optical-morphology field).

Category, count and position checks run only in texts about targets (not Terrain/Functionality/
Layout/Boundary/Buildings/Roads, where "port area" names a function, not a harbour object). A check
that cannot apply (no land cover, no resolution) is not run. The result keeps every check run, so
the report can give per-field accuracy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sarvlm.annotate.facts import Facts, ObjectGroup
from sarvlm.annotate.parse import ParsedReply
from sarvlm.annotate.templates import PromptTemplate
from sarvlm.annotate.vocabulary import (
    LANDCOVER_CLASSES,
    NUMBER_WORDS,
    canonical,
    category_matcher,
    colour_words,
    positions_in,
)
from sarvlm.core.vocabulary import grid_cell

CHECKS = ("count", "category", "position", "landcover", "size", "colour")
ON_CONFLICT = ("keep", "flag", "drop")
WATER_NONE_MIN_SHARE = 0.10
# Fields that describe land, function or layout rather than targets.
_LAND_FIELDS = {"Terrain", "Functionality", "Layout", "Boundary", "Buildings", "Roads", "geomorphic_class"}
# Surface forms that name a kind of scene as often as an object ("a coastal port"): no category check
# unless counted ("two ports").
_SCENE_WORDS = {"port", "ports"}
_NO_COLOUR_CHECK = {"optical_morphology", "removed_colour_words"}
_NEGATION = re.compile(r"\b(no|not|without|none|absence of|lack of|free of|nor)\b(?:\W+\w+){0,2}\W*$", re.I)
_LENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*(?:-|–|to)?\s*(\d+(?:\.\d+)?)?\s*(?:m|meters|metres|meter|metre)\b", re.I)


@dataclass(frozen=True, slots=True)
class Check:
    """One check of one text of the answer."""

    field: str
    check: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "check": self.check, "ok": self.ok, "detail": self.detail}


@dataclass
class Validation:
    checks: list[Check] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def per_field(self, names: list[str]) -> dict[str, str]:
        """``ok`` / ``conflict`` / ``unchecked`` for each field name."""
        out = {}
        for n in names:
            mine = [c for c in self.checks if c.field == n]
            out[n] = "unchecked" if not mine else ("conflict" if any(not c.ok for c in mine) else "ok")
        return out


def _texts(tpl: PromptTemplate, parsed: ParsedReply) -> list[tuple[str, str]]:
    if tpl.output["kind"] == "dialogue":
        return [(f"turn{i + 1}", t["answer"]) for i, t in enumerate(parsed.turns)]
    return [(k, v) for k, v in parsed.fields.items() if isinstance(v, str)]


def _number_before(text: str, start: int) -> int | None:
    clause = re.split(r"[;:,.()\n]", text[:start])[-1]  # a number never counts across punctuation
    words = re.findall(r"[\w']+", clause.lower())[-3:]
    if not words:
        return None
    for back in (1, 2):  # "three ships", "three large ships"
        if len(words) < back:
            break
        w = words[-back]
        if w.isdigit():
            return int(w)
        if w in NUMBER_WORDS and w != "a":
            return NUMBER_WORDS[w]
        if back == 1 and (w in ("and", "or", "of", "the", "with", "in", "on", "at") or canonical(w) != w):
            break  # a link word or another category name: no count for this one
    return None


def _mentions(text: str) -> list[tuple[str, int, int]]:
    """(canonical name, start, end) of every category / land-cover mention in ``text``."""
    rx, pairs = category_matcher(None)
    low = text.lower()
    return [(canonical(pairs[m.group(0)]), m.start(), m.end()) for m in rx.finditer(low)]


def _loosely_at(centres: list[list[float]], region: str, width: int, height: int) -> bool:
    for cx, cy in centres:
        if region == "center" and grid_cell(cx, cy, width, height) == 5:
            return True
        if (
            (region == "left" and cx < width / 2)
            or (region == "right" and cx > width / 2)
            or (region == "top" and cy < height / 2)
            or (region == "bottom" and cy > height / 2)
        ):
            return True
    return False


def _negated(text: str, start: int) -> bool:
    return bool(_NEGATION.search(text[max(0, start - 40) : start]))


def _check_text(name: str, text: str, facts: Facts, scoped: list[ObjectGroup], out: list[Check]) -> None:
    by_cat = {g.category: g for g in facts.objects}
    is_land_field = name in _LAND_FIELDS
    if name not in _NO_COLOUR_CHECK:
        cw = colour_words(text)
        if cw:
            out.append(Check(name, "colour", False, f"colour words in a SAR text: {', '.join(sorted(set(cw)))}"))
    mentions = _mentions(text)
    object_mentions = [(c, s, e) for c, s, e in mentions if c not in LANDCOVER_CLASSES]
    land_mentions = [(c, s, e) for c, s, e in mentions if c in LANDCOVER_CLASSES]
    if not is_land_field:
        for cat, s, e in object_mentions:
            n = _number_before(text, s)
            have = by_cat[cat].count if cat in by_cat else 0
            if n is not None:
                out.append(Check(name, "count", n == have, f"says {n} {cat}, annotations have {have}"))
            elif cat not in by_cat and not _negated(text, s) and text[s:e].lower() not in _SCENE_WORDS:
                out.append(Check(name, "category", False, f"names {cat}, which is not annotated in this image"))
            elif cat in by_cat:
                out.append(Check(name, "category", True, f"{cat} is annotated"))
        if name == "Count" and not object_mentions and scoped:
            n = _number_before(text + " x", len(text) + 1)
            if n is None:
                m = re.search(r"\d+", text)
                n = int(m.group(0)) if m else None
            total = sum(g.count for g in scoped)
            if n is not None:
                out.append(Check(name, "count", n == total, f"says {n} targets, annotations have {total}"))
        _check_positions(name, text, facts, scoped, object_mentions, out)
    if facts.landcover is not None:
        for lc, s, _ in land_mentions:
            if _negated(text, s):
                continue
            present = lc in facts.landcover
            out.append(
                Check(
                    name,
                    "landcover",
                    present,
                    f"{lc} " + ("is in the land cover" if present else "is not in the land cover"),
                )
            )
        if name == "Water" and re.match(r"^\s*(none|no\b|there is no)", text, re.I):
            share = facts.landcover.get("water", 0.0)
            ok = share < WATER_NONE_MIN_SHARE
            out.append(Check(name, "landcover", ok, f"says no water, water covers {100 * share:.0f}%"))
    if name == "Size" and scoped:
        lengths = [g.length_m for g in scoped if g.length_m]
        if lengths:
            lo = min(x[0] for x in lengths) / 2
            hi = max(x[1] for x in lengths) * 2
            for m in _LENGTH.finditer(text):
                if re.match(r"\s*(resolution|pixel|spacing)", text[m.end() :], re.I):
                    continue  # "at 2 m resolution" is the sensor, not a target
                vals = [float(v) for v in m.groups() if v]
                ok = all(lo <= v <= hi for v in vals)
                out.append(Check(name, "size", ok, f"says {m.group(0).strip()}, boxes allow {lo:.0f}-{hi:.0f} m"))


def _check_positions(
    name: str,
    text: str,
    facts: Facts,
    scoped: list[ObjectGroup],
    object_mentions: list[tuple[str, int, int]],
    out: list[Check],
) -> None:
    by_cat = {g.category: g for g in facts.objects}
    # Clauses: a position belongs to the category named in the same clause.
    for clause in re.split(r"[;.\n]", text):
        cats = [c for c, _, _ in _mentions(clause) if c in by_cat]
        positions = positions_in(clause)
        if not positions:
            continue
        if cats:
            groups = [by_cat[c] for c in dict.fromkeys(cats)]
        elif name == "Location" and scoped:
            groups = scoped
        else:
            continue
        centres = [c for g in groups for c in g.centres]
        who = "/".join(g.category for g in groups)
        for p in positions:
            ok = _loosely_at(centres, p, facts.width, facts.height)
            out.append(
                Check(name, "position", ok, f"{who} {p}: " + ("an object lies there" if ok else "none lies there"))
            )


def validate_reply(tpl: PromptTemplate, facts: Facts, parsed: ParsedReply) -> Validation:
    """Every applicable check of every text of a parsed reply (see the module docstring)."""
    scoped = tpl.relevant_objects(facts)
    checks: list[Check] = []
    for name, text in _texts(tpl, parsed):
        _check_text(name, text, facts, scoped, checks)
    return Validation(checks)
