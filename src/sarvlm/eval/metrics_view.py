"""Reading a ``metrics.json`` document: the views both the markdown report and the plots need.

Kept apart from :mod:`sarvlm.eval.report` and :mod:`sarvlm.eval.plots` so that neither imports
the other.
"""

from __future__ import annotations

from typing import Any


def iou_thresholds(det: dict[str, Any]) -> list[str]:
    """The IoU-threshold keys of a detection result (``"0.25"``, ...), ascending."""
    out = []
    for k in det:
        try:
            float(k)
        except (TypeError, ValueError):
            continue
        if isinstance(det[k], dict):
            out.append(k)
    return sorted(out, key=float)


def classification_levels(m: dict[str, Any]) -> dict[str, Any]:
    """{level: classification result}; a single-level result is keyed 'all'."""
    if "per_class" in m:
        return {"all": m}
    return {k: v for k, v in m.items() if isinstance(v, dict) and "per_class" in v}
