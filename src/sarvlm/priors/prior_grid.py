"""The prior of one image: embedding vectors at anchor-grid nodes and where they fall in the image.

This is the contract between the prior sampler (``sarvlm.priors``), the prior cache,
the training collator and the model (``geo_priors``/``geo_positions``/``geo_mask``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PriorGrid:
    """S = n_lon * n_lat anchor nodes, row-major over lat then lon: node ``s = j*n_lon + i`` is at
    ``(lon_i, lat_j)`` of FUSAR-GPT Eq. 2, so node 0 is the south-west corner of the footprint."""

    lon: np.ndarray  # (S,) float64 degrees
    lat: np.ndarray  # (S,) float64 degrees
    x: np.ndarray  # (S,) float64 pixel column of the node in the SAR image
    y: np.ndarray  # (S,) float64 pixel row
    positions: np.ndarray  # (S, 2) float32, (y / H, x / W) normalised to [0, 1]
    vectors: np.ndarray  # (S, D) float32, de-quantised embeddings (0 where invalid)
    valid: np.ndarray  # (S,) bool
    year: int | None  # the year actually used (None if no data)
    year_requested: int | None = (
        None  # the sample's acquisition year (differs from `year` after a nearest-year fallback)
    )

    @property
    def num_valid(self) -> int:
        return int(self.valid.sum())

    @property
    def size(self) -> int:
        """Number of nodes S."""
        return int(self.valid.shape[0])
