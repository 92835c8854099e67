"""Raster I/O: round trips keep pixels, georeference and tags; bad files give one-line errors; bytes are stable."""

from __future__ import annotations

import numpy as np
import pytest

from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import GeoRef
from sarvlm.io.raster import open_raster_writer, raster_info, read_raster, write_raster

UTM = GeoRef(crs="EPSG:32650", transform=[2.0, 0.0, 500000.0, 0.0, -2.0, 3500000.0])


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_geotiff_roundtrip_keeps_pixels_georef_tags(tmp_path, dtype):
    rng = np.random.default_rng(0)
    arr = (rng.random((2, 40, 30)) * 200).astype(dtype)
    path = write_raster(tmp_path / "a.tif", arr, georef=UTM, tags={"sensor": "S1", "pol": "VV"}, nodata=0)
    info = raster_info(path)
    assert (info.width, info.height, info.count, info.dtype) == (30, 40, 2, dtype)
    assert info.georef == UTM
    assert info.tags["sensor"] == "S1" and info.tags["pol"] == "VV"
    assert info.nodata == 0
    np.testing.assert_array_equal(read_raster(path), arr)
    np.testing.assert_array_equal(read_raster(path, bands=[2], window=(5, 10, 7, 3)), arr[1:2, 10:13, 5:12])


def test_single_band_2d_input_and_out_dtype(tmp_path):
    arr = np.arange(600, dtype=np.uint16).reshape(20, 30)
    path = write_raster(tmp_path / "b.tif", arr)
    out = read_raster(path, out_dtype="float32")
    assert out.shape == (1, 20, 30) and out.dtype == np.float32
    assert raster_info(path).georef is None


def test_gcp_and_bbox_georefs_are_written(tmp_path):
    gcps = GeoRef(gcps=[dict(row=r, col=c, x=120 + c * 1e-4, y=31 - r * 1e-4) for r in (0, 20) for c in (0, 30)])
    info = raster_info(write_raster(tmp_path / "g.tif", np.ones((20, 30), np.float32), georef=gcps))
    assert info.georef.gcps is not None and len(info.georef.gcps) == 4
    assert info.georef.gcp_crs == "EPSG:4326"
    box = GeoRef(bbox_wgs84=[10.0, 50.0, 10.3, 50.2])
    info = raster_info(write_raster(tmp_path / "bb.tif", np.ones((20, 30), np.float32), georef=box))
    assert info.georef.crs == "EPSG:4326"
    np.testing.assert_allclose(info.georef.transform, [0.01, 0, 10.0, 0, -0.01, 50.2])


def test_complex_slc_to_intensity_and_amplitude(tmp_path):
    z = (np.arange(12, dtype=np.float32) + 1j * 2).reshape(3, 4).astype(np.complex64)
    path = write_raster(tmp_path / "slc.tif", z)
    assert raster_info(path).is_complex
    np.testing.assert_allclose(read_raster(path)[0], np.abs(z) ** 2, rtol=1e-6)
    np.testing.assert_allclose(read_raster(path, complex_mode="amplitude")[0], np.abs(z), rtol=1e-6)
    assert read_raster(path, complex_mode="complex").dtype == np.complex64


def test_png_and_jpeg(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (3, 16, 24), dtype=np.uint8)
    png = write_raster(tmp_path / "x.png", rgb)
    np.testing.assert_array_equal(read_raster(png), rgb)
    info = raster_info(png)
    assert (info.width, info.height, info.count, info.driver) == (24, 16, 3, "PNG")
    jpg = write_raster(tmp_path / "x.jpg", rgb[0])
    assert raster_info(jpg).driver == "JPEG"
    assert not list(tmp_path.glob("*.aux.xml")), "no side-car files"
    with pytest.raises(SarvlmError, match="quantise first"):
        write_raster(tmp_path / "f.png", rgb.astype(np.float32))


def test_same_input_same_bytes(tmp_path):
    arr = np.random.default_rng(2).random((600, 520)).astype(np.float32)
    a = write_raster(tmp_path / "a.tif", arr, georef=UTM, tags={"k": 1}).read_bytes()
    b = write_raster(tmp_path / "b.tif", arr, georef=UTM, tags={"k": 1}).read_bytes()
    assert a == b
    p1 = write_raster(tmp_path / "a.png", (arr * 255).astype(np.uint8)).read_bytes()
    p2 = write_raster(tmp_path / "b.png", (arr * 255).astype(np.uint8)).read_bytes()
    assert p1 == p2


def test_streaming_writer_windowed(tmp_path):
    from rasterio.windows import Window

    path = tmp_path / "big.tif"
    with open_raster_writer(path, 600, 520, georef=UTM) as ds:
        for row in range(0, 520, 256):
            h = min(256, 520 - row)
            ds.write(np.full((1, h, 600), row, np.float32), window=Window(0, row, 600, h))
        assert not path.exists(), "appears only when complete"
    assert path.exists()
    info = raster_info(path)
    assert info.block_shape == (256, 256)
    assert read_raster(path, window=(0, 300, 2, 2))[0, 0, 0] == 256


def test_bad_files_give_one_line_errors(tmp_path):
    with pytest.raises(SarvlmError, match="no such file"):
        raster_info(tmp_path / "missing.tif")
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(SarvlmError, match="empty file"):
        raster_info(tmp_path / "empty.tif")
    (tmp_path / "junk.tif").write_bytes(b"this is not a tiff at all" * 10)
    with pytest.raises(SarvlmError, match="not a readable raster"):
        raster_info(tmp_path / "junk.tif")
    good = write_raster(tmp_path / "good.tif", np.random.default_rng(3).random((300, 300)).astype(np.float32))
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 100):
        bad = tmp_path / f"trunc{cut}.tif"
        bad.write_bytes(data[:cut])
        with pytest.raises(SarvlmError) as exc:
            raster_info(bad)
        assert str(bad) in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(SarvlmError, match="band 3 does not exist"):
        read_raster(good, bands=[3])
    with pytest.raises(SarvlmError, match="outside"):
        read_raster(good, window=(290, 0, 20, 5))
    with pytest.raises(SarvlmError, match="unsupported output format"):
        write_raster(tmp_path / "x.bmp2", np.ones((2, 2)))
    with pytest.raises(SarvlmError, match="shape"):
        write_raster(tmp_path / "z.tif", np.ones((0, 4), np.float32))
    assert not (tmp_path / "z.tif").exists()
