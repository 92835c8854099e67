"""Contrast enhancement as in SARLANG-1M: a logarithmic transform, then a linear percentile stretch."""

from __future__ import annotations

import numpy as np

from sarvlm.core.errors import InputError

# Percentiles of images larger than this are estimated on a fixed strided subsample (deterministic).
_MAX_PERCENTILE_SAMPLES = 1 << 22


def finite_values(image: np.ndarray, nodata: float | None = None) -> np.ndarray:
    """The finite, non-nodata values of ``image`` (a strided subsample of very large images)."""
    flat = np.asarray(image).reshape(-1)
    stride = max(1, flat.size // _MAX_PERCENTILE_SAMPLES)
    sample = flat[::stride]
    ok = np.isfinite(sample)
    if nodata is not None:
        ok &= sample != nodata
    return sample[ok]


def percentile_range(
    image: np.ndarray, low: float = 2.0, high: float = 98.0, nodata: float | None = None, where: str = "image"
) -> tuple[float, float]:
    """``(value at low percentile, value at high percentile)`` over valid pixels."""
    if not 0 <= low < high <= 100:
        raise InputError(f"percentiles: need 0 <= low < high <= 100, got {low}, {high}")
    values = finite_values(image, nodata)
    if values.size == 0:
        raise InputError(f"{where}: all pixels are NaN, infinite or no-data")
    lo, hi = np.percentile(values, [low, high])
    return float(lo), float(hi)


def log_transform(intensity: np.ndarray) -> np.ndarray:
    """``10 log10(x)`` for positive pixels; zero/negative pixels become NaN (no log exists)."""
    x = np.asarray(intensity, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.float32(10.0) * np.log10(x)
    out[~(x > 0)] = np.nan
    return out


def stretch(
    image: np.ndarray,
    low: float = 2.0,
    high: float = 98.0,
    log: bool = True,
    nodata: float | None = None,
    where: str = "image",
) -> np.ndarray:
    """Log transform (optional) then linear stretch of the ``low``..``high`` percentiles to 0..1.

    Values beyond the percentiles are clipped; NaN/no-data pixels stay NaN. Works on ``(H, W)`` or
    ``(bands, H, W)`` (each band stretched on its own). Returns float32.
    """
    arr = np.asarray(image)
    if arr.ndim == 3:
        return np.stack([stretch(b, low, high, log, nodata, where) for b in arr])
    x = arr.astype(np.float32)
    invalid = ~np.isfinite(x)
    if nodata is not None:
        invalid |= x == nodata
    if log:
        x = log_transform(np.where(invalid, np.nan, x))
    else:
        x = np.where(invalid, np.nan, x)
    lo, hi = percentile_range(x, low, high, where=where)
    scale = np.float32(1.0 / (hi - lo)) if hi > lo else np.float32(0.0)
    out = (x - np.float32(lo)) * scale
    np.clip(out, 0.0, 1.0, out=out)
    return out
