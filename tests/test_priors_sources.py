"""aef-zarr (aef-download layout) and earthengine (API faked at its boundary) sources."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import zarr

from sarvlm.core.errors import MissingDependency, SarvlmError
from sarvlm.io.aef_layout import AEF_NODATA, dequantize_aef
from sarvlm.priors import open_source, sample_grid

X0, Y0, RES = 10.0, 50.0, 0.0001  # top-left corner of the cut-out, ~10 m pixels
H, W = 60, 80


def _write_store(path, year, *, dequantize=False, mask=True, seed=0, year_attr=True):
    """A zarr group exactly as aef-download writes it (one per year)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-127, 128, size=(64, H, W), dtype=np.int8)
    codes[:, 10, 20] = AEF_NODATA
    group = zarr.open_group(str(path), mode="w")
    data = dequantize_aef(codes) if dequantize else codes
    emb = group.create_array("embeddings", shape=data.shape, chunks=(64, 32, 32), dtype=data.dtype)
    emb[:] = data
    x = X0 + RES * np.arange(W, dtype=np.float64)
    y = Y0 - RES * np.arange(H, dtype=np.float64)
    group.create_array("x", shape=x.shape, dtype=x.dtype)[:] = x
    group.create_array("y", shape=y.shape, dtype=y.dtype)[:] = y
    attrs = {"dequantized": dequantize, "mask_boundary": mask}
    if year_attr:
        attrs["year"] = year
    group.attrs.update(attrs)
    if mask:
        m = np.ones((H, W), dtype=np.uint8)
        m[:, W - 5 :] = 0  # outside the requested boundary
        group.create_array("mask", shape=m.shape, dtype=np.uint8)[:] = m
    return codes


def _pix_center(r, c):
    return X0 + RES * (c + 0.5), Y0 - RES * (r + 0.5)


@pytest.mark.parametrize("dequantize", [False, True])
def test_zarr_exact_vectors_nodata_and_mask(tmp_path, dequantize):
    codes = _write_store(tmp_path / "region_2021.zarr", 2021, dequantize=dequantize)
    src = open_source(f"aef-zarr:{tmp_path / 'region_2021.zarr'}")
    assert src.years == [2021] and src.prior_dim == 64
    rc = [(0, 0), (5, 7), (10, 20), (59, 70), (30, W - 2)]
    lon, lat = np.array([_pix_center(r, c) for r, c in rc]).T
    vec, ok = src.sample(lon, lat, 2021)
    assert ok.tolist() == [True, True, False, True, False]  # NoData, then outside the mask
    for k, (r, c) in enumerate(rc):
        if ok[k]:
            np.testing.assert_array_equal(vec[k], dequantize_aef(codes[:, r, c]))
        else:
            assert not vec[k].any()
    # Outside the store's extent.
    vec, ok = src.sample(np.array([X0 - 1.0]), np.array([Y0]), 2021)
    assert not ok.any()


def test_zarr_directory_of_years_and_nearest_year(tmp_path):
    c18 = _write_store(tmp_path / "r_2018.zarr", 2018, seed=1, year_attr=False)  # year from the name
    _write_store(tmp_path / "r_2022.zarr", 2022, seed=2)
    src = open_source(f"aef-zarr:{tmp_path}")
    assert src.years == [2018, 2022]
    bbox = (X0 + 0.0005, Y0 - 0.004, X0 + 0.006, Y0 - 0.0005)
    g = sample_grid(src, bbox, 2019, 3, 3, 100, 100)
    assert (g.year, g.year_requested) == (2018, 2019)
    cols = np.floor((g.lon - X0) / RES).astype(int)
    rows = np.floor((Y0 - g.lat) / RES).astype(int)
    np.testing.assert_array_equal(g.vectors, dequantize_aef(c18[:, rows, cols].T))


