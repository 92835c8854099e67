"""The official AEF COG layout: codec, tile writer (top-down / bottom-up), index schema."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.transform import Affine

from sarvlm.core.errors import SarvlmError
from sarvlm.io.aef_layout import (
    AEF_NODATA,
    INDEX_COLUMNS,
    dequantize_aef,
    quantize_aef,
    read_aef_index,
    write_aef_index,
    write_aef_tile,
)


def test_dequantize_matches_official_formula_and_masks_nodata():
    q = np.arange(-128, 128, dtype=np.int8)
    v = dequantize_aef(q)
    assert v.dtype == np.float32
    assert np.isnan(v[0])  # -128 is NoData
    expected = np.sign(q[1:].astype(np.float64)) * (q[1:] / 127.5) ** 2
    np.testing.assert_allclose(v[1:], expected, rtol=1e-6)
    assert v[q == 127][0] == pytest.approx((127 / 127.5) ** 2)
    assert v[q == -64][0] == pytest.approx(-((64 / 127.5) ** 2))
    assert v[q == 0][0] == 0.0


def test_quantize_inverts_dequantize_for_every_code():
    q = np.arange(-127, 128, dtype=np.int8)
    np.testing.assert_array_equal(quantize_aef(dequantize_aef(q)), q)
    assert quantize_aef(np.array([np.nan, 1.5, -2.0]))[0] == AEF_NODATA
    np.testing.assert_array_equal(quantize_aef(np.array([1.5, -2.0])), [127, -127])


def test_dequantize_rejects_non_int8():
    with pytest.raises(SarvlmError, match="int8"):
        dequantize_aef(np.zeros(3, dtype=np.int16))


def _codes(h, w, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(-127, 128, size=(64, h, w), dtype=np.int8)
    a[:, 0, 0] = AEF_NODATA
    return a


@pytest.mark.parametrize("bottom_up", [False, True])
def test_tile_round_trip_top_down_and_bottom_up(tmp_path, bottom_up):
    a = _codes(40, 48)
    tr = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000400.0)
    path = write_aef_tile(tmp_path, 2020, 33, "N", "abc", a, tr, "EPSG:32633", bottom_up=bottom_up, offset=(8192, 0))
    assert path == tmp_path / "2020" / "33N" / "abc-0000008192-0000000000.tiff"
    with rasterio.open(path) as src:
        assert src.count == 64 and src.dtypes[0] == "int8" and src.nodata == AEF_NODATA
        assert src.crs.to_epsg() == 32633
        assert (src.transform.e > 0) == bottom_up
        assert src.overviews(1) == [2, 4]
        assert src.descriptions[0] == "A00" and src.descriptions[63] == "A63"
        # Pixel (row 5, col 7) of the north-up array is at this UTM point (its centre):
        x, y = tr @ (7.5, 5.5)
        got = next(src.sample([(x, y)]))
        np.testing.assert_array_equal(got, a[:, 5, 7])
        stored = src.read()
    np.testing.assert_array_equal(stored, a[:, ::-1, :] if bottom_up else a)


def test_tile_writer_rejects_bad_input(tmp_path):
    tr = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000400.0)
    with pytest.raises(SarvlmError, match="int8"):
        write_aef_tile(tmp_path, 2020, 33, "N", "t", np.zeros((64, 4, 4), np.float32), tr)
    with pytest.raises(SarvlmError, match=r"\(64, H, W\)"):
        write_aef_tile(tmp_path, 2020, 33, "N", "t", np.zeros((3, 4, 4), np.int8), tr)
    with pytest.raises(SarvlmError, match="does not match UTM zone"):
        write_aef_tile(tmp_path, 2020, 33, "N", "t", np.zeros((64, 4, 4), np.int8), tr, "EPSG:32634")
    assert not any(tmp_path.rglob("*.tiff"))


def test_index_schema_paths_and_clipped_footprints(tmp_path):
    # Zone 33N spans lon 12..18; a tile straddling the zone's west edge (lon ~11.9..12.3).
    tr_a = Affine(100.0, 0.0, 262000.0, 0.0, -100.0, 5000000.0)
    write_aef_tile(tmp_path, 2020, 33, "N", "a", _codes(64, 64), tr_a)
    tr_b = Affine(100.0, 0.0, 720000.0, 0.0, -100.0, 5000000.0)
    write_aef_tile(tmp_path, 2020, 32, "N", "b", _codes(32, 32, 1), tr_b, bottom_up=True)
    write_aef_tile(tmp_path, 2021, 33, "N", "a", _codes(64, 64, 2), tr_a)
    csv_path, pq_path = write_aef_index(tmp_path)

    csv = pd.read_csv(csv_path)
    assert list(csv.columns) == list(INDEX_COLUMNS)
    assert csv["path"].tolist() == [
        "gs://alphaearth_foundations/satellite_embedding/v1/annual/2020/32N/b-0000000000-0000000000.tiff",
        "gs://alphaearth_foundations/satellite_embedding/v1/annual/2020/33N/a-0000000000-0000000000.tiff",
        "gs://alphaearth_foundations/satellite_embedding/v1/annual/2021/33N/a-0000000000-0000000000.tiff",
    ]
    assert csv["utm_zone"].tolist() == ["32N", "33N", "33N"]
    assert csv["crs"].tolist() == ["EPSG:32632", "EPSG:32633", "EPSG:32633"]
    # Bottom-up tile: bounds normalised.
    b = csv.iloc[0]
    assert b.utm_south == 5000000.0 - 3200.0 and b.utm_north == 5000000.0
    assert b.wgs84_south < b.wgs84_north and b.wgs84_west < b.wgs84_east

    idx = read_aef_index(tmp_path)  # parquet preferred
    assert idx["local_path"].iloc[1] == tmp_path / "2020" / "33N" / "a-0000000000-0000000000.tiff"
    poly = idx["geometry"].iloc[1]
    lon_min, _, lon_max, _ = poly.bounds
    assert idx["wgs84_west"].iloc[1] < 12.0  # the tile crosses the zone edge ...
    assert lon_min == pytest.approx(12.0)  # ... and its footprint is clipped to the zone
    assert shapely.contains_xy(poly, 12.02, 45.06)
    assert not shapely.contains_xy(poly, 11.99, 45.06)

    # Deterministic: same tiles → byte-identical index files.
    before = (csv_path.read_bytes(), pq_path.read_bytes())
    write_aef_index(tmp_path)
    assert (csv_path.read_bytes(), pq_path.read_bytes()) == before

    pq_path.unlink()
    idx_csv = read_aef_index(tmp_path)
    assert idx_csv["geometry"].tolist() == [None, None, None]


def test_missing_index_and_empty_root(tmp_path):
    with pytest.raises(SarvlmError, match="no aef_index"):
        read_aef_index(tmp_path)
    with pytest.raises(SarvlmError, match="no AEF tiles"):
        write_aef_index(tmp_path)


def test_southern_hemisphere_tile_footprint(tmp_path):
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 32733, always_xy=True).transform(15.0, -30.0)
    write_aef_tile(tmp_path, 2023, 33, "S", "s", _codes(32, 32), Affine(10.0, 0.0, x, 0.0, -10.0, y))
    write_aef_index(tmp_path)
    idx = read_aef_index(tmp_path)
    assert idx["crs"].tolist() == ["EPSG:32733"] and idx["utm_zone"].tolist() == ["33S"]
    w, s, e, n = idx["geometry"].iloc[0].bounds
    assert n == pytest.approx(-30.0, abs=1e-6) and s < n and w == pytest.approx(15.0, abs=1e-6) and e > w
