"""PNG/JPEG pixels through Pillow (sarvlm.io.pillow_image): the arrays GDAL gave, dtype included, and
readable on a machine without rasterio (a GPU box); GeoTIFF still needs rasterio, said in one line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sarvlm.core.errors import SarvlmError
from sarvlm.io.raster import read_raster, write_raster

RNG = np.random.default_rng(0)
G8 = RNG.integers(0, 256, (20, 30), dtype=np.uint8)
RGB = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)


def _make(path: Path) -> Path:
    name = path.name
    if name == "grey8.png":
        Image.fromarray(G8).save(path)
    elif name == "rgb8.png":
        Image.fromarray(RGB).save(path)
    elif name == "rgba8.png":
        Image.fromarray(np.dstack([RGB, G8])).save(path)
    elif name == "grey_alpha8.png":
        Image.fromarray(np.dstack([G8, G8[::-1]]), mode="LA").save(path)
    elif name == "palette.png":
        Image.fromarray(RGB).quantize(16).save(path)
    elif name == "palette2bit.png":
        Image.fromarray(RGB).quantize(4).save(path, bits=2)
    elif name == "bilevel.png":
        Image.fromarray(G8 > 128).save(path)
    elif name == "grey16.png":
        Image.fromarray(RNG.integers(0, 65536, (20, 30), dtype=np.uint16)).save(path)
    elif name == "gdal_grey8.png":  # what sarvlm itself writes (land-cover masks, quick-looks)
        write_raster(path, G8)
    elif name == "rgb16.png":  # Pillow would cut this to 8 bits: read by GDAL
        write_raster(path, RNG.integers(0, 65536, (3, 20, 30), dtype=np.uint16))
    elif name == "grey.jpg":
        Image.fromarray(G8).save(path, quality=90)
    else:
        raise AssertionError(name)
    return path


def _gdal(path: Path, **kwargs) -> np.ndarray:
    import rasterio

    with warnings.catch_warnings(), rasterio.open(path) as ds:
        warnings.simplefilter("ignore")  # not georeferenced
        return ds.read(**kwargs)


KINDS = [
    "grey8.png",
    "gdal_grey8.png",
    "rgb8.png",
    "rgba8.png",
    "grey_alpha8.png",
    "palette.png",
    "palette2bit.png",
    "bilevel.png",
    "grey16.png",
    "rgb16.png",
    "grey.jpg",
]


@pytest.mark.parametrize("name", KINDS)
def test_same_pixels_and_dtype_as_gdal(name, tmp_path):
    path = _make(tmp_path / name)
    want = _gdal(path)
    got = read_raster(path)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    # band selection and windows behave as on the GDAL path
    from rasterio.windows import Window

    np.testing.assert_array_equal(read_raster(path, bands=1), _gdal(path, indexes=[1]))
    np.testing.assert_array_equal(read_raster(path, window=(3, 2, 10, 7)), _gdal(path, window=Window(3, 2, 10, 7)))
    np.testing.assert_array_equal(read_raster(path, window=Window(1, 1, 4, 4)), _gdal(path, window=Window(1, 1, 4, 4)))
    assert read_raster(path, out_dtype="float32").dtype == np.float32


def test_rgb_jpeg_matches_pillow_and_the_model_loader(tmp_path):
    """RGB JPEG: libjpeg builds differ in chroma upsampling (GDAL's gave up to ±100 on noise): read_raster
    now decodes like the VLM image loader always did, so both paths see the same pixels."""
    from sarvlm.models.processor import load_image

    path = tmp_path / "rgb.jpg"
    Image.fromarray(RGB).save(path, quality=90)
    got = read_raster(path)
    assert got.dtype == np.uint8 and got.shape == (3, 20, 30)
    np.testing.assert_array_equal(np.moveaxis(got, 0, -1), np.asarray(load_image(path)))


def test_bad_files_fail_in_one_line_naming_the_file(tmp_path):
    png = _make(tmp_path / "grey8.png")
    cut = tmp_path / "cut.png"
    cut.write_bytes(png.read_bytes()[:-40])
    with pytest.raises(SarvlmError, match=r"cut\.png: .*(corrupt|truncated|not a readable)"):
        read_raster(cut)
    with pytest.raises(SarvlmError, match=r"grey8\.png: band 2 does not exist"):
        read_raster(png, bands=2)
    with pytest.raises(SarvlmError, match=r"lies outside the 30x20 image"):
        read_raster(png, window=(25, 0, 10, 5))
    from sarvlm.io.raster_policy import raster_policy

    with raster_policy(max_image_bytes=100), pytest.raises(SarvlmError, match="over the image size limit"):
        read_raster(png)  # the limit holds on the Pillow path too, before decoding


NO_RASTERIO = textwrap.dedent(
    """
    import sys
    for name in [m for m in sys.modules if m == "rasterio" or m.startswith("rasterio.")] + ["rasterio"]:
        sys.modules[name] = None  # `import rasterio` now fails, as on a machine without it
    import numpy as np
    from sarvlm.core.errors import SarvlmError
    from sarvlm.io.raster import read_raster
    from sarvlm.models.processor import load_image
    from sarvlm.foundation.transforms import load_sar_image
    png, jpg, tif = sys.argv[1:4]
    a = read_raster(png)
    print("png", a.dtype, a.shape, int(a.sum()))
    print("jpg", read_raster(jpg).shape, load_image(jpg).size, load_image(png).mode)
    print("klip", tuple(load_sar_image(png, 16).shape))
    try:
        read_raster(tif)
    except SarvlmError as exc:
        print("tif", exc)
    assert "rasterio" not in {m for m, v in sys.modules.items() if v is not None}
    """
)


def test_png_and_jpeg_read_without_rasterio_geotiff_says_what_it_needs(tmp_path):
    png = _make(tmp_path / "grey8.png")
    jpg = _make(tmp_path / "grey.jpg")
    tif = tmp_path / "scene.tif"
    write_raster(tif, G8.astype(np.float32))
    src = str(Path(__file__).resolve().parents[1] / "src")
    res = subprocess.run(
        [sys.executable, "-c", NO_RASTERIO, str(png), str(jpg), str(tif)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert lines[0] == f"png uint8 (1, 20, 30) {int(G8.sum())}"
    assert lines[1] == "jpg (1, 20, 30) (30, 20) L"
    assert lines[2] == "klip (1, 16, 16)"
    assert lines[3].startswith(f"tif {tif}: reading this file needs rasterio") and "pip install rasterio" in lines[3]
