"""Conversions between SAR pixel quantities: complex, amplitude, intensity (power) and decibels.

Intensity ``I = |z|^2``, amplitude ``A = |z| = sqrt(I)``, decibels ``10 log10(I) = 20 log10(A)``.
Non-finite values stay NaN; non-positive values map to ``-inf`` dB unless a ``floor`` is given.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from sarvlm.core.errors import InputError

Quantity = Literal["complex", "amplitude", "intensity", "db"]
QUANTITIES = ("complex", "amplitude", "intensity", "db")


def _check_kind(kind: str, name: str = "kind") -> str:
    if kind not in QUANTITIES:
        raise InputError(f"{name}: must be one of {', '.join(QUANTITIES)}, got {kind!r}")
    return kind


def to_intensity(values: np.ndarray, kind: Quantity = "amplitude") -> np.ndarray:
    """Linear intensity (float32) from ``complex``, ``amplitude``, ``intensity`` or ``db`` values."""
    _check_kind(kind)
    x = np.asarray(values)
    if kind == "complex" or np.iscomplexobj(x):
        mag = np.abs(x).astype(np.float32)
        return mag * mag
    x = x.astype(np.float32, copy=False)
    if kind == "amplitude":
        return x * x
    if kind == "db":
        return np.power(np.float32(10.0), x / np.float32(10.0))
    return x.copy()


def to_amplitude(values: np.ndarray, kind: Quantity = "intensity") -> np.ndarray:
    """Amplitude ``sqrt(I)`` (float32); negative intensities (calibration noise) become NaN."""
    with np.errstate(invalid="ignore"):
        return np.sqrt(to_intensity(values, kind))


def to_db(values: np.ndarray, kind: Quantity = "intensity", floor: float | None = None) -> np.ndarray:
    """Decibels ``10 log10(I)`` (float32). ``floor`` (linear intensity) clips non-positive values,
    e.g. ``floor=1e-6`` maps zeros to -60 dB instead of ``-inf``."""
    if kind == "db":
        return np.asarray(values, dtype=np.float32).copy()
    intensity = to_intensity(values, kind)
    if floor is not None:
        if not floor > 0:
            raise InputError(f"floor: must be a positive linear intensity, got {floor}")
        intensity = np.maximum(intensity, np.float32(floor))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.float32(10.0) * np.log10(intensity)
    out[np.isnan(intensity) | (intensity < 0)] = np.nan
    return out


def convert(values: np.ndarray, src: Quantity, dst: Quantity) -> np.ndarray:
    """Convert between ``amplitude``, ``intensity`` and ``db`` (``complex`` only as a source)."""
    _check_kind(src, "from")
    _check_kind(dst, "to")
    if dst == "complex":
        raise InputError("to: cannot convert to complex (the phase is not known)")
    if dst == "intensity":
        return to_intensity(values, src)
    if dst == "amplitude":
        return to_amplitude(values, src)
    return to_db(values, src)
