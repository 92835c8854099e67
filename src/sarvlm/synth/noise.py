"""Smooth random fields: the building block of coastlines, patches and textures."""

from __future__ import annotations

import numpy as np


def _bspline_matrix(n_out: int, n_coarse: int, step: float) -> np.ndarray:
    """(n_out, n_coarse) weights of a cubic B-spline through coarse nodes spaced ``step`` pixels.

    Node j sits at pixel ``(j - 1) * step``; each output pixel mixes its 4 nearest nodes.
    """
    pos = (np.arange(n_out) + 0.5) / step + 1.0  # position in node units
    t = np.abs(pos[:, None] - np.arange(n_coarse)[None, :])
    w = np.where(t < 1, (4 - 6 * t**2 + 3 * t**3) / 6, np.where(t < 2, (2 - t) ** 3 / 6, 0.0))
    return w


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """A zero-mean, unit-std random field with features about ``scale_px`` pixels across.

    White noise on a coarse grid (one node per ``scale_px / 2`` pixels) smoothed by a separable
    cubic B-spline: two small matrix products, far cheaper than a large Gaussian blur.
    """
    h, w = shape
    step = max(scale_px / 2.0, 1.0)
    ch = int(np.ceil(h / step)) + 3
    cw = int(np.ceil(w / step)) + 3
    coarse = rng.standard_normal((ch, cw))
    field = _bspline_matrix(h, ch, step) @ coarse @ _bspline_matrix(w, cw, step).T
    field -= field.mean()
    std = field.std()
    return (field / (std if std > 0 else 1.0)).astype(np.float32)
