"""Anchor grid + aef-cog source: exact vectors at nodes, positions, NoData, zones, years, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer

from _priors_world import BBOX, NODATA_LONLAT, build_tiles, expected_codes
from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import GeoRef
from sarvlm.io.aef_layout import dequantize_aef
from sarvlm.priors import PriorGrid, open_source, sample_grid
from sarvlm.priors.anchor_grid import anchor_nodes
from sarvlm.priors.sources.base import choose_year


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("aef")
    tiles = build_tiles(root)
    return root, tiles


def test_anchor_nodes_follow_eq2_row_major():
    lon, lat = anchor_nodes((10.0, 40.0, 12.0, 41.0), 3, 2)
    np.testing.assert_allclose(lon, [10, 11, 12, 10, 11, 12])
    np.testing.assert_allclose(lat, [40, 40, 40, 41, 41, 41])
    lon1, lat1 = anchor_nodes((10.0, 40.0, 12.0, 41.0), 1, 1)
    assert lon1.tolist() == [11.0] and lat1.tolist() == [40.5]


def test_exact_vectors_across_two_zones_and_a_bottom_up_tile(world):
    root, tiles = world
    src = open_source(f"aef-cog:{root}")
    grid = sample_grid(src, BBOX, 2020, 5, 3, 400, 200)
    assert isinstance(grid, PriorGrid) and grid.year == 2020 and grid.year_requested == 2020
    assert grid.vectors.shape == (15, 64) and grid.vectors.dtype == np.float32
    west = grid.lon <= 6.0  # lon 6.0 sits on both footprints: the first tile in path order (31N) wins
    exp = np.zeros((15, 64), np.int8)
    exp[west] = expected_codes(tiles["a2020"], grid.lon[west], grid.lat[west])
    exp[~west] = expected_codes(tiles["b2020"], grid.lon[~west], grid.lat[~west])
    nodata = (np.isclose(grid.lon, NODATA_LONLAT[0])) & (np.isclose(grid.lat, NODATA_LONLAT[1]))
    assert nodata.sum() == 1 and (exp[nodata] == -128).all()
    assert grid.valid.tolist() == (~nodata).tolist()
    np.testing.assert_array_equal(grid.vectors[~nodata], dequantize_aef(exp[~nodata]))
    assert (grid.vectors[nodata] == 0).all()
    assert grid.num_valid == 14


def test_bottom_up_tile_matches_its_north_up_codes(world):
    # Independent of rasterio's sampler: the logical (north-up) array the tile was written from.
    from _priors_world import PIX, _origin, codes

    root, _ = world
    src = open_source(f"aef-cog:{root}")
    lon, lat = np.array([6.01, 6.015]), np.array([45.005, 45.015])
    vec, ok = src.sample(lon, lat, 2020)
    x0, y0 = _origin(32632, 5.995, 45.03)
    x, y = Transformer.from_crs(4326, 32632, always_xy=True).transform(lon, lat)
    cols, rows = ((x - x0) // PIX).astype(int), ((y0 - y) // PIX).astype(int)
    assert ok.all()
    np.testing.assert_array_equal(vec, dequantize_aef(codes(2)[:, rows, cols].T))


def test_positions_with_only_a_wgs84_box(world):
    root, _ = world
    src = open_source(f"aef-cog:{root}")
    grid = sample_grid(src, None, 2020, 5, 3, 400, 200, georef=GeoRef(bbox_wgs84=list(BBOX)))
    lon_min, lat_min, lon_max, lat_max = BBOX
    np.testing.assert_allclose(grid.x, (grid.lon - lon_min) / (lon_max - lon_min) * 400)
    np.testing.assert_allclose(grid.y, (lat_max - grid.lat) / (lat_max - lat_min) * 200)
    np.testing.assert_allclose(grid.positions[0], [1.0, 0.0])  # node 0: south-west corner
    np.testing.assert_allclose(grid.positions[-1], [0.0, 1.0])  # last node: north-east corner
    np.testing.assert_allclose(grid.positions[7], [0.5, 0.5], atol=1e-6)  # centre node of 5x3
    assert grid.positions.dtype == np.float32


def test_positions_through_a_utm_georef_and_outside_nodes_invalid(world):
    root, _ = world
    src = open_source(f"aef-cog:{root}")
    # A 200x100 px image at 10 m in UTM 31N whose box is smaller than the requested bbox.
    tr = Transformer.from_crs(4326, 32631, always_xy=True)
    ox, oy = tr.transform(5.985, 45.015)
    georef = GeoRef(crs="EPSG:32631", transform=[10.0, 0.0, ox, 0.0, -10.0, oy])
    grid = sample_grid(src, BBOX, 2020, 5, 3, 200, 100, georef=georef)
    x, y = tr.transform(grid.lon, grid.lat)
    np.testing.assert_allclose(grid.x, (x - ox) / 10.0, atol=1e-6)
    np.testing.assert_allclose(grid.y, (oy - y) / 10.0, atol=1e-6)
    inside = (grid.x >= 0) & (grid.x <= 200) & (grid.y >= 0) & (grid.y <= 100)
    assert 0 < inside.sum() < 15
    assert not grid.valid[~inside].any()
    assert (grid.vectors[~inside] == 0).all()
    # anchors="bbox": without a box, the footprint is the lon/lat extent of the image edges. UTM
    # grid convergence (~2° here) tilts the image inside that box, so edge nodes land a few pixels
    # outside the image: valid within the default 5 % edge tolerance, invalid with none.
    grid2 = sample_grid(src, None, 2020, 4, 4, 200, 100, georef=georef, anchors="bbox")
    assert grid2.lon.min() == pytest.approx(5.985, abs=1e-3) and grid2.lat.max() == pytest.approx(45.015, abs=1e-3)
    strict = (grid2.x >= 0) & (grid2.x <= 200) & (grid2.y >= 0) & (grid2.y <= 100)
    tol = (grid2.x >= -10) & (grid2.x <= 210) & (grid2.y >= -5) & (grid2.y <= 105)
    assert strict.sum() == 4 and tol.sum() == 14  # only two opposite box corners stay outside
    assert grid2.valid.tolist() == tol.tolist()
    assert ((grid2.positions >= 0) & (grid2.positions <= 1)).all()
    grid3 = sample_grid(src, None, 2020, 4, 4, 200, 100, georef=georef, edge_tolerance=0.0, anchors="bbox")
    assert grid3.valid.tolist() == strict.tolist()
    # the default for an affine/GCP georeference: nodes on the image's pixel grid, all on the image
    grid4 = sample_grid(src, None, 2020, 4, 4, 200, 100, georef=georef, edge_tolerance=0.0)
    assert grid4.valid.all() and grid4.x.tolist() == [0.0, 200 / 3, 400 / 3, 200.0] * 4
    assert grid4.y[:4].tolist() == [100.0] * 4 and grid4.y[-4:].tolist() == [0.0] * 4  # south row first
    x4, y4 = tr.transform(grid4.lon, grid4.lat)
    np.testing.assert_allclose(grid4.x, (x4 - ox) / 10.0, atol=1e-6)
    np.testing.assert_allclose(grid4.y, (oy - y4) / 10.0, atol=1e-6)


def test_year_policy_nearest_exact_and_none(world):
    root, tiles = world
    src = open_source(f"aef-cog:{root}")
    west_bbox = (5.98, 45.00, 5.995, 45.02)  # zone 31 only: 2020 and 2022 exist
    g = sample_grid(src, west_bbox, 2021, 2, 2, 10, 10)
    assert (g.year, g.year_requested) == (2020, 2021)  # tie → earlier
    g = sample_grid(src, west_bbox, 2025, 2, 2, 10, 10)
    assert g.year == 2022
    np.testing.assert_array_equal(
        g.vectors[g.valid], dequantize_aef(expected_codes(tiles["a2022"], g.lon, g.lat))[g.valid]
    )
    g = sample_grid(src, west_bbox, 2025, 2, 2, 10, 10, year_policy="exact")
    assert g.year is None and not g.valid.any() and not g.vectors.any()
    g = sample_grid(src, west_bbox, None, 2, 2, 10, 10)
    assert g.year is None and not g.valid.any()
    # East of the edge only 2020 exists.
    g = sample_grid(src, (6.005, 45.0, 6.02, 45.02), 2023, 2, 2, 10, 10)
    assert g.year == 2020 and g.valid.all()
    # Nowhere near any tile: no data, all invalid, no error.
    g = sample_grid(src, (100.0, 10.0, 100.1, 10.1), 2020, 2, 2, 10, 10)
    assert g.year is None and not g.valid.any()
    assert choose_year(2019, [2017, 2021]) == 2017 and choose_year(2020, []) is None


def test_csv_index_without_polygons_gives_same_vectors(tmp_path, world):
    root, _ = world
    csv_root = tmp_path / "aef"
    build_tiles(csv_root, index="csv")
    a = sample_grid(open_source(f"aef-cog:{root}"), BBOX, 2020, 5, 3, 400, 200)
    b = sample_grid(open_source(f"aef-cog:{csv_root}"), BBOX, 2020, 5, 3, 400, 200)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    np.testing.assert_array_equal(a.valid, b.valid)


def test_block_cache_windows_and_strips_agree(world):
    root, _ = world
    cached = open_source(f"aef-cog:{root}")  # decoded-block LRU (default)
    window = open_source(f"aef-cog:{root}", block_cache_mb=0, max_window_pixels=10**9)  # one window per tile
    strips = open_source(f"aef-cog:{root}", block_cache_mb=0, max_window_pixels=4)  # strips around node rows
    tiny = open_source(f"aef-cog:{root}", block_cache_mb=0.001)  # evicts on every block
    a = sample_grid(cached, BBOX, 2020, 8, 8, 400, 200)
    for other in (window, strips, tiny):
        b = sample_grid(other, BBOX, 2020, 8, 8, 400, 200)
        np.testing.assert_array_equal(a.vectors, b.vectors)
        np.testing.assert_array_equal(a.valid, b.valid)
    reads = cached.block_reads
    sample_grid(cached, BBOX, 2020, 8, 8, 400, 200)
    assert reads > 0 and cached.block_reads == reads  # second pass served from the cache
    assert len(tiny._blocks) == 1


@pytest.mark.parametrize(
    ("bbox", "match"),
    [
        ((45.0, 5.98, 45.02, 6.02), None),  # swapped but in range: no data, no error
        ((5.98, 100.0, 6.02, 101.0), "lat/lon swapped"),
        ((179.9, 10.0, -179.9, 10.1), "antimeridian"),
        ((10.0, 89.0, 11.0, 90.0), "pole"),
        ((10.0, 40.0, 11.0), "4 numbers"),
    ],
)
def test_bad_footprints(world, bbox, match):
    root, _ = world
    src = open_source(f"aef-cog:{root}")
    if match is None:
        assert not sample_grid(src, bbox, 2020, 2, 2, 10, 10).valid.any()
    else:
        with pytest.raises(SarvlmError, match=match):
            sample_grid(src, bbox, 2020, 2, 2, 10, 10)


def test_georef_footprint_across_antimeridian_rejected(world):
    root, _ = world
    src = open_source(f"aef-cog:{root}")
    # UTM zone 60N image extending east past 180°.
    tr = Transformer.from_crs(4326, 32660, always_xy=True)
    ox, oy = tr.transform(179.9, 50.0)
    georef = GeoRef(crs="EPSG:32660", transform=[100.0, 0.0, ox, 0.0, -100.0, oy])
    with pytest.raises(SarvlmError, match="antimeridian"):
        sample_grid(src, None, 2020, 2, 2, 300, 100, georef=georef)
    # A polar stereographic image centred on the north pole.
    polar = GeoRef(crs="EPSG:3413", transform=[1000.0, 0.0, -50000.0, 0.0, -1000.0, 50000.0])
    with pytest.raises(SarvlmError, match="antimeridian|pole"):
        sample_grid(src, None, 2020, 2, 2, 100, 100, georef=polar)


def test_bad_sources(tmp_path, world):
    root, tiles = world
    with pytest.raises(SarvlmError, match="no aef_index"):
        open_source(f"aef-cog:{tmp_path}")
    with pytest.raises(SarvlmError, match="no such directory"):
        open_source(f"aef-cog:{tmp_path / 'nope'}")
    with pytest.raises(SarvlmError, match="unknown kind"):
        open_source("s3:/bucket")
    # Index names a tile the directory lacks.
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(root, partial)
    (partial / tiles["b2020"].relative_to(root)).unlink()
    with pytest.raises(SarvlmError, match="missing"):
        open_source(f"aef-cog:{partial}")
    src = open_source(f"aef-cog:{partial}", missing_tiles="skip")
    g = sample_grid(src, (6.005, 45.0, 6.02, 45.02), 2020, 2, 2, 10, 10)
    assert src.missing_tiles_skipped == 1 and not g.valid.any()
    # Unsupported CRS in the index.
    import pandas as pd

    bad = tmp_path / "badcrs"
    shutil.copytree(root, bad)
    (bad / "aef_index.parquet").unlink()
    frame = pd.read_csv(bad / "aef_index.csv")
    frame.loc[0, "crs"] = "EPSG:999999"
    frame.to_csv(bad / "aef_index.csv", index=False)
    with pytest.raises(SarvlmError, match="unsupported crs"):
        open_source(f"aef-cog:{bad}")


def test_grid_across_two_tiles_of_one_zone(tmp_path):
    """Adjacent tiles in one zone (side by side, one stored bottom-up): each node from its tile."""
    from rasterio.transform import Affine

    from sarvlm.io.aef_layout import write_aef_index, write_aef_tile

    rng = np.random.default_rng(5)
    left, right = (rng.integers(-127, 128, size=(64, 48, 48), dtype=np.int8) for _ in range(2))
    x0, y0 = 500000.0, 5000000.0
    write_aef_tile(tmp_path, 2019, 31, "N", "l", left, Affine(10, 0, x0, 0, -10, y0))
    write_aef_tile(tmp_path, 2019, 31, "N", "r", right, Affine(10, 0, x0 + 480, 0, -10, y0), bottom_up=True)
    write_aef_index(tmp_path)
    inv = Transformer.from_crs(32631, 4326, always_xy=True)
    lon0, lat0 = inv.transform(x0 + 15, y0 - 455)
    lon1, lat1 = inv.transform(x0 + 945, y0 - 15)
    g = sample_grid(open_source(f"aef-cog:{tmp_path}"), (lon0, lat0, lon1, lat1), 2019, 7, 5, 70, 50)
    assert g.valid.all()
    x, y = Transformer.from_crs(4326, 32631, always_xy=True).transform(g.lon, g.lat)
    col, row = ((x - x0) // 10).astype(int), ((y0 - y) // 10).astype(int)
    both = np.concatenate([left, right], axis=2)  # the north-up mosaic of the two tiles
    np.testing.assert_array_equal(g.vectors, dequantize_aef(both[:, row, col].T))
    assert (col < 48).any() and (col >= 48).any()


def test_corrupt_tile_is_a_one_line_error(tmp_path, world):
    import shutil

    root, tiles = world
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    tile = broken / tiles["a2020"].relative_to(root)
    tile.write_bytes(tile.read_bytes()[:5000])  # truncated download
    src = open_source(f"aef-cog:{broken}")
    with pytest.raises(SarvlmError) as info:
        sample_grid(src, BBOX, 2020, 3, 3, 10, 10)
    msg = str(info.value)
    assert str(tile) in msg and "\n" not in msg


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(
    lon0=st.floats(-179.0, 178.0),
    lat0=st.floats(-80.0, 79.0),
    dlon=st.floats(1e-4, 1.0),
    dlat=st.floats(1e-4, 1.0),
    n_lon=st.integers(2, 9),
    n_lat=st.integers(2, 9),
    w=st.integers(1, 4000),
    h=st.integers(1, 4000),
)
def test_box_only_positions_property(lon0, lat0, dlon, dlat, n_lon, n_lat, w, h):
    """North-up box: node (i, j) sits at x = i/(N_lon-1)·W, y = (1 - j/(N_lat-1))·H."""
    from sarvlm.priors.anchor_grid import node_pixels, normalised_positions

    bbox = (lon0, lat0, lon0 + dlon, lat0 + dlat)
    lon, lat = anchor_nodes(bbox, n_lon, n_lat)
    x, y = node_pixels(lon, lat, w, h, bbox)
    i = np.tile(np.arange(n_lon), n_lat)
    j = np.repeat(np.arange(n_lat), n_lon)
    np.testing.assert_allclose(x, i / (n_lon - 1) * w, atol=1e-6 * w)
    np.testing.assert_allclose(y, (1 - j / (n_lat - 1)) * h, atol=1e-6 * h)
    pos = normalised_positions(x, y, w, h)
    np.testing.assert_allclose(pos[:, 1], i / (n_lon - 1), atol=1e-5)
    np.testing.assert_allclose(pos[:, 0], 1 - j / (n_lat - 1), atol=1e-5)
