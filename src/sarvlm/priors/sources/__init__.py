"""Embedding sources behind one interface (:class:`PriorSource`), opened from a spec string.

=====================  ===============================================================
spec                   source
=====================  ===============================================================
``aef-cog:DIR``        official AlphaEarth COG layout with ``aef_index.{parquet,csv}``
``aef-zarr:PATH``      zarr store(s) written by ``aef-download`` (EPSG:4326)
``earthengine[:PROJ]`` Earth Engine ``GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL`` (optional extra)
=====================  ===============================================================
"""

from __future__ import annotations

from sarvlm.core.errors import SarvlmError
from sarvlm.priors.sources.base import PriorSource, choose_year

SPEC_KINDS = ("aef-cog", "aef-zarr", "earthengine")


def open_source(spec: str, **options) -> PriorSource:
    """Open an embedding source from ``aef-cog:DIR``, ``aef-zarr:PATH`` or ``earthengine[:PROJECT]``.

    ``options`` go to the source's constructor (e.g. ``missing_tiles="skip"`` for ``aef-cog``).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise SarvlmError(f"prior source: empty spec (expected one of {', '.join(k + ':...' for k in SPEC_KINDS)})")
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "aef-cog":
        from sarvlm.priors.sources.aef_cog import AefCogSource

        if not arg:
            raise SarvlmError("prior source aef-cog: needs a directory, e.g. aef-cog:/data/aef")
        return AefCogSource(arg, **options)
    if kind == "aef-zarr":
        from sarvlm.priors.sources.aef_zarr import AefZarrSource

        if not arg:
            raise SarvlmError("prior source aef-zarr: needs a path, e.g. aef-zarr:/data/region_2020.zarr")
        return AefZarrSource(arg, **options)
    if kind == "earthengine":
        from sarvlm.priors.sources.earthengine import EarthEngineSource

        return EarthEngineSource(arg or None, **options)
    raise SarvlmError(f"prior source {spec!r}: unknown kind {kind!r} (expected one of {', '.join(SPEC_KINDS)})")


__all__ = ["PriorSource", "choose_year", "open_source", "SPEC_KINDS"]
