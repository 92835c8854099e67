"""Geospatial priors: AlphaEarth embeddings sampled on spatiotemporal anchor grids (FUSAR-GPT §3.1).

Public API::

    from sarvlm.priors import open_source, sample_grid, PriorGrid
    src = open_source("aef-cog:/data/aef")           # or aef-zarr:PATH, earthengine[:PROJECT]
    grid = sample_grid(src, [lon_min, lat_min, lon_max, lat_max], 2021, 8, 8, width, height, georef)

and the dataset cache :mod:`sarvlm.priors.cache` (``build_prior_cache``, ``PriorCache``).
"""

from sarvlm.priors.cache import PriorCache, build_prior_cache
from sarvlm.priors.prior_grid import PriorGrid
from sarvlm.priors.sampling import sample_grid
from sarvlm.priors.sources import PriorSource, choose_year, open_source

__all__ = ["PriorCache", "PriorGrid", "PriorSource", "build_prior_cache", "choose_year", "open_source", "sample_grid"]
