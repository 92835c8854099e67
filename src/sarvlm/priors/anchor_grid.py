"""The spatiotemporal anchor grid F(B, y) of FUSAR-GPT §3.1 (Eq. 1–3).

For a footprint ``B = [lon_min, lat_min, lon_max, lat_max]`` the grid has ``N_lon × N_lat``
nodes (Eq. 2)::

    Δlon = (lon_max − lon_min)/(N_lon − 1),   lon_i = lon_min + i·Δlon,   0 ≤ i < N_lon
    Δlat = (lat_max − lat_min)/(N_lat − 1),   lat_j = lat_min + j·Δlat,   0 ≤ j < N_lat

Node order is **row-major over latitude, then longitude**, following the paper's indices:
node ``s = j·N_lon + i`` sits at ``(lon_i, lat_j)``, so node 0 is the south-west corner and
the last node the north-east corner. (A single node along an axis sits at the box centre.)

Each node is mapped to SAR pixel coordinates through the sample's georeference
(:func:`sarvlm.io.georef.lonlat_to_pixel`: affine + CRS, or ground control points); with
only a WGS84 box the image is north-up with the box on the pixel edges::

    x = (lon − lon_min)/(lon_max − lon_min)·W,   y = (lat_max − lat)/(lat_max − lat_min)·H

Pixel coordinates are continuous with pixel ``(r, c)`` covering ``[c, c+1) × [r, r+1)``;
a node is *inside the image* when ``0 ≤ x ≤ W`` and ``0 ≤ y ≤ H``, widened by an edge tolerance
(:func:`sarvlm.priors.sample_grid` defaults to 5 % of the image size): a footprint box
derived from a projected or GCP georeference encloses a slightly rotated image (UTM grid
convergence, orbit heading), so the Eq. 2 nodes on the box edges land a few pixels outside it.
Such nodes keep their embedding and their position is clipped to the image border.

Image-space anchors (the default for images with an affine or GCP georeference and no stated
WGS84 box — ``bbox_wgs84`` or an explicit ``bbox`` keep the grid on that box; ``anchors="image"``): a GRD scene's rows run along the orbit, so its footprint is rotated against
the lon/lat box, and box nodes near the box corners fall outside the image (24 of 64 nodes for a
12°-rotated Labrador scene). Eq. 2 is then applied in the image's own frame — the same
``N_lon × N_lat`` evenly spaced nodes spanning the footprint edge to edge, but along the image axes::

    x_i = i·W/(N_lon − 1),   y_j = H − j·H/(N_lat − 1),   (lon, lat)_{ij} = georef(x_i, y_j)

so every node lies on the image and samples the embedding at its true position; node order is
kept (``s = j·N_lon + i``, node 0 at the bottom-left corner, which is the south-west corner of a
north-up image, where both grids coincide up to the map projection). For a north-up WGS84 image
the two placements are identical; ``anchors="bbox"`` keeps the lon/lat box grid everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sarvlm.core.errors import InputError, SarvlmError
from sarvlm.core.record import GeoRef


def check_bbox(bbox: Sequence[float], where: str = "bbox") -> tuple[float, float, float, float]:
    """Validate a WGS84 footprint ``[lon_min, lat_min, lon_max, lat_max]`` (one-line errors)."""
    try:
        lon_min, lat_min, lon_max, lat_max = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise InputError(f"{where}: needs 4 numbers lon_min, lat_min, lon_max, lat_max, got {bbox!r}") from None
    vals = (lon_min, lat_min, lon_max, lat_max)
    if not all(np.isfinite(vals)):
        raise InputError(f"{where}: non-finite value in {list(vals)}")
    if not (-90.0 <= lat_min <= 90.0 and -90.0 <= lat_max <= 90.0):
        raise InputError(
            f"{where}: latitude out of range [-90, 90] in {list(vals)} (lat/lon swapped? the order is lon_min, lat_min, lon_max, lat_max)"
        )
    if not (-180.0 <= lon_min <= 180.0 and -180.0 <= lon_max <= 180.0):
        raise InputError(f"{where}: longitude out of range [-180, 180] in {list(vals)}")
    if lon_min > lon_max:
        raise InputError(
            f"{where}: lon_min > lon_max in {list(vals)}: footprints across the antimeridian are not supported (split the image)"
        )
    if lat_min > lat_max:
        raise InputError(f"{where}: lat_min > lat_max in {list(vals)}")
    if lat_max >= 90.0 or lat_min <= -90.0:
        raise InputError(f"{where}: footprint {list(vals)} reaches a pole; polar footprints are not supported")
    return lon_min, lat_min, lon_max, lat_max


def anchor_nodes(bbox: Sequence[float], n_lon: int, n_lat: int) -> tuple[np.ndarray, np.ndarray]:
    """Node longitudes and latitudes of the Eq. 2 grid, row-major (lat outer, lon inner), shape (S,)."""
    if int(n_lon) < 1 or int(n_lat) < 1:
        raise InputError(f"grid: needs at least 1×1 nodes, got {n_lon}x{n_lat}")
    lon_min, lat_min, lon_max, lat_max = check_bbox(bbox)
    lons = np.linspace(lon_min, lon_max, int(n_lon)) if n_lon > 1 else np.array([(lon_min + lon_max) / 2.0])
    lats = np.linspace(lat_min, lat_max, int(n_lat)) if n_lat > 1 else np.array([(lat_min + lat_max) / 2.0])
    lat_grid, lon_grid = np.meshgrid(lats, lons, indexing="ij")
    return lon_grid.ravel().astype(np.float64), lat_grid.ravel().astype(np.float64)


def image_anchor_nodes(
    georef: GeoRef, width: int, height: int, n_lon: int, n_lat: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Eq. 2 nodes on the image's pixel grid mapped to lon/lat: ``(lon, lat, x, y)``, each (S,),
    row-major from the bottom row (j) and left column (i)."""
    from sarvlm.io.georef import pixel_to_lonlat

    if int(n_lon) < 1 or int(n_lat) < 1:
        raise SarvlmError(f"grid: needs at least 1×1 nodes, got {n_lon}x{n_lat}")
    xs = np.linspace(0.0, width, int(n_lon)) if n_lon > 1 else np.array([width / 2.0])
    ys = np.linspace(height, 0.0, int(n_lat)) if n_lat > 1 else np.array([height / 2.0])
    y_grid, x_grid = np.meshgrid(ys, xs, indexing="ij")
    x, y = x_grid.ravel().astype(np.float64), y_grid.ravel().astype(np.float64)
    lon, lat = pixel_to_lonlat(georef, x, y, width=width, height=height)
    return np.asarray(lon, np.float64), np.asarray(lat, np.float64), x, y


