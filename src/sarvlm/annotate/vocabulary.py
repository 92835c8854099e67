"""The project's vocabulary as annotation needs it: one adapter, so switching sources is one line.

Category and land-cover names and their synonyms, number words and position words come from
:mod:`sarvlm.core.vocabulary` through the answer readers of :mod:`sarvlm.tasks.parsing`, and the colour
words from instruction-data quality control (:mod:`sarvlm.data.quality`), so annotation checks a reply
exactly the way evaluation reads a model's answer and quality control reads a caption.
"""

from __future__ import annotations

import re

from sarvlm.core import vocabulary as _vocabulary
from sarvlm.data.quality import _COLOUR_RE as COLOUR_RE
from sarvlm.data.quality import colour_words
from sarvlm.tasks import parsing as _parsing
from sarvlm.tasks.base import plural

LANDCOVER_CLASSES = (*_vocabulary.LANDCOVERS, "runway")
# Relational words ("above", "below") say where a thing is relative to another, not in the image.
POSITION_WORDS: dict[str, str] = {
    k: v for k, v in _vocabulary.POSITION_WORDS.items() if k not in ("up", "down", "above", "below")
}
NUMBER_WORDS: dict[str, int] = dict(_parsing.NUMBER_WORDS)
category_matcher = _parsing._category_matcher

__all__ = [
    "COLOUR_RE",
    "LANDCOVER_CLASSES",
    "NUMBER_WORDS",
    "POSITION_WORDS",
    "canonical",
    "category_matcher",
    "colour_words",
    "mentioned",
    "parse_count",
    "plural",
    "positions_in",
]


def canonical(name: str) -> str:
    """Canonical name of a category or land cover (``oil_tank`` -> ``tank``, ``vessel`` -> ``ship``)."""
    return _vocabulary.answer_key(str(name))


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
