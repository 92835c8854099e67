"""Quality screening of tiles (FUSAR-KLIP): GLCM texture + simple statistics, and a KNN filter.

Features per tile (computed on a uint8 rendering of the tile):

- GLCM (grey-level co-occurrence matrix, Haralick 1973) on ``levels`` grey levels, symmetric and
  normalised, averaged over distance 1 and the angles 0, 45, 90, 135 degrees: ``contrast``,
  ``dissimilarity``, ``homogeneity``, ``energy`` (sqrt of ASM), ``correlation``, ``glcm_entropy``;
  the same definitions as scikit-image's ``graycoprops`` (written with numpy here: scikit-image is
  not a dependency).
- statistics: ``mean``, ``std``, ``hist_entropy`` (bits), ``dynamic_range`` (p99 - p1, grey levels),
  ``edge_density`` (mean gradient magnitude), ``nodata_fraction``.

Screening (:func:`screen_tiles`):

1. hard rules: a tile that is mostly no-data (``nodata_fraction > max_nodata``) or flat
   (``dynamic_range < min_dynamic_range``) is dropped with that reason;
2. low-information seeds: tiles in the lowest ``low_quantile`` of the information score (GLCM
   entropy + histogram entropy + edge density, each robust-standardised);
3. KNN vote: with features robust-standardised (median / IQR), each remaining tile looks at its
   ``k`` nearest neighbours (scipy cKDTree); it is dropped when it is a seed and most of its
   neighbours are seeds too, i.e. it sits in a low-information cluster rather than being an
   isolated quiet tile. The reason names the score and the vote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sarvlm.core.errors import InputError

FEATURES = (
    "contrast",
    "dissimilarity",
    "homogeneity",
    "energy",
    "correlation",
    "glcm_entropy",
    "mean",
    "std",
    "hist_entropy",
    "dynamic_range",
    "edge_density",
    "nodata_fraction",
)
_ANGLE_OFFSETS = ((0, 1), (-1, 1), (-1, 0), (-1, -1))  # (drow, dcol) for 0, 45, 90, 135 degrees


def glcm(image_u8: np.ndarray, levels: int = 32, valid: np.ndarray | None = None) -> np.ndarray:
    """Symmetric, normalised GLCM ``(levels, levels)`` averaged over the four angles at distance 1.

    ``valid`` (bool, same shape) excludes no-data pixels from the pairs.
    """
    img = np.asarray(image_u8)
    if img.ndim != 2 or img.dtype != np.uint8:
        raise InputError(f"glcm: needs a 2-D uint8 image, got {img.dtype} {img.shape}")
    if not 2 <= levels <= 256:
        raise InputError(f"glcm: levels must be in 2..256, got {levels}")
    q = (img.astype(np.int64) * levels) >> 8
    h, w = q.shape
    total = np.zeros(levels * levels, np.float64)
    for dr, dc in _ANGLE_OFFSETS:
        r0, r1 = max(0, -dr), h - max(0, dr)
        c0, c1 = max(0, -dc), w - max(0, dc)
        a = q[r0:r1, c0:c1]
        b = q[r0 + dr : r1 + dr, c0 + dc : c1 + dc]
        if valid is not None:
            ok = valid[r0:r1, c0:c1] & valid[r0 + dr : r1 + dr, c0 + dc : c1 + dc]
            a, b = a[ok], b[ok]
        counts = np.bincount((a * levels + b).ravel(), minlength=levels * levels).astype(np.float64)
        m = counts.reshape(levels, levels)
        m = m + m.T
        s = m.sum()
        if s > 0:
            total += (m / s).ravel()
    total /= len(_ANGLE_OFFSETS)
    return total.reshape(levels, levels)


def glcm_features(p: np.ndarray) -> dict[str, float]:
    """Haralick features of a normalised GLCM (scikit-image ``graycoprops`` definitions)."""
    levels = p.shape[0]
    i, j = np.meshgrid(np.arange(levels), np.arange(levels), indexing="ij")
    diff = (i - j).astype(np.float64)
    contrast = float((p * diff**2).sum())
    dissimilarity = float((p * np.abs(diff)).sum())
    homogeneity = float((p / (1.0 + diff**2)).sum())
    energy = float(np.sqrt((p**2).sum()))
    mu_i, mu_j = (p * i).sum(), (p * j).sum()
    sd_i = np.sqrt((p * (i - mu_i) ** 2).sum())
    sd_j = np.sqrt((p * (j - mu_j) ** 2).sum())
    correlation = float((p * (i - mu_i) * (j - mu_j)).sum() / (sd_i * sd_j)) if sd_i > 1e-12 and sd_j > 1e-12 else 1.0
    nz = p[p > 0]
    entropy = float(-(nz * np.log2(nz)).sum())
    return {
        "contrast": contrast,
        "dissimilarity": dissimilarity,
        "homogeneity": homogeneity,
        "energy": energy,
        "correlation": correlation,
        "glcm_entropy": entropy,
    }


def tile_features(image_u8: np.ndarray, valid: np.ndarray | None = None, levels: int = 32) -> dict[str, float]:
    """GLCM + statistical features of a uint8 tile (first band of a multi-band tile)."""
    img = np.asarray(image_u8)
    if img.ndim == 3:
        img = img[0]
    if valid is None:
        valid = np.ones(img.shape, bool)
    values = img[valid].astype(np.float64)
    nodata_fraction = float(1.0 - valid.mean())
    if values.size == 0:
        stats = {"mean": 0.0, "std": 0.0, "hist_entropy": 0.0, "dynamic_range": 0.0, "edge_density": 0.0}
        return {**dict.fromkeys(FEATURES[:6], 0.0), **stats, "nodata_fraction": 1.0}
    hist = np.bincount(img[valid].ravel(), minlength=256).astype(np.float64)
    hist /= hist.sum()
    nz = hist[hist > 0]
    p1, p99 = np.percentile(values, [1, 99])
    f = img.astype(np.float32)
    gx = np.abs(np.diff(f, axis=1))
    gy = np.abs(np.diff(f, axis=0))
    edge = float((gx.mean() + gy.mean()) / 2.0) if gx.size and gy.size else 0.0
    feats = glcm_features(glcm(img, levels, valid))
    feats.update(
        mean=float(values.mean()),
        std=float(values.std()),
        hist_entropy=float(-(nz * np.log2(nz)).sum()),
        dynamic_range=float(p99 - p1),
        edge_density=edge,
        nodata_fraction=nodata_fraction,
    )
    return feats


@dataclass(frozen=True)
class ScreenDecision:
    """Whether a tile is kept, and why it is dropped."""

    keep: bool
    reason: str | None
    score: float  # information score (robust z units; higher = more information)


def _robust_z(x: np.ndarray) -> np.ndarray:
    med = np.median(x, axis=0)
    q75, q25 = np.percentile(x, [75, 25], axis=0)
    iqr = q75 - q25
    scale = np.where(iqr > 1e-12, iqr / 1.349, np.maximum(np.abs(med) * 1e-3, 1e-6))
    return (x - med) / scale


def screen_tiles(
    features: Sequence[dict[str, float]],
    *,
    k: int = 5,
    low_quantile: float = 0.1,
    max_nodata: float = 0.5,
    min_dynamic_range: float = 8.0,
) -> list[ScreenDecision]:
    """Decide per tile whether to keep it (see the module docstring for the rule)."""
    n = len(features)
    if n == 0:
        return []
    if not 0 <= low_quantile < 1:
        raise InputError(f"screen: low_quantile must be in [0, 1), got {low_quantile}")
    if k < 1:
        raise InputError(f"screen: k must be >= 1, got {k}")
    x = np.array([[f[name] for name in FEATURES] for f in features], dtype=np.float64)
    col = {name: i for i, name in enumerate(FEATURES)}
    z = _robust_z(x) if n > 1 else np.zeros_like(x)
    score = (z[:, col["glcm_entropy"]] + z[:, col["hist_entropy"]] + z[:, col["edge_density"]]) / 3.0
    hard: list[str | None] = []
    for f in features:
        if f["nodata_fraction"] > max_nodata:
            hard.append(f"no-data: {f['nodata_fraction']:.0%} of pixels (max {max_nodata:.0%})")
        elif f["dynamic_range"] < min_dynamic_range:
            hard.append(f"flat: dynamic range {f['dynamic_range']:.1f} grey levels (min {min_dynamic_range:g})")
        else:
            hard.append(None)
    alive = np.array([h is None for h in hard])
    decisions: list[ScreenDecision | None] = [
        None if h is None else ScreenDecision(False, h, float(score[i])) for i, h in enumerate(hard)
    ]
    idx = np.flatnonzero(alive)
    if len(idx) > k and low_quantile > 0:
        from scipy.spatial import cKDTree

        zs = _robust_z(x[idx][:, [col[name] for name in FEATURES if name != "nodata_fraction"]])
        sc = score[idx]
        threshold = np.quantile(sc, low_quantile)
        seed = sc <= threshold
        tree = cKDTree(zs)
        _, nbrs = tree.query(zs, k=k + 1)  # the first neighbour is the tile itself
        votes = seed[nbrs[:, 1:]].sum(axis=1)
        med_entropy = float(np.median(x[idx, col["glcm_entropy"]]))
        for pos, i in enumerate(idx):
            if seed[pos] and votes[pos] * 2 > k:
                decisions[i] = ScreenDecision(
                    False,
                    (
                        f"low information: score {sc[pos]:.2f} <= {threshold:.2f} (lowest {low_quantile:.0%}), "
                        f"GLCM entropy {x[i, col['glcm_entropy']]:.2f} (median {med_entropy:.2f}), "
                        f"{int(votes[pos])}/{k} nearest neighbours low-information"
                    ),
                    float(sc[pos]),
                )
    return [d if d is not None else ScreenDecision(True, None, float(score[i])) for i, d in enumerate(decisions)]