def _has_transform_or_gcps(georef: GeoRef | None) -> bool:
    return georef is not None and (georef.transform is not None or bool(georef.gcps))


def footprint_from_georef(
    georef: GeoRef, width: int, height: int, where: str = "georef"
) -> tuple[float, float, float, float]:
    """WGS84 box of the image: ``bbox_wgs84`` when given, else the extent of its edges.

    Footprints that wrap across the antimeridian or contain a pole are rejected.
    """
    from sarvlm.io.georef import footprint_wgs84, lonlat_to_pixel, pixel_to_lonlat

    if georef.bbox_wgs84 is not None:
        return check_bbox(georef.bbox_wgs84, f"{where}.bbox_wgs84")
    t = np.linspace(0.0, 1.0, 33)
    cols = np.concatenate([t * width, np.full_like(t, width), (1 - t) * width, np.zeros_like(t)])
    rows = np.concatenate([np.zeros_like(t), t * height, np.full_like(t, height), (1 - t) * height])
    for pole in (90.0, -90.0):
        with np.errstate(all="ignore"):
            px, py = lonlat_to_pixel(georef, np.array([0.0]), np.array([pole]), width=width, height=height)
        if np.isfinite(px[0]) and 0 <= px[0] <= width and 0 <= py[0] <= height:
            raise InputError(
                f"{where}: the image footprint contains the {'north' if pole > 0 else 'south'} pole (not supported)"
            )
    lon, _ = pixel_to_lonlat(georef, cols, rows, width=width, height=height)
    if np.any(np.abs(np.diff(np.append(lon, lon[0]))) > 180.0):
        raise InputError(f"{where}: the image footprint crosses the antimeridian (not supported; split the image)")
    return check_bbox(footprint_wgs84(georef, width, height), f"{where} footprint")


def node_pixels(
    lon: np.ndarray,
    lat: np.ndarray,
    width: int,
    height: int,
    bbox: Sequence[float],
    georef: GeoRef | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(x, y)`` of nodes: through the georeference, or the north-up box formula."""
    if _has_transform_or_gcps(georef):
        from sarvlm.io.georef import lonlat_to_pixel

        assert georef is not None  # _has_transform_or_gcps(None) is False
        x, y = lonlat_to_pixel(georef, lon, lat, width=width, height=height)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    lon_min, lat_min, lon_max, lat_max = (float(v) for v in bbox)
    x = (lon - lon_min) / (lon_max - lon_min) * width if lon_max > lon_min else np.full_like(lon, width / 2.0)
    y = (lat_max - lat) / (lat_max - lat_min) * height if lat_max > lat_min else np.full_like(lat, height / 2.0)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def inside_image(x: np.ndarray, y: np.ndarray, width: int, height: int, tolerance: float = 0.0) -> np.ndarray:
    """Nodes whose pixel position lies within the image (edges included), widened on every side
    by ``tolerance`` × the image size."""
    mx, my = tolerance * width, tolerance * height
    return np.isfinite(x) & np.isfinite(y) & (x >= -mx) & (x <= width + mx) & (y >= -my) & (y <= height + my)


def normalised_positions(x: np.ndarray, y: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(y/H, x/W)`` per node, float32, clipped to [0, 1] (nodes outside the image are invalid anyway)."""
    pos = np.stack([np.asarray(y) / float(height), np.asarray(x) / float(width)], axis=-1)
    return np.clip(np.nan_to_num(pos, nan=0.0), 0.0, 1.0).astype(np.float32)
