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

import importlib

from sarvlm.core.errors import ConfigurationError
from sarvlm.priors.sources.base import PriorSource, choose_year

# The registry: spec kind -> (module, class, what the argument after ``kind:`` is, or None when
# it is optional). A new source is one module implementing PriorSource plus one line here.
SOURCES: dict[str, tuple[str, str, str | None]] = {
    "aef-cog": ("sarvlm.priors.sources.aef_cog", "AefCogSource", "a directory, e.g. aef-cog:/data/aef"),
    "aef-zarr": ("sarvlm.priors.sources.aef_zarr", "AefZarrSource", "a path, e.g. aef-zarr:/data/region_2020.zarr"),
    "earthengine": ("sarvlm.priors.sources.earthengine", "EarthEngineSource", None),
}
SPEC_KINDS = tuple(SOURCES)


def open_source(spec: str, **options) -> PriorSource:
    """Open an embedding source from a spec ``KIND[:ARG]`` (see :data:`SOURCES`).

    The source class gets ``ARG`` (``None`` when absent and optional) and ``options`` (e.g.
    ``missing_tiles="skip"`` for ``aef-cog``). Modules are imported on use: an optional
    dependency is needed only by the source that uses it.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigurationError(
            f"prior source: empty spec (expected one of {', '.join(k + ':...' for k in SPEC_KINDS)})"
        )
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind not in SOURCES:
        raise ConfigurationError(
            f"prior source {spec!r}: unknown kind {kind!r} (expected one of {', '.join(SPEC_KINDS)})"
        )
    module, class_name, needs = SOURCES[kind]
    if needs is not None and not arg:
        raise ConfigurationError(f"prior source {kind}: needs {needs}")
    source_class = getattr(importlib.import_module(module), class_name)
    return source_class(arg or None, **options) if needs is None else source_class(arg, **options)


__all__ = ["PriorSource", "choose_year", "open_source", "SOURCES", "SPEC_KINDS"]
