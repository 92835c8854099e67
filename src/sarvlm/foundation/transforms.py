"""SAR image -> model input: one channel, dB window, square resize.

SAR intensity is single-channel and spans decades, so float images (linear intensity, as the
synthetic world and calibrated products store them) are shown in dB and clipped to a fixed
window (``config.db_window``, default [-30, 10] dB) -- a fixed window keeps absolute
radiometry (dark water stays dark), which a per-image stretch would throw away. 8/16-bit
images (already quantised products such as FUSAR-GEOVL's uint8 chips) are scaled by their
type's range. Multi-band images use band 1 (the co-pol channel). The result is resized to
``image_size`` (area averaging, which also averages speckle) and mapped to [-1, 1].
With ``num_channels == 3`` (an RGB-pretrained patch embedding kept as is) the channel is repeated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sarvlm.core.errors import InputError


def sar_to_unit(raw: np.ndarray, db_window: tuple[float, float] = (-30.0, 10.0)) -> np.ndarray:
    """One band ``(H, W)`` -> float32 in [0, 1] (dB window for floats, type range for integers)."""
    if np.issubdtype(raw.dtype, np.floating):
        img = raw.astype(np.float64)
        img = np.where(np.isfinite(img), img, 0.0)
        db = 10.0 * np.log10(np.maximum(img, 1e-10))
        lo, hi = db_window
        return np.clip((db - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    if np.issubdtype(raw.dtype, np.integer):
        top = float(np.iinfo(raw.dtype).max)
        return np.clip(raw.astype(np.float32) / top, 0.0, 1.0)
    raise InputError(f"unsupported pixel type {raw.dtype}")


def to_model_input(unit: np.ndarray, image_size: int, num_channels: int = 1) -> torch.Tensor:
    """``(H, W)`` in [0, 1] -> ``(num_channels, image_size, image_size)`` in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))[None, None]
    if t.shape[-2:] != (image_size, image_size):
        t = F.interpolate(t, size=(image_size, image_size), mode="area")
    t = t[0] * 2.0 - 1.0
    return t.expand(num_channels, -1, -1).contiguous()


def load_sar_image(
    path: str | Path, image_size: int, num_channels: int = 1, db_window: tuple[float, float] = (-30.0, 10.0)
) -> torch.Tensor:
    """Read band 1 of ``path`` and return ``(num_channels, image_size, image_size)`` float32 in [-1, 1].

    Unreadable files raise a one-line error naming the file.
    """
    from sarvlm.io.raster import read_raster

    raw = read_raster(path, bands=1)[0]
    if raw.size == 0:
        raise InputError(f"{path}: empty image")
    try:
        unit = sar_to_unit(raw, db_window)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    return to_model_input(unit, image_size, num_channels)
