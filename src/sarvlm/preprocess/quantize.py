"""Dynamic range compression and threshold quantisation of 16/32-bit SAR to uint8 (FUSAR-KLIP,
following SARDet-CL): optional log compression, clip at percentile thresholds (or given limits),
linear map to 0..255. NaN, infinite and no-data pixels are handled explicitly: they become 0 and
are left out of the thresholds.
"""

from __future__ import annotations

import numpy as np

from sarvlm.core.errors import InputError
from sarvlm.preprocess.contrast import log_transform, percentile_range


def quantize_uint8(
    image: np.ndarray,
    low: float = 0.5,
    high: float = 99.5,
    *,
    log: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    nodata: float | None = None,
    where: str = "image",
) -> np.ndarray:
    """Quantise ``(H, W)`` or ``(bands, H, W)`` to uint8.

    Args:
        image: float or integer pixels (e.g. linear intensity, dB, or a 0..1 stretched image).
        low, high: percentile thresholds (of valid pixels) mapped to 0 and 255; ignored when
            ``vmin``/``vmax`` are given.
        log: compress the dynamic range with ``10 log10`` first (for linear intensity/amplitude).
        vmin, vmax: fixed thresholds instead of percentiles (e.g. ``0, 1`` after :func:`stretch`).
        nodata: a value meaning "no data" (besides NaN/inf).
        where: name used in error messages (file or record id).
    """
    arr = np.asarray(image)
    if arr.ndim == 3:
        return np.stack(
            [quantize_uint8(b, low, high, log=log, vmin=vmin, vmax=vmax, nodata=nodata, where=where) for b in arr]
        )
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(
            f"{where}: quantize_uint8 takes a non-empty (H, W) or (bands, H, W) array, got shape {arr.shape}"
        )
    if np.iscomplexobj(arr):
        raise InputError(f"{where}: complex pixels: convert to intensity or amplitude first")
    x = arr.astype(np.float32)
    invalid = ~np.isfinite(x)
    if nodata is not None:
        invalid |= arr == nodata
    if log:
        invalid |= ~(x > 0)
        x = log_transform(np.where(invalid, np.float32(1.0), x))
    if invalid.all():
        raise InputError(f"{where}: all pixels are NaN, infinite or no-data")
    if vmin is None or vmax is None:
        lo, hi = percentile_range(np.where(invalid, np.nan, x), low, high, where=where)
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    if not vmax > vmin:
        # a constant image: everything valid maps to mid-grey rather than dividing by zero
        out = np.full(x.shape, 128, np.uint8)
    else:
        scaled = (x - np.float32(vmin)) * np.float32(255.0 / (vmax - vmin))
        np.clip(scaled, 0.0, 255.0, out=scaled)
        out = np.rint(np.nan_to_num(scaled, nan=0.0)).astype(np.uint8)
    out[invalid] = 0
    return out
