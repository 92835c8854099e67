"""Georeferencing: affine round trips within 0.01 px, GCP fits through their points, bbox edges, footprints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import GeoRef
from sarvlm.io.georef import (
    footprint_wgs84,
    georef_for_window,
    lonlat_to_pixel,
    pixel_spacing_m,
    pixel_to_lonlat,
)

UTM = GeoRef(crs="EPSG:32650", transform=[0.5, 0.0, 350000.0, 0.0, -0.5, 3450000.0])
ROTATED = GeoRef(crs="EPSG:32633", transform=[9.8, 1.7, 400000.0, 1.9, -9.9, 5500000.0])


@pytest.mark.parametrize("georef", [UTM, ROTATED, GeoRef(crs="EPSG:4326", transform=[1e-4, 0, 8.0, 0, -1e-4, 47.0])])
def test_affine_round_trip_within_0_01_px(georef):
    rng = np.random.default_rng(0)
    cols, rows = rng.uniform(0, 5000, 2000), rng.uniform(0, 5000, 2000)
    lon, lat = pixel_to_lonlat(georef, cols, rows)
    c2, r2 = lonlat_to_pixel(georef, lon, lat)
    assert np.max(np.hypot(c2 - cols, r2 - rows)) < 0.01


@settings(max_examples=40, deadline=None)
@given(
    st.floats(0, 1e5), st.floats(0, 1e5), st.integers(1, 60), st.sampled_from([32601, 32617, 32633, 32650, 32733, 3857])
)
def test_affine_round_trip_property(col, row, zone_res, epsg):
    georef = GeoRef(crs=f"EPSG:{epsg}", transform=[zone_res / 10, 0.0, 420000.0, 0.0, -zone_res / 10, 4000000.0])
    lon, lat = pixel_to_lonlat(georef, col, row)
    c2, r2 = lonlat_to_pixel(georef, lon, lat)
    assert abs(float(c2) - col) < 0.01 and abs(float(r2) - row) < 0.01


def test_affine_matches_pyproj_directly():
    from pyproj import Transformer

    lon, lat = pixel_to_lonlat(UTM, 100.0, 40.0)
    ref = Transformer.from_crs("EPSG:32650", "EPSG:4326", always_xy=True).transform(350000 + 50.0, 3450000 - 20.0)
    assert np.allclose([lon, lat], ref, atol=1e-12)


def test_bbox_edges_are_pixel_edges():
    box = GeoRef(bbox_wgs84=[10.0, 50.0, 11.0, 50.5])
    lon, lat = pixel_to_lonlat(box, [0, 200, 100], [0, 100, 50], width=200, height=100)
    np.testing.assert_allclose(lon, [10.0, 11.0, 10.5])
    np.testing.assert_allclose(lat, [50.5, 50.0, 50.25])
    c, r = lonlat_to_pixel(box, 10.25, 50.4, width=200, height=100)
    assert np.allclose([c, r], [50, 20])
    assert footprint_wgs84(box, 200, 100) == [10.0, 50.0, 11.0, 50.5]
    with pytest.raises(SarvlmError, match="width and height"):
        pixel_to_lonlat(box, 0, 0)


def _grid_gcps(n_rows=5, n_cols=7, width=700, height=500):
    """GCPs sampled from a curved (UTM) mapping, as a SAR geolocation grid would be."""
    cols, rows = np.meshgrid(np.linspace(0, width, n_cols), np.linspace(0, height, n_rows))
    lon, lat = pixel_to_lonlat(ROTATED, cols.ravel() * 30, rows.ravel() * 30)
    return GeoRef(
        gcps=[
            dict(row=float(r), col=float(c), x=float(x), y=float(y))
            for c, r, x, y in zip(cols.ravel(), rows.ravel(), lon, lat)
        ]
    )


def test_gcp_tps_passes_through_gcps_and_inverts():
    georef = _grid_gcps()
    cols = np.array([g.col for g in georef.gcps])
    rows = np.array([g.row for g in georef.gcps])
    lon, lat = pixel_to_lonlat(georef, cols, rows)
    np.testing.assert_allclose(lon, [g.x for g in georef.gcps], atol=1e-9)
    np.testing.assert_allclose(lat, [g.y for g in georef.gcps], atol=1e-9)
    # between GCPs: compare with the true mapping and the inverse
    rng = np.random.default_rng(1)
    c, r = rng.uniform(0, 700, 300), rng.uniform(0, 500, 300)
    lon, lat = pixel_to_lonlat(georef, c, r)
    tlon, tlat = pixel_to_lonlat(ROTATED, c * 30, r * 30)
    assert np.max(np.abs(lon - tlon)) < 2e-5 and np.max(np.abs(lat - tlat)) < 2e-5  # < 2 m over a 210 km scene
    c2, r2 = lonlat_to_pixel(georef, lon, lat)
    assert np.max(np.hypot(c2 - c, r2 - r)) < 0.05


def test_gcp_polynomial_option_and_errors():
    georef = _grid_gcps()
    lon, lat = pixel_to_lonlat(georef, 350.0, 250.0, method="polynomial", order=3)
    tlon, tlat = pixel_to_lonlat(ROTATED, 350.0 * 30, 250.0 * 30)
    assert abs(lon - tlon) < 1e-4 and abs(lat - tlat) < 1e-4
    line = GeoRef(gcps=[dict(row=i, col=i, x=i, y=i) for i in range(4)])
    with pytest.raises(SarvlmError, match="collinear"):
        pixel_to_lonlat(line, 1, 1)


def test_footprint_and_spacing():
    fp = footprint_wgs84(UTM, 2000, 1000)
    lon, lat = pixel_to_lonlat(UTM, [0, 2000], [1000, 0])
    assert fp[0] <= lon[0] and fp[2] >= lon[1] and fp[1] <= lat[0] and fp[3] >= lat[1]
    dx, dy = pixel_spacing_m(UTM, 2000, 1000)
    assert dx == pytest.approx(0.5, rel=2e-3) and dy == pytest.approx(0.5, rel=2e-3)
    box = GeoRef(bbox_wgs84=[0.0, 0.0, 0.01, 0.01])
    dx, _ = pixel_spacing_m(box, 1113, 1106)
    assert dx == pytest.approx(1.0, rel=1e-2)


@pytest.mark.parametrize("georef", [UTM, _grid_gcps(), GeoRef(bbox_wgs84=[10.0, 50.0, 11.0, 50.5])])
def test_window_georef_matches_parent(georef):
    sub = georef_for_window(georef, 100, 60, 50, 40, scale_x=2, scale_y=2, parent_width=700, parent_height=500)
    c, r = np.array([0, 50, 25]), np.array([0, 40, 10])
    lon, lat = pixel_to_lonlat(sub, c, r, width=50, height=40)
    plon, plat = pixel_to_lonlat(georef, 100 + c * 2, 60 + r * 2, width=700, height=500)
    np.testing.assert_allclose(lon, plon, atol=1e-8)
    np.testing.assert_allclose(lat, plat, atol=1e-8)
