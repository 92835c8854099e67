"""Rasterising object shapes: polygons in pixel coordinates, sampled at pixel centres.

Targets are built from polygons in an object-local frame (metres, ``u`` along the object's
axis, ``v`` across it), placed with a heading and a centre, then rasterised. A pixel belongs
to a polygon when its centre ``(col + 0.5, row + 0.5)`` lies inside, so the box of an object
is exactly the extent of the pixels it paints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.path import Path as MplPath


def rect(u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
    """Axis-aligned rectangle in the local frame, as a (4, 2) array of (u, v)."""
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], dtype=np.float64)


def ellipse(cu: float, cv: float, ru: float, rv: float, n: int = 24) -> np.ndarray:
    """Ellipse centred at (cu, cv) with semi-axes ru, rv, as an n-gon."""
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return np.stack([cu + ru * np.cos(t), cv + rv * np.sin(t)], axis=1)


def annulus_outer_inner(cu: float, cv: float, r_out: float, r_in: float, n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Outer and inner circles of a ring (paint outer, then inner with another value)."""
    return ellipse(cu, cv, r_out, r_out, n), ellipse(cu, cv, r_in, r_in, n)


def place(local: np.ndarray, center_xy: tuple[float, float], heading_rad: float, metres_per_px: float) -> np.ndarray:
    """Local (u, v) metres → image (x, y) pixels: rotate by ``heading`` (0 = +x, clockwise on screen)."""
    c, s = math.cos(heading_rad), math.sin(heading_rad)
    u = local[:, 0] / metres_per_px
    v = local[:, 1] / metres_per_px
    x = center_xy[0] + u * c - v * s
    y = center_xy[1] + u * s + v * c
    return np.stack([x, y], axis=1)


def polygon_mask(poly_xy: np.ndarray, height: int, width: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Pixels whose centres fall inside a polygon, as (mask over its bounding window, (row0, col0)).

    The window is clipped to the image; an empty mask means the polygon covers no pixel centre.
    """
    x0 = max(int(math.floor(poly_xy[:, 0].min())), 0)
    x1 = min(int(math.ceil(poly_xy[:, 0].max())), width)
    y0 = max(int(math.floor(poly_xy[:, 1].min())), 0)
    y1 = min(int(math.ceil(poly_xy[:, 1].max())), height)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), dtype=bool), (y0, x0)
    nr, nc = y1 - y0, x1 - x0
    pts = np.empty((nr * nc, 2), dtype=np.float64)
    pts[:, 0] = np.tile(np.arange(x0, x1) + 0.5, nr)
    pts[:, 1] = np.repeat(np.arange(y0, y1) + 0.5, nc)
    inside = MplPath(poly_xy).contains_points(pts)
    return inside.reshape(y1 - y0, x1 - x0), (y0, x0)


def paint(canvas: np.ndarray, poly_xy: np.ndarray, value: float | Sequence[float]) -> None:
    """Set ``canvas`` (H, W) or (H, W, C) to ``value`` at the pixels whose centres the polygon covers."""
    h, w = canvas.shape[:2]
    sub, (r0, c0) = polygon_mask(poly_xy, h, w)
    if sub.size:
        canvas[r0 : r0 + sub.shape[0], c0 : c0 + sub.shape[1]][sub] = value


def mask_box(mask: np.ndarray) -> list[float] | None:
    """``[x1, y1, x2, y2]`` pixel-edge box of the True pixels (x2/y2 exclusive), or None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]
