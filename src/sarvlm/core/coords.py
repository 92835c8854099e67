"""Box coordinate conventions of vision-language models, converted both ways.

- ``pixel``: pixels of the original image.
- ``qwen2.5``: absolute pixels of the image after Qwen2.5-VL's ``smart_resize``
  (sides rounded to multiples of 28 within ``min_pixels``/``max_pixels``).
- ``qwen3`` / ``qwen2``: relative integers in 0..1000.
- ``norm``: relative floats in [0, 1].
- ``geochat``: relative integers in 0..100 (GeoChat-style ``{<x1><y1><x2><y2>}``).

Structured answers always keep original pixels; only text uses these conventions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from sarvlm.core.errors import InputError, SarvlmError

CONVENTIONS = ("qwen2.5", "qwen3", "qwen2", "norm", "pixel", "geochat")
# Qwen2.5-VL processor defaults.
QWEN_FACTOR = 28
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 1280


@functools.lru_cache(maxsize=4096)  # builders convert many boxes of few image sizes
def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """Qwen2-VL/Qwen2.5-VL's resize rule: (height, width) the processor feeds the vision tower.

    The arithmetic of ``transformers.models.qwen2_vl.image_processing_pil_qwen2_vl.smart_resize``
    restated (importing it costs ~7 s of CPU for a few lines of integer arithmetic; a test checks
    both agree on a grid of sizes): round each side to a multiple of ``factor``, then scale both
    down (floor) or up (ceil) by the same factor into ``[min_pixels, max_pixels]``.
    """
    if min(height, width) <= 0:
        raise SarvlmError(f"smart_resize: image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise SarvlmError(
            f"smart_resize: absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return int(h_bar), int(w_bar)


def _scale(convention: str, width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[float, float]:
    """Units per original pixel along x and y for a convention."""
    if convention not in CONVENTIONS:
        raise InputError(f"unknown box coordinate convention {convention!r} (expected one of {', '.join(CONVENTIONS)})")
    if convention == "pixel":
        return 1.0, 1.0
    if convention == "qwen2.5":
        rh, rw = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
        return rw / width, rh / height
    if convention in ("qwen3", "qwen2"):
        return 1000.0 / width, 1000.0 / height
    if convention == "geochat":
        return 100.0 / width, 100.0 / height
    return 1.0 / width, 1.0 / height  # norm


def to_model_coords(
    box: Sequence[float],
    convention: str,
    width: int,
    height: int,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> list[float] | list[int]:
    """Original-pixel ``[x1, y1, x2, y2]`` -> the convention's numbers (integers except for ``norm``)."""
    sx, sy = _scale(convention, width, height, min_pixels, max_pixels)
    out = [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]
    if convention == "norm":
        return [round(v, 4) for v in out]
    if convention == "pixel":
        return [int(round(v)) for v in out]
    top = {"qwen3": 1000, "qwen2": 1000, "geochat": 100}.get(convention)
    ints = [int(round(v)) for v in out]
    if top is not None:
        ints = [min(max(v, 0), top) for v in ints]
    return ints


def from_model_coords(
    box: Sequence[float],
    convention: str,
    width: int,
    height: int,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> list[float]:
    """The convention's numbers -> original-pixel ``[x1, y1, x2, y2]`` (floats)."""
    sx, sy = _scale(convention, width, height, min_pixels, max_pixels)
    vals = [float(v) for v in box]
    if not all(math.isfinite(v) for v in vals):
        raise ValueError("non-finite coordinate")
    return [vals[0] / sx, vals[1] / sy, vals[2] / sx, vals[3] / sy]
