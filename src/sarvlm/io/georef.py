"""Pixel <-> lon/lat mapping for the three kinds of :class:`~sarvlm.core.record.GeoRef`.

Pixel coordinates follow rasterio: ``(col, row)`` with integers on pixel corners, so the centre
of the top-left pixel is ``(0.5, 0.5)``. Longitudes/latitudes are WGS84 degrees.

- **affine + CRS**: ``x, y = transform * (col, row)``, then pyproj from the CRS to WGS84 (exact,
  invertible).
- **ground control points** (e.g. a Sentinel-1 geolocation grid): GDAL's GCP transformer fits a
  least-squares polynomial (order 1/2/3 chosen from the GCP count: <6, <10, >=10) or, with ``-tps``, a
  thin-plate spline. sarvlm's default ``method="tps"`` combines both: GDAL's polynomial for the smooth
  shape plus a thin-plate spline (scipy ``RBFInterpolator``) of its residuals, so the fit passes
  exactly through every GCP (like ``-tps``) without sagging between sparse grid nodes (a pure spline
  is ~70 m off between 35 km-spaced nodes where the cubic+spline is < 1 m). ``method="polynomial"``
  is GDAL's default transformer. Forward (pixel -> ``gcp_crs``) and inverse are fitted separately,
  on normalised coordinates; with fewer than 6 GCPs an order-1 polynomial is used.
- **bbox_wgs84**: a north-up box whose edges are the outer pixel edges; mapping is linear in
  lon/lat and needs the image ``width``/``height``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from sarvlm.core.errors import InputError
from sarvlm.core.record import GeoRef, GroundControlPoint

GcpMethod = Literal["tps", "polynomial"]
WGS84 = "EPSG:4326"


@functools.lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Any:
    from pyproj import Transformer
    from pyproj.exceptions import CRSError

    try:
        return Transformer.from_crs(src, dst, always_xy=True)
    except CRSError as exc:
        raise InputError(f"georef: crs: cannot use {src!r} ({exc})") from None


def _is_wgs84(crs: str) -> bool:
    return crs.strip().upper() in ("EPSG:4326", "WGS84", "OGC:CRS84")


def _to_wgs84(crs: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if _is_wgs84(crs):
        return x, y
    lon, lat = _transformer(crs, WGS84).transform(x, y)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def _from_wgs84(crs: str, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if _is_wgs84(crs):
        return lon, lat
    x, y = _transformer(WGS84, crs).transform(lon, lat)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def bbox_transform(bbox_wgs84: Sequence[float], width: int, height: int) -> tuple[float, ...]:
    """Affine coefficients ``(a, b, c, d, e, f)`` of a north-up lon/lat box spanning ``width x height`` pixels."""
    lon_min, lat_min, lon_max, lat_max = (float(v) for v in bbox_wgs84)
    return ((lon_max - lon_min) / width, 0.0, lon_min, 0.0, -(lat_max - lat_min) / height, lat_max)


def _affine_of(georef: GeoRef, width: int | None, height: int | None) -> tuple[tuple[float, ...], str] | None:
    """The affine transform and its CRS, if the georef has one (a bbox counts, given the size)."""
    if georef.transform is not None:
        return tuple(georef.transform), str(georef.crs)
    if georef.gcps:
        return None
    if width is None or height is None:
        raise InputError("georef: bbox_wgs84 mapping needs the image width and height")
    assert georef.bbox_wgs84 is not None  # GeoRef validation: one of transform, gcps, bbox_wgs84
    return bbox_transform(georef.bbox_wgs84, width, height), WGS84


class _GcpModel:
    """Forward (pixel -> gcp_crs) and inverse fits through a set of GCPs."""

    def __init__(self, gcps: Sequence[GroundControlPoint], method: GcpMethod, order: int | None):
        pix = np.array([[g.col, g.row] for g in gcps], dtype=np.float64)
        geo = np.array([[g.x, g.y] for g in gcps], dtype=np.float64)
        if len(np.unique(pix, axis=0)) < 3 or np.linalg.matrix_rank(np.c_[pix, np.ones(len(pix))]) < 3:
            raise InputError("georef: gcps: ground control points are collinear or repeated")
        if method == "tps" and len(gcps) < 6:
            method, order = "polynomial", 1
        if method not in ("tps", "polynomial"):
            raise InputError(f"georef: gcps: method must be 'tps' or 'polynomial', got {method!r}")
        self.forward = _fit(pix, geo, method, order)
        self.inverse = _fit(geo, pix, method, order)


def _poly_terms(xy: np.ndarray, order: int) -> np.ndarray:
    x, y = xy[:, 0], xy[:, 1]
    return np.stack([x ** (i - j) * y**j for i in range(order + 1) for j in range(i + 1)], axis=1)


def _fit(src: np.ndarray, dst: np.ndarray, method: GcpMethod, order: int | None):
    mean, scale = src.mean(axis=0), src.std(axis=0)
    scale[scale == 0] = 1.0
    if order is None:  # GDAL's automatic polynomial order
        order = 1 if len(src) < 6 else 2 if len(src) < 10 else 3
    if not 1 <= order <= 3:
        raise InputError(f"georef: gcps: polynomial order must be 1, 2 or 3, got {order}")
    terms = _poly_terms((src - mean) / scale, order)
    if len(src) < terms.shape[1]:
        raise InputError(f"georef: gcps: order-{order} polynomial needs {terms.shape[1]} GCPs, got {len(src)}")
    coef, *_ = np.linalg.lstsq(terms, dst, rcond=None)

    def trend(pts: np.ndarray) -> np.ndarray:
        return _poly_terms((pts - mean) / scale, order) @ coef

    if method == "polynomial":
        return trend
    from scipy.interpolate import RBFInterpolator

    # The polynomial carries the smooth large-scale shape (a spline alone sags between sparse GCPs);
    # a thin-plate spline of its residuals makes the fit pass exactly through every GCP.
    residual = RBFInterpolator((src - mean) / scale, dst - trend(src), kernel="thin_plate_spline", degree=1)
    return lambda pts: trend(pts) + residual((pts - mean) / scale)


@functools.lru_cache(maxsize=32)
def _gcp_model(key: str, method: GcpMethod, order: int | None) -> _GcpModel:
    gcps = [GroundControlPoint(**g) for g in json.loads(key)]
    return _GcpModel(gcps, method, order)


def _model_for(georef: GeoRef, method: GcpMethod, order: int | None) -> _GcpModel:
    key = json.dumps([g.model_dump() for g in georef.gcps or ()], sort_keys=True)
    return _gcp_model(key, method, order)


def _as_arrays(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    a_arr, b_arr = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return a_arr.ravel(), b_arr.ravel(), a_arr.shape


def pixel_to_lonlat(
    georef: GeoRef,
    cols: Any,
    rows: Any,
    *,
    width: int | None = None,
    height: int | None = None,
    method: GcpMethod = "tps",
    order: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Map pixel positions ``(cols, rows)`` (arrays or scalars, broadcast) to WGS84 ``(lons, lats)``.

    ``width``/``height`` are needed only for a bbox-only georef. ``method``/``order`` choose the GCP
    fit (see the module docstring).
    """
    c, r, shape = _as_arrays(cols, rows)
    affine = _affine_of(georef, width, height)
    if affine is not None:
        (a, b, xoff, d, e, yoff), crs = affine
        x, y = a * c + b * r + xoff, d * c + e * r + yoff
        lon, lat = _to_wgs84(crs, x, y)
    else:
        geo = _model_for(georef, method, order).forward(np.c_[c, r])
        lon, lat = _to_wgs84(georef.gcp_crs, geo[:, 0], geo[:, 1])
    return lon.reshape(shape), lat.reshape(shape)