def test_zarr_bad_input(tmp_path):
    with pytest.raises(SarvlmError, match="no such zarr"):
        open_source(f"aef-zarr:{tmp_path / 'missing.zarr'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SarvlmError, match="no zarr group"):
        open_source(f"aef-zarr:{tmp_path / 'empty'}")
    group = zarr.open_group(str(tmp_path / "bad.zarr"), mode="w")
    group.create_array("embeddings", shape=(64, 4, 4), dtype="int8")
    with pytest.raises(SarvlmError, match="no 'year' attribute"):
        open_source(f"aef-zarr:{tmp_path / 'bad.zarr'}")
    group.attrs["year"] = 2020
    with pytest.raises(SarvlmError, match="missing array"):
        open_source(f"aef-zarr:{tmp_path / 'bad.zarr'}")


# ----------------------------------------------------------------------------- Earth Engine


def _field(lon, lat, year):
    """What the fake Earth Engine serves: a smooth function of place and year."""
    b = np.arange(64)
    return np.sin(lon * 7 + b) * 0.5 + np.cos(lat * 3 - b) * 0.3 + (year - 2017) * 0.01


def _fake_ee(years=(2017, 2018, 2019, 2020), masked_lon_above=None, fail_init=False):
    ee = types.ModuleType("ee")
    calls = {"init": [], "sample": []}

    class EEException(Exception):
        pass

    class _Info:
        def __init__(self, value):
            self.value = value

        def getInfo(self):  # noqa: N802 - Earth Engine's name
            return self.value

    class _Point:
        def __init__(self, coords):
            self.coords = coords

    Geometry = types.SimpleNamespace(Point=_Point)

    class Feature:
        def __init__(self, geom, props):
            self.geom, self.props = geom, props

    class FeatureCollection:
        def __init__(self, feats):
            self.feats = feats

    class Image:
        def __init__(self, year):
            self.year = year

        def select(self, bands):
            assert list(bands) == [f"A{i:02d}" for i in range(64)]
            return self

        def sampleRegions(self, collection, properties, scale, geometries):  # noqa: N802
            calls["sample"].append((self.year, len(collection.feats), scale))
            out = []
            for f in collection.feats:
                lon, lat = f.geom.coords
                if masked_lon_above is not None and lon > masked_lon_above:
                    continue  # masked pixels are dropped by sampleRegions
                vals = _field(lon, lat, self.year)
                props = {f"A{i:02d}": float(v) for i, v in enumerate(vals)}
                props.update({k: f.props[k] for k in properties})
                out.append({"type": "Feature", "geometry": None, "properties": props})
            return _Info({"type": "FeatureCollection", "features": out})

    class ImageCollection:
        def __init__(self, cid, year=None):
            assert cid == "GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL"
            self.cid, self.year = cid, year

        def aggregate_array(self, prop):
            assert prop == "system:time_start"
            import datetime as dt

            return _Info([int(dt.datetime(y, 1, 1, tzinfo=dt.UTC).timestamp() * 1000) for y in years])

        def filterDate(self, start, end):  # noqa: N802
            assert end == f"{int(start[:4]) + 1}-01-01"
            return ImageCollection(self.cid, int(start[:4]))

        def mosaic(self):
            return Image(self.year)

    def Initialize(project=None):  # noqa: N802
        if fail_init:
            raise EEException(
                "Please authorize access to your Earth Engine account by running\n\nearthengine authenticate"
            )
        calls["init"].append(project)

    ee.EEException = EEException
    ee.Geometry = Geometry
    ee.Feature = Feature
    ee.FeatureCollection = FeatureCollection
    ee.ImageCollection = ImageCollection
    ee.Initialize = Initialize
    return ee, calls


def test_earthengine_sampling_with_faked_api(monkeypatch):
    ee, calls = _fake_ee(masked_lon_above=12.009)
    monkeypatch.setitem(sys.modules, "ee", ee)
    src = open_source("earthengine:my-project")
    assert calls["init"] == ["my-project"] and src.years == [2017, 2018, 2019, 2020]
    assert src.spec == "earthengine:my-project"
    g = sample_grid(src, (12.0, 41.0, 12.01, 41.01), 2023, 3, 2, 64, 64)
    assert (g.year, g.year_requested) == (2020, 2023)
    assert calls["sample"] == [(2020, 6, 10.0)]
    assert g.valid.tolist() == [True, True, False, True, True, False]
    for s in np.flatnonzero(g.valid):
        np.testing.assert_allclose(g.vectors[s], _field(g.lon[s], g.lat[s], 2020), rtol=1e-6)
    assert not g.vectors[~g.valid].any()


def test_earthengine_missing_and_unauthenticated(monkeypatch):
    monkeypatch.setitem(sys.modules, "ee", None)  # import ee → ImportError
    with pytest.raises(MissingDependency, match=r"pip install -e '\.\[earthengine\]'") as missing:
        open_source("earthengine")
    assert missing.value.extra == "earthengine" and missing.value.package == "earthengine-api"
    ee, _ = _fake_ee(fail_init=True)
    monkeypatch.setitem(sys.modules, "ee", ee)
    with pytest.raises(SarvlmError, match="earthengine authenticate") as info:
        open_source("earthengine")
    assert "\n" not in str(info.value)
