"""Sentinel-1 SAFE annotation: real geolocation grids become GCP georefs that map pixels to lon/lat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyproj import Geod

from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import GeoRef, GroundControlPoint
from sarvlm.io.georef import footprint_wgs84, lonlat_to_pixel, pixel_to_lonlat
from sarvlm.io.raster import raster_info, write_raster
from sarvlm.io.sentinel1_safe import find_annotations, read_annotation, safe_annotation

DATA = Path(__file__).parent / "data" / "sentinel1_safe"
GRD = DATA / "S1B_IW_GRDH_1SDV_20210401T052623_20210401T052648_026269_032297_ECC8.SAFE"
ANNOTATIONS = sorted(DATA.glob("*.SAFE/annotation/*.xml"))


def test_grd_annotation_metadata():
    ann = safe_annotation(GRD, "vv")
    assert (ann.mission, ann.mode, ann.swath, ann.product_type, ann.polarisation) == ("S1B", "IW", "IW", "GRD", "VV")
    assert (ann.width, ann.height) == (25788, 16685)
    assert ann.range_pixel_spacing_m == 10.0 and ann.date == "2021-04-01" and ann.pass_direction == "Descending"
    assert len(ann.grid) == 210
    first = ann.grid[0]
    assert (first.line, first.pixel) == (0, 0)
    assert first.latitude == pytest.approx(47.11702756724707) and first.longitude == pytest.approx(12.43266946006738)


@pytest.mark.parametrize("path", ANNOTATIONS, ids=lambda p: p.name[:20])
def test_geolocation_grid_georef(path):
    ann = read_annotation(path)
    georef = ann.georef
    lines = np.array([p.line for p in ann.grid])
    pixels = np.array([p.pixel for p in ann.grid])
    lats = np.array([p.latitude for p in ann.grid])
    lons = np.array([p.longitude for p in ann.grid])
    lon, lat = pixel_to_lonlat(georef, pixels, lines)
    np.testing.assert_allclose(lon, lons, atol=1e-9)
    np.testing.assert_allclose(lat, lats, atol=1e-9)
    col, row = lonlat_to_pixel(georef, lons, lats)
    assert np.max(np.hypot(col - pixels, row - lines)) < 0.01
    fp = footprint_wgs84(georef, ann.width, ann.height)
    assert fp[0] <= lons.min() + 1e-9 and fp[2] >= lons.max() - 1e-9
    assert fp[1] <= lats.min() + 1e-9 and fp[3] >= lats.max() - 1e-9


@pytest.mark.parametrize("path", ANNOTATIONS, ids=lambda p: p.name[:20])
def test_held_out_grid_nodes(path):
    """Fit on every other grid column, predict the others: the spline beats GDAL's polynomial."""
    ann = read_annotation(path)
    cols = sorted({p.pixel for p in ann.grid})
    keep = {c for i, c in enumerate(cols) if i % 2 == 0} | {cols[-1]}
    fit = GeoRef(
        gcps=[
            GroundControlPoint(row=p.line, col=p.pixel, x=p.longitude, y=p.latitude)
            for p in ann.grid
            if p.pixel in keep
        ]
    )
    held = [p for p in ann.grid if p.pixel not in keep]
    geod = Geod(ellps="WGS84")
    errors = {}
    for method in ("tps", "polynomial"):
        lon, lat = pixel_to_lonlat(fit, [p.pixel for p in held], [p.line for p in held], method=method)
        _, _, dist = geod.inv(lon, lat, [p.longitude for p in held], [p.latitude for p in held])
        errors[method] = float(np.median(dist))
    # Nodes 2-4 km apart over mountains (terrain shifts SAR geolocation): a few hundred metres.
    assert errors["tps"] < 400
    assert errors["tps"] < errors["polynomial"]


def test_gcp_georef_in_geotiff_round_trip(tmp_path):
    ann = read_annotation(ANNOTATIONS[0])
    path = write_raster(tmp_path / "m.tif", np.zeros((8, 8), np.uint16), georef=ann.georef)
    back = raster_info(path).georef
    assert back.gcps is not None and len(back.gcps) == len(ann.grid)
    assert back.gcps[5].x == pytest.approx(ann.grid[5].longitude)


def test_errors(tmp_path):
    assert len(find_annotations(GRD)) == 1
    with pytest.raises(SarvlmError, match="no annotation for polarisation VH"):
        safe_annotation(GRD, "VH")
    with pytest.raises(SarvlmError, match="unknown polarisation 'XX'"):
        safe_annotation(GRD, "XX")
    with pytest.raises(SarvlmError, match="no annotation/ folder"):
        find_annotations(tmp_path)
    bad = tmp_path / "a.xml"
    bad.write_text("<product><adsHeader>")
    with pytest.raises(SarvlmError, match="malformed XML"):
        read_annotation(bad)
    bad.write_text("<calibration/>")
    with pytest.raises(SarvlmError, match="not a Sentinel-1 product annotation"):
        read_annotation(bad)
