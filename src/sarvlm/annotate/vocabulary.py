"""The project's vocabulary as annotation needs it: one adapter, so switching sources is one line.

Category and land-cover names, their synonyms, number words and position words come from the
answer parser of evaluation (:mod:`sarvlm.eval.parsing`) and the colour words from instruction-data
quality control (:mod:`sarvlm.data.quality`), so annotation checks a reply exactly the way evaluation
reads a model's answer and quality control reads a caption. When ``sarvlm.core.vocabulary`` lands,
only the imports below change.
"""

from __future__ import annotations

import re

from sarvlm.data.quality import _COLOUR_RE as COLOUR_RE
from sarvlm.data.quality import colour_words
from sarvlm.data.tasks.base import plural
from sarvlm.eval import parsing as _parsing

LANDCOVER_CLASSES = ("water", "urban", "farmland", "grassland", "forest", "bare", "runway")
# Relational words ("above", "below") say where a thing is relative to another, not in the image.
POSITION_WORDS: dict[str, str] = {
    k: v for k, v in _parsing._POSITION_WORDS.items() if k not in ("up", "down", "above", "below")
}
NUMBER_WORDS: dict[str, int] = dict(_parsing.NUMBER_WORDS)

__all__ = [
    "COLOUR_RE",
    "LANDCOVER_CLASSES",
    "NUMBER_WORDS",
    "POSITION_WORDS",
    "canonical",
    "colour_words",
    "mentioned",
    "parse_count",
    "plural",
    "positions_in",
]


def canonical(name: str) -> str:
    """Canonical name of a category or land cover (``oil_tank`` -> ``oil tank``, ``vessel`` -> ``ship``)."""
    return _parsing.canonical_category(str(name).replace("_", " "))


def mentioned(text: str, names: tuple[str, ...] | None = None) -> list[str]:
    """Canonical categories / land covers named in ``text`` (all known ones when ``names`` is None)."""
    if names is None:
        return _parsing.parse_categories(text, None)
    return [canonical(n) for n in _parsing.parse_categories(text, tuple(names))]


def parse_count(text: str) -> int | None:
    """The first count stated in ``text`` (digits or number words), None when there is none."""
    return _parsing.parse_count(text)


_POSITION_RE = re.compile(r"\b(" + "|".join(sorted(POSITION_WORDS, key=len, reverse=True)) + r")\b", re.I)


def positions_in(text: str) -> list[str]:
    """Canonical positions (left/right/top/bottom/center) named in ``text``, in order, no repeats."""
    out: list[str] = []
    for m in _POSITION_RE.finditer(text):
        p = POSITION_WORDS[m.group(1).lower()]
        if p not in out:
            out.append(p)
    return out
