"""Prior tensors for a batch: one row per image, in the order the images appear.

``geo_priors`` (N_img, S, D), ``geo_positions`` (N_img, S, 2) and ``geo_mask`` (N_img, S) from
each sample's :class:`~sarvlm.priors.prior_grid.PriorGrid` (or None = no prior). The prior is
georeferenced to the SAR image, the first image of a sample; further images (an optical
partner) get an all-False row unless ``prior_images="all"`` says they are co-registered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def sample_prior_rows(
    grid: Any | None, n_images: int, prior_images: str = "sar", prior_dim: int = 64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(priors, positions, mask)`` of one sample with ``n_images`` images."""
    if grid is None or n_images == 0:
        return (
            torch.zeros(n_images, 0, prior_dim),
            torch.zeros(n_images, 0, 2),
            torch.zeros(n_images, 0, dtype=torch.bool),
        )
    vectors = torch.from_numpy(np.asarray(grid.vectors, dtype=np.float32))
    s, d = vectors.shape
    priors = torch.zeros(n_images, s, d)
    positions = torch.zeros(n_images, s, 2)
    mask = torch.zeros(n_images, s, dtype=torch.bool)
    rows = n_images if prior_images == "all" else 1
    priors[:rows] = vectors
    positions[:rows] = torch.from_numpy(np.asarray(grid.positions, dtype=np.float32))
    mask[:rows] = torch.from_numpy(np.asarray(grid.valid, dtype=bool))
    return priors, positions, mask


def stack_prior_rows(
    rows: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], prior_dim: int = 64
) -> dict[str, torch.Tensor] | None:
    """Concatenate per-sample rows, padding S with invalid slots; None if no sample has a valid prior."""
    if not rows or not any(bool(m.any()) for _, _, m in rows):
        return None
    s = max(p.shape[1] for p, _, _ in rows)
    d = next((p.shape[2] for p, _, m in rows if m.any()), prior_dim)
    out_p, out_x, out_m = [], [], []
    for p, x, m in rows:
        n, k = p.shape[0], p.shape[1]
        pp, xx, mm = torch.zeros(n, s, d), torch.zeros(n, s, 2), torch.zeros(n, s, dtype=torch.bool)
        if k:
            pp[:, :k], xx[:, :k], mm[:, :k] = p, x, m
        out_p.append(pp)
        out_x.append(xx)
        out_m.append(mm)
    return {"geo_priors": torch.cat(out_p), "geo_positions": torch.cat(out_x), "geo_mask": torch.cat(out_m)}