def lonlat_to_pixel(
    georef: GeoRef,
    lons: Any,
    lats: Any,
    *,
    width: int | None = None,
    height: int | None = None,
    method: GcpMethod = "tps",
    order: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Map WGS84 ``(lons, lats)`` to fractional pixel positions ``(cols, rows)`` (the inverse of
    :func:`pixel_to_lonlat`). Points outside the image get positions outside ``[0, width]``."""
    lo, la, shape = _as_arrays(lons, lats)
    affine = _affine_of(georef, width, height)
    if affine is not None:
        (a, b, xoff, d, e, yoff), crs = affine
        x, y = _from_wgs84(crs, lo, la)
        det = a * e - b * d
        dx, dy = x - xoff, y - yoff
        col = (e * dx - b * dy) / det
        row = (-d * dx + a * dy) / det
    else:
        gx, gy = _from_wgs84(georef.gcp_crs, lo, la)
        pix = _model_for(georef, method, order).inverse(np.c_[gx, gy])
        col, row = pix[:, 0], pix[:, 1]
    return np.asarray(col).reshape(shape), np.asarray(row).reshape(shape)


def footprint_wgs84(georef: GeoRef, width: int, height: int, samples_per_edge: int = 33) -> list[float]:
    """``[lon_min, lat_min, lon_max, lat_max]`` of the image, from points sampled along its four edges
    (edges are curved in lon/lat for projected CRSs and GCP georefs)."""
    if georef.bbox_wgs84 is not None and georef.transform is None and not georef.gcps:
        return [float(v) for v in georef.bbox_wgs84]
    t = np.linspace(0.0, 1.0, samples_per_edge)
    cols = np.concatenate([t * width, np.full_like(t, width), t * width, np.zeros_like(t)])
    rows = np.concatenate([np.zeros_like(t), t * height, np.full_like(t, height), t * height])
    lon, lat = pixel_to_lonlat(georef, cols, rows, width=width, height=height)
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        raise InputError("georef: the image corners do not map to valid longitudes/latitudes")
    return [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())]


def _projected_metres(crs: str) -> bool:
    from pyproj import CRS

    try:
        parsed = CRS.from_user_input(crs)
    except Exception:  # noqa: BLE001 - an unusable CRS simply is not "projected metres"
        return False
    if not parsed.is_projected:
        return False
    units = {axis.unit_name for axis in parsed.axis_info}
    return units <= {"metre", "meter"}


def pixel_spacing_m(georef: GeoRef, width: int, height: int) -> tuple[float, float]:
    """Size of one pixel ``(along columns, along rows)`` in metres.

    For an affine georef in a projected CRS with metre units (UTM, ...), the grid spacing itself
    (the nominal resolution, as the product states it); otherwise the WGS84 geodesic size at the
    image centre.
    """
    from pyproj import Geod

    if georef.transform is not None and _projected_metres(str(georef.crs)):
        a, b, _, d, e, _ = georef.transform
        return float(math.hypot(a, d)), float(math.hypot(b, e))

    cx, cy = width / 2.0, height / 2.0
    lon, lat = pixel_to_lonlat(georef, [cx, cx + 1, cx], [cy, cy, cy + 1], width=width, height=height)
    geod = Geod(ellps="WGS84")
    _, _, dx = geod.inv(lon[0], lat[0], lon[1], lat[1])
    _, _, dy = geod.inv(lon[0], lat[0], lon[2], lat[2])
    if not (math.isfinite(dx) and math.isfinite(dy)) or dx <= 0 or dy <= 0:
        raise InputError("georef: cannot measure the pixel spacing (degenerate georeference)")
    return float(dx), float(dy)


def georef_for_window(
    georef: GeoRef,
    col_off: float,
    row_off: float,
    width: int,
    height: int,
    *,
    scale_x: float = 1.0,
    scale_y: float = 1.0,
    parent_width: int | None = None,
    parent_height: int | None = None,
    gcp_grid: int = 5,
) -> GeoRef:
    """Georeference of a window of an image, optionally resampled.

    The window starts at parent pixel ``(col_off, row_off)``; one output pixel covers ``scale_x x
    scale_y`` parent pixels and the output has ``width x height`` pixels. Affine georefs stay exact;
    a GCP georef gets a fresh ``gcp_grid x gcp_grid`` grid of GCPs evaluated through the parent's fit
    (compact, and as accurate as the parent inside the window); a bbox becomes the window's bbox.
    """
    if georef.transform is not None:
        from rasterio.transform import Affine

        t = Affine(*georef.transform) @ Affine.translation(col_off, row_off) @ Affine.scale(scale_x, scale_y)
        return GeoRef(crs=georef.crs, transform=[t.a, t.b, t.c, t.d, t.e, t.f])
    if georef.gcps:
        u = np.linspace(0.0, 1.0, gcp_grid)
        cc, rr = np.meshgrid(u * width, u * height)
        pc, pr = col_off + cc.ravel() * scale_x, row_off + rr.ravel() * scale_y
        geo = _model_for(georef, "tps", None).forward(np.c_[pc, pr])
        gcps = [
            GroundControlPoint(row=float(r), col=float(c), x=float(x), y=float(y))
            for c, r, (x, y) in zip(cc.ravel(), rr.ravel(), geo)
        ]
        return GeoRef(gcps=gcps, gcp_crs=georef.gcp_crs)
    if parent_width is None or parent_height is None:
        raise InputError("georef: a window of a bbox_wgs84 georef needs the parent image width and height")
    assert georef.bbox_wgs84 is not None  # GeoRef validation: one of transform, gcps, bbox_wgs84
    a, _, c, _, e, f = bbox_transform(georef.bbox_wgs84, parent_width, parent_height)
    lon0, lat1 = c + a * col_off, f + e * row_off
    lon1, lat0 = lon0 + a * width * scale_x, lat1 + e * height * scale_y
    return GeoRef(bbox_wgs84=[lon0, lat0, lon1, lat1])


def georef_from_rasterio(dataset: Any) -> GeoRef | None:
    """The GeoRef of an open rasterio dataset: CRS + transform, else GCPs, else ``None``."""
    from rasterio.transform import Affine

    crs = dataset.crs
    transform = dataset.transform
    if crs is not None and transform is not None and transform != Affine.identity():
        return GeoRef(
            crs=_crs_string(crs),
            transform=[transform.a, transform.b, transform.c, transform.d, transform.e, transform.f],
        )
    gcps, gcp_crs = dataset.gcps
    if gcps and len(gcps) >= 3:
        return GeoRef(
            gcps=[GroundControlPoint(row=g.row, col=g.col, x=g.x, y=g.y, z=g.z or 0.0) for g in gcps],
            gcp_crs=_crs_string(gcp_crs) if gcp_crs is not None else WGS84,
        )
    return None


def _crs_string(crs: Any) -> str:
    """``EPSG:xxxx`` when the CRS has an EPSG code, else its WKT."""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()
