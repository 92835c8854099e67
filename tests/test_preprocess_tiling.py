"""SRC tiling: equal ground extent per tile, per-tile georeference, objects clipped/dropped, pixel mode."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod

from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import GeoRef, ObjectAnnotation, SampleRecord
from sarvlm.io.georef import pixel_to_lonlat
from sarvlm.io.raster import open_raster, write_raster
from sarvlm.preprocess.tiling import PixelModeWarning, TileSpec, clip_objects, plan_tiles, read_tile, tile_record


def _utm(res: float) -> GeoRef:
    return GeoRef(crs="EPSG:32650", transform=[res, 0.0, 400000.0, 0.0, -res, 3500000.0])


def _ground_width_m(georef: GeoRef, width: int, height: int) -> float:
    lon, lat = pixel_to_lonlat(georef, [0, width], [height / 2, height / 2])
    return Geod(ellps="WGS84").inv(lon[0], lat[0], lon[1], lat[1])[2]


@pytest.mark.parametrize("res, expected_px", [(0.2, 5000), (1.0, 1000), (2.5, 400)])
def test_tile_pixels_follow_spacing(res, expected_px):
    plan = plan_tiles(12000, 12000, 1000.0, georef=_utm(res))
    tile = plan.tiles[0]
    assert tile.src_width == tile.src_height == expected_px  # projected metres: the nominal resolution
    assert _ground_width_m(_utm(res), tile.src_width, tile.src_height) == pytest.approx(1000.0, rel=1e-3)


def test_anisotropic_pixels_and_edges():
    georef = GeoRef(crs="EPSG:32633", transform=[2.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0])
    plan = plan_tiles(1100, 230, 200.0, georef=georef)
    assert {(t.src_width, t.src_height) for t in plan.tiles} == {(100, 20)}
    assert [t.col_off for t in plan.tiles if t.row == 0][-1] == 1000  # flush with the edge ("shift")
    assert [t.row_off for t in plan.tiles if t.col == 0][-1] == 210
    drop = plan_tiles(1150, 230, 200.0, georef=georef, edge="drop")
    assert max(t.col_off for t in drop.tiles) == 1000 and len(drop) == 11 * 11
    assert len(plan_tiles(50, 50, 200.0, georef=georef)) == 0


def test_target_resolution_and_bbox_fallbacks():
    plan = plan_tiles(3000, 3000, 1000.0, georef=_utm(0.5), target_res_m=2.0)
    assert (plan.tiles[0].src_width, plan.tiles[0].width) == (2000, 500)
    assert plan.out_resolution_m == 2.0
    plan = plan_tiles(300, 300, 100.0, resolution_m=1.0)
    assert plan.tiles[0].src_width == 100 and not plan.pixel_mode
    with pytest.warns(PixelModeWarning, match="pixel mode"):
        plan = plan_tiles(300, 300, 100.0)
    assert plan.pixel_mode and plan.tiles[0].src_width == 100
    with pytest.raises(SarvlmError, match="tile_m"):
        plan_tiles(300, 300, 0.0)


def test_clip_objects_counts_and_scales():
    spec = TileSpec(row=0, col=1, col_off=100, row_off=0, src_width=100, src_height=100, width=50, height=50)
    objs = [
        ObjectAnnotation(category="ship", bbox=[110, 10, 130, 30]),  # inside
        ObjectAnnotation(category="ship", bbox=[90, 10, 130, 30]),  # 75% inside: clipped
        ObjectAnnotation(category="tank", bbox=[60, 10, 110, 30]),  # 20% inside: dropped
        ObjectAnnotation(category="car", bbox=[0, 0, 10, 10]),
    ]  # elsewhere
    kept, clipped, dropped = clip_objects(objs, spec, min_visible=0.5)
    assert [o.bbox for o in kept] == [[5.0, 5.0, 15.0, 15.0], [0.0, 5.0, 15.0, 15.0]]
    assert (clipped, dropped) == (1, 1)


def test_tiles_read_windows_with_their_georef(tmp_path):
    georef = _utm(1.0)
    img = np.arange(300 * 200, dtype=np.float32).reshape(200, 300)
    path = write_raster(tmp_path / "scene.tif", img, georef=georef)
    plan = plan_tiles(300, 200, 100.0, georef=georef, target_res_m=2.0)
    rec = SampleRecord(
        id="s",
        image="scene.tif",
        width=300,
        height=200,
        georef=georef,
        resolution_m=1.0,
        objects=[ObjectAnnotation(category="ship", bbox=[120, 20, 140, 40])],
        captions=[{"text": "whole scene"}],
    )
    with open_raster(path) as ds:
        spec = next(t for t in plan.tiles if (t.row, t.col) == (0, 1))
        data, crop = read_tile(ds, spec)
        assert data.shape == (1, 50, 50) and crop == (0, 0, 0, 0)
        # area-average resampling: each output pixel is the mean of a 2x2 block
        np.testing.assert_allclose(data[0, 0, 0], img[0:2, 100:102].mean(), rtol=1e-6)
        halo_data, halo_crop = read_tile(ds, spec, halo=3)
        assert halo_crop == (0, 3, 3, 3) and halo_data.shape == (1, 53, 56)
    out = tile_record(rec, spec, plan, "images/t.tif", georef)
    assert out.id == "s_r000c001" and (out.width, out.height) == (50, 50) and out.resolution_m == 2.0
    assert out.objects[0].bbox == [10.0, 10.0, 20.0, 20.0] and out.captions == []
    lon, lat = pixel_to_lonlat(out.georef, [0, 50], [0, 50])
    plon, plat = pixel_to_lonlat(georef, [100, 200], [0, 100])
    np.testing.assert_allclose([lon, lat], [plon, plat], atol=1e-9)
    assert out.meta["tile"]["source_id"] == "s"


def test_complex_tiles_are_multilooked_incoherently(tmp_path):
    """Shrinking an SLC tile averages intensity |z|^2, not complex values (which would cancel)."""
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(1, 40, 60)) + 1j * rng.normal(size=(1, 40, 60))).astype(np.complex64)
    path = write_raster(tmp_path / "slc.tif", z)
    spec = TileSpec(row=0, col=0, col_off=20, row_off=0, src_width=40, src_height=40, width=20, height=20)
    with open_raster(path) as ds:
        data, _ = read_tile(ds, spec)
    expected = (np.abs(z[0, :, 20:60]) ** 2).reshape(20, 2, 20, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(np.abs(data[0]) ** 2, expected, rtol=1e-5)
