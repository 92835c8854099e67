"""How synthetic captions name target categories and counts ("three ships", "one oil tank").

Shared by the synthetic world's template captions (:mod:`sarvlm.synth.captions`) and the
FUSAR-GEOVL 8-field captions (:mod:`sarvlm.tasks.geovl`), which the builder also writes.
"""

from __future__ import annotations

from sarvlm.core.vocabulary import number_word

# Order in which categories are listed in a caption.
CATEGORY_ORDER = ("harbor", "ship", "bridge", "aircraft", "oil_tank", "car")
SINGULAR = {
    "harbor": "harbor",
    "ship": "ship",
    "bridge": "bridge",
    "aircraft": "aircraft",
    "oil_tank": "oil tank",
    "car": "vehicle",
}
PLURAL = {
    "harbor": "harbors",
    "ship": "ships",
    "bridge": "bridges",
    "aircraft": "aircraft",
    "oil_tank": "oil tanks",
    "car": "vehicles",
}


def count_phrase(category: str, n: int) -> str:
    """``("ship", 3)`` -> ``"three ships"``."""
    return f"{number_word(n)} {SINGULAR[category] if n == 1 else PLURAL[category]}"
