"""Sample the anchor-grid prior of one image: ``sample_grid(source, bbox, year, ...) -> PriorGrid``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sarvlm.core.errors import InputError, SarvlmError
from sarvlm.core.record import GeoRef
from sarvlm.priors.anchor_grid import (
    _has_transform_or_gcps,
    anchor_nodes,
    check_bbox,
    footprint_from_georef,
    image_anchor_nodes,
    inside_image,
    node_pixels,
    normalised_positions,
)
from sarvlm.priors.prior_grid import PriorGrid
from sarvlm.priors.sources.base import PriorSource, choose_year


def sample_grid(
    source: PriorSource,
    bbox: Sequence[float] | None,
    year: int | None,
    n_lon: int,
    n_lat: int,
    width: int,
    height: int,
    georef: GeoRef | None = None,
    *,
    year_policy: str = "nearest",
    edge_tolerance: float = 0.05,
    anchors: str = "auto",
) -> PriorGrid:
    """The FUSAR-GPT anchor-grid prior F(B, y) of one image (Eq. 1–3).

    ``bbox`` is the WGS84 footprint ``[lon_min, lat_min, lon_max, lat_max]``; when None it is
    derived from ``georef`` (its ``bbox_wgs84``, else the image edges). Nodes are mapped to
    pixels through ``georef`` (affine + CRS or GCPs), or with the north-up box formula when the
    sample only has a box. Year policy: the exact ``year`` if the source has data there, else
    (``year_policy="nearest"``) the nearest available year (ties → earlier; recorded as
    ``PriorGrid.year`` next to ``year_requested``), else every node is invalid and ``year`` is
    None. Nodes are invalid where the source has NoData or no coverage, or outside the image
    by more than ``edge_tolerance`` × its size (positions are clipped to [0, 1]).
    Node order: row-major over latitude then longitude (node ``j*n_lon + i``, south-west first).
    ``anchors``: ``"image"`` places the nodes on the image's pixel grid and maps them to lon/lat
    through ``georef`` (see :mod:`sarvlm.priors.anchor_grid`), ``"bbox"`` on the lon/lat box;
    ``"auto"`` (default) is ``"image"`` when ``georef`` has an affine transform or GCPs and no box
    is stated (neither a ``bbox`` argument nor ``georef.bbox_wgs84``: the footprint is then the
    image itself), else ``"bbox"``.
    """
    if anchors not in ("auto", "image", "bbox"):
        raise SarvlmError(f"anchors: must be auto, image or bbox, got {anchors!r}")
    if int(width) <= 0 or int(height) <= 0:
        raise InputError(f"image size: width and height must be positive, got {width}x{height}")
    width, height = int(width), int(height)
    explicit_bbox = bbox
    if bbox is None:
        if georef is None:
            raise InputError("sample_grid: needs a bbox or a georef")
        bbox = footprint_from_georef(georef, width, height)
    else:
        bbox = check_bbox(bbox)
    # an explicit footprint (the bbox argument, or the record's own bbox_wgs84) keeps Eq. 2 on that box
    stated_box = explicit_bbox is not None or (georef is not None and georef.bbox_wgs84 is not None)
    in_image = anchors == "image" or (anchors == "auto" and not stated_box)
    if in_image and _has_transform_or_gcps(georef):
        lon, lat, x, y = image_anchor_nodes(georef, width, height, n_lon, n_lat)
    else:
        lon, lat = anchor_nodes(bbox, n_lon, n_lat)
        x, y = node_pixels(lon, lat, width, height, bbox, georef)
    inside = inside_image(x, y, width, height, edge_tolerance)

    s = lon.shape[0]
    vectors = np.zeros((s, int(source.prior_dim)), dtype=np.float32)
    valid = np.zeros(s, dtype=bool)
    used = None
    if inside.any() and year is not None:
        used = choose_year(int(year), source.years_covering(lon[inside], lat[inside]), year_policy)
        if used is not None:
            idx = np.flatnonzero(inside)
            vec, ok = source.sample(lon[idx], lat[idx], used)
            vectors[idx] = vec
            valid[idx] = ok
    return PriorGrid(
        lon=lon,
        lat=lat,
        x=x,
        y=y,
        positions=normalised_positions(x, y, width, height),
        vectors=vectors,
        valid=valid,
        year=used,
        year_requested=None if year is None else int(year),
    )
