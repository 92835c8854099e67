"""Robust reading of free-text model answers into the structured answer types.

The readers (``parse_count``, ``parse_boxes``, ...) and the per-task parsers built on them
(``count_answer``, ``category_answer``, ...) that the task families register. Text that cannot be
read yields ``None`` ("no answer"), which the report counts separately. Category words are read
through :mod:`sarvlm.core.vocabulary`. Parsed types match the builder's structured answers
(see docs/evaluation.md):

count -> int; grid -> sorted list[int] (cells 1-9); detect -> list of [x1, y1, x2, y2]
original pixels; identify -> "yes"/"no"; position -> left/right/top/bottom/center;
classify_box/landform_main/landform_region/refer/classify(main) -> canonical category str;
landform_all/classify(all) -> sorted list[str]; caption -> str; dialogue -> list[str].
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable

from sarvlm.core.vocabulary import (
    ANSWER_SYNONYMS,
    CARDINALS,
    COUNT_PHRASES,
    ORDINALS,
    POSITION_WORDS,
    answer_key,
    surface_forms,
)
from sarvlm.tasks.spec import AnswerContext

NUMBER_WORDS: dict[str, int] = {**CARDINALS, **COUNT_PHRASES}
_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_INT_RE = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?!\w)")
_TENS = r"(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
_UNITS = r"(?:one|two|three|four|five|six|seven|eight|nine)"
_COMPOUND = re.compile(rf"\b({_TENS})[\s-]({_UNITS})\b")
_WORD_NUMBER = re.compile(
    r"\b(" + "|".join(sorted((re.escape(w) for w in NUMBER_WORDS), key=len, reverse=True)) + r")\b"
)
_GEOCHAT = re.compile(rf"\{{?\s*<\s*({_NUM})\s*>\s*<\s*({_NUM})\s*>\s*<\s*({_NUM})\s*>\s*<\s*({_NUM})\s*>")
_BRACKET4 = re.compile(rf"[\[(]\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*[\])]")
_LOOSE4 = re.compile(rf"({_NUM})\s*[, ]\s*({_NUM})\s*[, ]\s*({_NUM})\s*[, ]\s*({_NUM})")
_YES = re.compile(r"\b(yes|yeah|yep|true|correct|present|there (?:is|are))\b")
_NO = re.compile(
    r"\b(no|not|none|false|absent|there (?:is|are) no|cannot see|no [a-z]+ (?:is|are) (?:visible|present))\b"
)


def _lower(text: str) -> str:
    return " ".join(text.lower().replace("\u2019", "'").split())


def _strip_think(text: str) -> str:
    # Reasoning models wrap deliberation in <think>..</think>; the answer follows it.
    return re.sub(r"<think>.*?</think>", " ", text, flags=re.S)


def parse_count(text: str) -> int | None:
    """The first count stated: digits ("12", "1,200") or number words ("twenty-one", "no ships")."""
    t = _lower(_strip_think(text))
    candidates: list[tuple[int, int]] = []  # (position, value)
    for m in _INT_RE.finditer(t):
        s = m.group(0).replace(",", "")
        try:
            v = float(s)
        except ValueError:
            continue
        if not math.isfinite(v) or v < 0 or v != int(v) or v > 1e9:
            continue
        candidates.append((m.start(), int(v)))
    for m in _COMPOUND.finditer(t):
        candidates.append((m.start(), NUMBER_WORDS[m.group(1)] + NUMBER_WORDS[m.group(2)]))
    compound_spans = [(m.start(), m.end()) for m in _COMPOUND.finditer(t)]
    for m in _WORD_NUMBER.finditer(t):
        if any(a <= m.start() < b for a, b in compound_spans):
            continue
        w = m.group(1)
        if w == "no" and not re.match(r"no\s+(?!\d)[a-z]", t[m.start() :]):
            continue  # a bare "no" is an answer to a yes/no question, not a count
        candidates.append((m.start(), NUMBER_WORDS[w]))
    if not candidates:
        return None
    return min(candidates)[1]


def parse_grid(text: str) -> list[int] | None:
    """Grid cells 1-9 mentioned in the answer ("cells 2 and 5", "[1, 4]", "the fifth cell"), sorted;
    ``[]`` for "none"/"no targets"."""
    t = _lower(_strip_think(text))
    cells = {int(d) for d in re.findall(r"(?<![\w.])([1-9])(?!\w|\.\d)", t)}
    for w, v in ORDINALS.items():
        if re.search(rf"\b{w}\b", t):
            cells.add(v)
    for w in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine"):
        if re.search(rf"\b(?:cell|grid|region|block|square)s?\s+{w}\b", t):
            cells.add(NUMBER_WORDS[w])
    if cells:
        return sorted(cells)
    # "none" is the builder's text for an image without targets: an empty answer, not no answer.
    return [] if re.search(r"\b(none|no|nothing|empty|zero)\b", t) else None


def parse_yes_no(text: str) -> str | None:
    """ "yes"/"no" from the first decisive word."""
    t = _lower(_strip_think(text))
    y, n = _YES.search(t), _NO.search(t)
    if y and (not n or y.start() < n.start()):
        return "yes"
    if n:
        return "no"
    return None


def parse_position(text: str) -> str | None:
    t = _lower(_strip_think(text))
    best: tuple[int, str] | None = None
    for w, canon in POSITION_WORDS.items():
        m = re.search(rf"\b{w}\b", t)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), canon)
    return best[1] if best else None


@functools.lru_cache(maxsize=256)
def _category_matcher(categories: tuple[str, ...] | None) -> tuple[re.Pattern[str], dict[str, str]]:
    """One regex over every surface form (longest first, so "oil tank" beats "tank") and surface -> category."""
    pairs: dict[str, str] = {}
    for cat in categories if categories is not None else tuple(ANSWER_SYNONYMS):
        c = _lower(str(cat))
        pairs.setdefault(c, str(cat))
        pairs.setdefault(c[:-1] if c.endswith("s") and len(c) > 3 else c + "s", str(cat))
        for syn in surface_forms(c):
            pairs.setdefault(syn, str(cat))
    if categories is None:
        pairs = {k: answer_key(v) for k, v in pairs.items()}
    surfaces = sorted(pairs, key=lambda k: (-len(k), k))
    rx = re.compile(r"(?<![a-z])(?:" + "|".join(re.escape(x) for x in surfaces) + r")(?![a-z])")
    return rx, pairs


def parse_categories(text: str, categories: Iterable[str] | None = None) -> list[str]:
    """Categories mentioned in ``text`` in order of appearance (canonical names, no duplicates)."""
    rx, pairs = _category_matcher(tuple(categories) if categories is not None else None)
    out: list[str] = []
    for m in rx.finditer(_lower(_strip_think(text))):
        c = pairs[m.group(0)]
        if c not in out:
            out.append(c)
    return out


def parse_category(text: str, categories: Iterable[str] | None = None) -> str | None:
    cats = parse_categories(text, categories)
    if cats:
        return cats[0]
    if categories is None:
        t = _lower(_strip_think(text)).strip(" .!")
        return t if t and len(t.split()) <= 3 else None
    return None


def parse_boxes(
    text: str, coords: str | None = None, width: int | None = None, height: int | None = None
) -> list[list[float]] | None:
    """Boxes in the text mapped to original pixels ``[x1, y1, x2, y2]``.

    Recognised: JSON ``{"bbox_2d": [..]}`` / ``[x1, y1, x2, y2]`` lists, ``(x1,y1),(x2,y2)``,
    GeoChat ``{<x1><y1><x2><y2>}`` (0-100), Qwen ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``.
    ``coords`` names the convention the model was asked to use (``sarvlm.core.coords``);
    GeoChat braces imply ``geochat``; without a convention all-in-[0, 1] boxes are read as
    ``norm``, otherwise as original pixels. An answer that says there is nothing yields ``[]``.
    """
    from sarvlm.core.coords import from_model_coords

    t = _strip_think(text)
    raw: list[tuple[list[float], str | None]] = []
    for m in _GEOCHAT.finditer(t):
        raw.append(([float(g) for g in m.groups()], "geochat"))
    t2 = _GEOCHAT.sub(" ", t)
    t2 = re.sub(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,?\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)", r"[\1,\2,\3,\4]", t2)
    for m in _BRACKET4.finditer(t2):
        raw.append(([float(g) for g in m.groups()], None))
    if not raw:
        for m in _LOOSE4.finditer(t2):
            raw.append(([float(g) for g in m.groups()], None))
    if not raw:
        low = _lower(t)
        if re.search(r"\b(no|none|not any|nothing|zero|0)\b", low) or low.strip(" .[]") == "":
            return []
        return None
    boxes: list[list[float]] = []
    for vals, implied in raw:
        if not all(math.isfinite(v) for v in vals):
            continue
        conv = implied or coords
        if conv is None:
            conv = "norm" if all(0.0 <= v <= 1.0 for v in vals) and any(v != int(v) for v in vals) else "pixel"
        if conv != "pixel":
            if not width or not height:
                continue
            try:
                vals = from_model_coords(vals, conv, width, height)
            except Exception:  # noqa: BLE001 - unknown convention or bad size: skip this box
                continue
        x1, y1, x2, y2 = vals
        x1, x2 = min(x1, x2), max(x1, x2)
        y1, y2 = min(y1, y2), max(y1, y2)
        if width and height:
            x1, x2 = min(max(x1, 0.0), float(width)), min(max(x2, 0.0), float(width))
            y1, y2 = min(max(y1, 0.0), float(height)), min(max(y2, 0.0), float(height))
        boxes.append([x1, y1, x2, y2])
    return boxes


# --- task parsers: (text, AnswerContext) -> structured answer | None -------------------------------
# Registered on the tasks in sarvlm.tasks.<family>; sarvlm.tasks.registry.parse_prediction calls them
# and turns any exception into None.


def count_answer(text: str, ctx: AnswerContext) -> int | None:
    return parse_count(text)


def grid_answer(text: str, ctx: AnswerContext) -> list[int] | None:
    return parse_grid(text)


def boxes_answer(text: str, ctx: AnswerContext) -> list[list[float]] | None:
    return parse_boxes(text, ctx.coords, ctx.width, ctx.height)


def yes_no_answer(text: str, ctx: AnswerContext) -> str | None:
    return parse_yes_no(text)


def position_answer(text: str, ctx: AnswerContext) -> str | None:
    return parse_position(text)


def category_answer(text: str, ctx: AnswerContext) -> str | None:
    return parse_category(text, ctx.categories)


def category_list_answer(text: str, ctx: AnswerContext) -> list[str] | None:
    cats = parse_categories(text, ctx.categories)
    return sorted(cats) if cats else None


def classify_answer(text: str, ctx: AnswerContext) -> str | list[str] | None:
    """SARLANG-1M classification: the main category, or every category (``params.mode == "all"``)."""
    if ctx.params.get("mode") == "all":
        return category_list_answer(text, ctx)
    return category_answer(text, ctx)


def text_answer(text: str, ctx: AnswerContext) -> str | None:
    """Free text (captions, open VQA): the text without reasoning blocks; None when empty."""
    t = _strip_think(text).strip()
    return t or None


def turns_answer(text: str, ctx: AnswerContext) -> list[str] | None:
    """Dialogue: the answer split into turns at blank lines or ``assistant:``/``answer:`` prefixes."""
    turns = [s.strip() for s in re.split(r"\n\s*\n|\n(?=(?:assistant|answer)\s*:)", _strip_think(text)) if s.strip()]
    return turns or None
