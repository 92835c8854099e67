"""The interface every embedding source implements, and the year policy they share."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class PriorSource(Protocol):
    """Something that returns embedding vectors at WGS84 points for a year.

    Implementations: :class:`~sarvlm.priors.sources.aef_cog.AefCogSource` (``aef-cog:DIR``),
    :class:`~sarvlm.priors.sources.aef_zarr.AefZarrSource` (``aef-zarr:PATH``) and
    :class:`~sarvlm.priors.sources.earthengine.EarthEngineSource` (``earthengine``).
    """

    spec: str
    prior_dim: int

    def years_covering(self, lon: np.ndarray, lat: np.ndarray) -> list[int]:
        """Sorted years with data at (or whose coverage contains) at least one of the points."""
        ...

    def sample(self, lon: np.ndarray, lat: np.ndarray, year: int) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors (S, D) float32, valid (S,) bool)`` at the points for ``year``.

        Vectors are de-quantised; invalid rows (NoData, no coverage) are all zeros.
        """
        ...

    def close(self) -> None:
        """Release open files/sessions."""
        ...


def choose_year(requested: int | None, available: list[int], policy: str = "nearest") -> int | None:
    """The year to use: ``requested`` if available, else (policy ``nearest``) the closest available
    year — ties go to the earlier year — else None (no data)."""
    if requested is None or not available:
        return None
    if requested in available:
        return int(requested)
    if policy == "exact":
        return None
    if policy != "nearest":
        from sarvlm.core.errors import ConfigurationError

        raise ConfigurationError(f"year policy: must be 'nearest' or 'exact', got {policy!r}")
    return int(min(available, key=lambda y: (abs(y - requested), y)))
