"""Polarisation channels: pick one by name, or build the dual-pol 3-channel composite.

Band names come from the sample record's ``polarizations`` (one per band, in band order) or from
the raster's band descriptions. Names are HH, HV, VH, VV (case-insensitive).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sarvlm.core.errors import InputError
from sarvlm.core.record import normalize_polarization

# Co-pol / cross-pol pairs of dual-pol products (Sentinel-1 VV+VH, HH+HV).
DUAL_PAIRS = (("VV", "VH"), ("HH", "HV"))


def _band_index(available: Sequence[str], pol: str, where: str) -> int:
    names = [str(a).strip().upper() for a in available]
    if pol not in names:
        have = ", ".join(names) if names else "no named bands"
        raise InputError(f"{where}polarisation {pol} not in the image (it has {have})")
    return names.index(pol)


def select_polarization(bands: np.ndarray, available: Sequence[str], pol: str, where: str = "") -> np.ndarray:
    """The ``(H, W)`` band named ``pol`` from ``(B, H, W)`` ``bands`` whose names are ``available``.

    A single unnamed band is accepted as the requested polarisation (single-pol products).
    """
    pol = normalize_polarization(pol)
    prefix = f"{where}: " if where else ""
    arr = np.asarray(bands)
    if arr.ndim == 2:
        arr = arr[None]
    if not available and arr.shape[0] == 1:
        return arr[0]
    if available and len(available) != arr.shape[0]:
        raise InputError(f"{prefix}{len(available)} polarisation names for {arr.shape[0]} bands")
    return arr[_band_index(available, pol, prefix)]


def dual_pol_composite(
    bands: np.ndarray, available: Sequence[str], co: str | None = None, cross: str | None = None, where: str = ""
) -> np.ndarray:
    """``(3, H, W)`` composite ``[co-pol, cross-pol, mean of both]`` (e.g. VV, VH, (VV+VH)/2).

    ``co``/``cross`` default to the first dual-pol pair present (VV/VH, then HH/HV). Values are used
    as given: pass intensities (or dB, for a dB composite) consistently.
    """
    prefix = f"{where}: " if where else ""
    names = [str(a).strip().upper() for a in available]
    if co is None or cross is None:
        pair = next(((a, b) for a, b in DUAL_PAIRS if a in names and b in names), None)
        if pair is None:
            raise InputError(
                f"{prefix}dual-pol composite needs VV+VH or HH+HV bands (the image has {', '.join(names) or 'no named bands'})"
            )
        co, cross = co or pair[0], cross or pair[1]
    first = select_polarization(bands, available, co, where).astype(np.float32)
    second = select_polarization(bands, available, cross, where).astype(np.float32)
    return np.stack([first, second, (first + second) * np.float32(0.5)])
