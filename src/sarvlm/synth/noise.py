"""Smooth random fields: the building block of coastlines, patches and textures."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _bspline_taps(n_out: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    """For each output pixel, its 4 coarse-node indices and cubic B-spline weights.

    Node j sits at pixel ``(j - 1) * step``, so every pixel has nodes on both sides.
    """
    pos = (np.arange(n_out) + 0.5) / step + 1.0
    j = np.floor(pos).astype(np.int64)
    t = (pos - j)[:, None]
    w = np.concatenate([(1 - t) ** 3, 3 * t**3 - 6 * t**2 + 4, -3 * t**3 + 3 * t**2 + 3 * t + 1, t**3], axis=1) / 6.0
    idx = j[:, None] + np.arange(-1, 3)[None, :]
    return idx, w.astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """A zero-mean, unit-std random field with features about ``scale_px`` pixels across.

    White noise on a coarse grid (one node per ``scale_px / 2`` pixels) interpolated with a
    separable cubic B-spline (4 taps per axis, no BLAS: small matrix products contend badly for
    threads on a shared machine). Fine textures (under 8 px) blur white noise instead.
    """
    h, w = shape
    step = max(scale_px / 2.0, 1.0)
    if step < 4.0:
        field = ndimage.gaussian_filter(rng.standard_normal((h, w), dtype=np.float32), sigma=0.6 * step, truncate=3.0)
    else:
        coarse = rng.standard_normal((int(np.ceil(h / step)) + 4, int(np.ceil(w / step)) + 4), dtype=np.float32)
        ri, rw = _bspline_taps(h, step)
        ci, cw = _bspline_taps(w, step)
        rows = sum(rw[:, k : k + 1] * coarse[ri[:, k]] for k in range(4))  # (h, cw)
        field = sum(cw[:, k] * rows[:, ci[:, k]] for k in range(4))  # (h, w)
    field = field - field.mean()
    std = field.std()
    return (field / (std if std > 0 else 1.0)).astype(np.float32)
