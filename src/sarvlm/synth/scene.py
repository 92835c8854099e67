"""One generated scene in memory: what :mod:`sarvlm.synth.world` writes and the preview draws.

Its own module so the world generator and :mod:`sarvlm.synth.preview` both import it and neither
imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sarvlm.core.record import SampleRecord
from sarvlm.synth.embedding_field import CellLayout
from sarvlm.synth.footprint import SceneFootprint


@dataclass
class Scene:
    """One generated scene in memory (what the files hold), before writing."""

    record: SampleRecord
    intensity: np.ndarray  # (P, H, W) float32, one band per polarisation
    mask: np.ndarray  # (H, W) uint8
    optical: np.ndarray | None  # (H, W, 3) uint8
    cell: CellLayout  # the whole cell's land cover, for the site's embedding field
    footprint: SceneFootprint
    clutter: int
