"""Reading and writing SAR rasters: GeoTIFF/COG, PNG and JPEG through rasterio (GDAL).

- :func:`raster_info` opens a file, checks it is readable (including its last data block, which
  catches truncated files) and reports size, bands, dtype, georeference, nodata and tags.
- :func:`read_raster` reads ``(bands, H, W)`` arrays, optionally a window of a larger-than-memory
  scene; complex SLC pixels become intensity ``|z|^2`` or amplitude ``|z|``.
- :func:`write_raster` writes ``(H, W)`` or ``(bands, H, W)`` arrays atomically (temp file + rename),
  with CRS + transform or GCPs and tags for GeoTIFF; the driver follows the suffix. The same array
  gives the same bytes.
- :func:`open_raster_writer` streams a large GeoTIFF window by window, also atomically.

Every problem with a user's file is a one-line :class:`~sarvlm.core.errors.SarvlmError` naming the file.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sarvlm.core.atomic import atomic_path
from sarvlm.core.errors import InputError, NotFoundError, SarvlmError
from sarvlm.core.record import GeoRef

ComplexMode = Literal["intensity", "amplitude", "complex"]
WindowLike = Any  # rasterio.windows.Window or (col_off, row_off, width, height)

_DRIVERS = {".tif": "GTiff", ".tiff": "GTiff", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
# PNG and JPEG hold only these sample types in GDAL.
_BYTE_ONLY = {"JPEG": ("uint8",), "PNG": ("uint8", "uint16")}
# GDAL options that keep files byte-stable and free of side-car files (.aux.xml).
# GDAL_CACHEMAX bounds the block cache (default 5% of RAM) so windowed reads of huge scenes stay small.
_ENV: dict[str, str | int] = {
    "GDAL_PAM_ENABLED": "NO",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_LOG_ERRORS": "OFF",
    "GDAL_CACHEMAX": 128,
}


@dataclass(frozen=True)
class RasterInfo:
    """What a raster file holds, without reading its pixels."""

    path: Path
    width: int
    height: int
    count: int
    dtype: str
    georef: GeoRef | None
    nodata: float | None
    tags: dict[str, str] = field(default_factory=dict)
    driver: str = ""
    band_descriptions: tuple[str | None, ...] = ()
    block_shape: tuple[int, int] = (0, 0)  # (rows, cols) of the first band's internal blocks

    @property
    def is_complex(self) -> bool:
        """True for complex (SLC) pixels."""
        return self.dtype.startswith("complex")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.count, self.height, self.width)


@contextlib.contextmanager
def _rasterio_env() -> Iterator[None]:
    """GDAL settings for byte-stable, side-car-free files; silence the expected
    'not georeferenced' warning (PNG/JPEG and pixel-mode images have no georeference)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings(), rasterio.Env(**_ENV):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def _check_file(path: Path) -> None:
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a raster file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")


def _reason(exc: Exception) -> str:
    """GDAL messages repeat the path; keep the first line and drop the path."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.replace("\n", " ")


@contextlib.contextmanager
def open_raster(path: str | Path) -> Iterator[Any]:
    """Open a raster read-only with rasterio; errors name the file. Yields the dataset."""
    import rasterio
    from rasterio.errors import RasterioError

    path = Path(path)
    _check_file(path)
    with _rasterio_env():
        try:
            ds = rasterio.open(path)
        except (RasterioError, OSError) as exc:
            raise InputError(f"{path}: not a readable raster ({_reason(exc)})") from None
        with ds:
            if ds.width <= 0 or ds.height <= 0 or ds.count <= 0:
                raise InputError(f"{path}: zero-size image ({ds.width}x{ds.height}, {ds.count} bands)")
            yield ds


def _probe_last_block(ds: Any, path: Path) -> None:
    """Read the last internal block of band 1: a truncated file fails here, cheaply."""
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    bh, bw = ds.block_shapes[0]
    bh, bw = max(1, min(bh, ds.height)), max(1, min(bw, ds.width))
    row = ((ds.height - 1) // bh) * bh
    col = ((ds.width - 1) // bw) * bw
    win = Window(col, row, min(bw, ds.width - col), min(bh, ds.height - row))
    try:
        ds.read(1, window=win)
    except (RasterioError, OSError) as exc:
        raise InputError(f"{path}: corrupt or truncated raster data ({_reason(exc)})") from None


def raster_info(path: str | Path) -> RasterInfo:
    """Describe a raster (GeoTIFF/COG, PNG, JPEG, anything GDAL reads).

    Raises :class:`SarvlmError` naming the file when it is missing, empty, not a raster,
    zero-size, or truncated/corrupt (its last data block cannot be decoded).
    """
    from sarvlm.io.georef import georef_from_rasterio

    path = Path(path)
    with open_raster(path) as ds:
        _probe_last_block(ds, path)
        try:
            georef = georef_from_rasterio(ds)
        except SarvlmError as exc:
            raise InputError(f"{path}: {exc}") from None
        nodata = ds.nodata
        return RasterInfo(
            path=path,
            width=ds.width,
            height=ds.height,
            count=ds.count,
            dtype=str(ds.dtypes[0]),
            georef=georef,
            nodata=None if nodata is None else float(nodata),
            tags={str(k): str(v) for k, v in ds.tags().items()},
            driver=ds.driver,
            band_descriptions=tuple(ds.descriptions),
            block_shape=tuple(ds.block_shapes[0]),
        )


def _as_window(window: WindowLike, path: Path, width: int, height: int) -> Any:
    from rasterio.windows import Window

    if window is None:
        return None
    if not isinstance(window, Window):
        try:
            col_off, row_off, w, h = (int(v) for v in window)
        except (TypeError, ValueError):
            raise InputError(f"{path}: window must be (col_off, row_off, width, height), got {window!r}") from None
        window = Window(col_off, row_off, w, h)
    if window.width <= 0 or window.height <= 0:
        raise InputError(f"{path}: window {tuple(window.flatten())} is empty")
    if (
        window.col_off < 0
        or window.row_off < 0
        or window.col_off + window.width > width
        or window.row_off + window.height > height
    ):
        raise InputError(
            f"{path}: window {tuple(int(v) for v in window.flatten())} lies outside the {width}x{height} image"
        )
    return window


def read_raster(
    path: str | Path,
    bands: Sequence[int] | int | None = None,
    window: WindowLike = None,
    out_dtype: str | np.dtype | None = None,
    complex_mode: ComplexMode = "intensity",
) -> np.ndarray:
    """Read pixels as a ``(bands, H, W)`` array.

    Args:
        path: the raster file.
        bands: 1-based band numbers (rasterio's convention); all bands when ``None``.
        window: ``(col_off, row_off, width, height)`` or a rasterio ``Window``: read only this part,
            so scenes larger than memory can be processed piece by piece.
        out_dtype: cast the result (e.g. ``"float32"``); ``None`` keeps the file's type
            (complex pixels become float32 unless ``complex_mode="complex"``).
        complex_mode: for complex SLC pixels, return ``"intensity"`` (``|z|^2``), ``"amplitude"``
            (``|z|``) or the ``"complex"`` values themselves.
    """
    from rasterio.errors import RasterioError

    path = Path(path)
    if complex_mode not in ("intensity", "amplitude", "complex"):
        raise InputError(f"complex_mode must be intensity, amplitude or complex, got {complex_mode!r}")
    with open_raster(path) as ds:
        if bands is None:
            indexes = list(range(1, ds.count + 1))
        else:
            indexes = [bands] if isinstance(bands, int) else [int(b) for b in bands]
            bad = [b for b in indexes if not 1 <= b <= ds.count]
            if bad:
                raise InputError(
                    f"{path}: band {bad[0]} does not exist (the file has {ds.count} band(s), numbered from 1)"
                )
        win = _as_window(window, path, ds.width, ds.height)
        try:
            if ds.dtypes[0] == "complex_int16":
                # rasterio cannot return complex int16 directly; GDAL converts to complex64 for us.
                data = ds.read(indexes, window=win, out_dtype="complex64")
            else:
                data = ds.read(indexes, window=win)
        except (RasterioError, OSError) as exc:
            raise InputError(f"{path}: corrupt or truncated raster data ({_reason(exc)})") from None
    if np.iscomplexobj(data) and complex_mode != "complex":
        mag = np.abs(data).astype(np.float32)
        data = mag * mag if complex_mode == "intensity" else mag
    if out_dtype is not None:
        data = data.astype(out_dtype, copy=False)
    return data


def driver_for(path: str | Path) -> str:
    """GDAL driver for an output path, from its suffix (.tif/.tiff, .png, .jpg/.jpeg)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _DRIVERS:
        raise InputError(f"{path}: unsupported output format {suffix or '(no suffix)'!r} (use .tif, .png or .jpg)")
    return _DRIVERS[suffix]


def _profile(
    driver: str,
    count: int,
    height: int,
    width: int,
    dtype: str,
    georef: GeoRef | None,
    nodata: float | None,
    compress: str | None,
) -> dict[str, Any]:
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    profile: dict[str, Any] = dict(driver=driver, count=count, height=height, width=width, dtype=dtype)
    if nodata is not None:
        profile["nodata"] = nodata
    if driver == "GTiff":
        if compress and compress.lower() != "none":
            profile["compress"] = compress
            if compress.lower() in ("deflate", "lzw", "zstd"):
                profile["predictor"] = 3 if np.dtype(dtype).kind == "f" else 2
        if height >= 512 and width >= 512:
            profile.update(tiled=True, blockxsize=256, blockysize=256)
        profile["bigtiff"] = "IF_SAFER"
        profile["interleave"] = "band"
        if georef is not None:
            if georef.transform is not None:
                profile["crs"] = CRS.from_user_input(georef.crs)
                profile["transform"] = Affine(*georef.transform)
            elif georef.bbox_wgs84 is not None:
                from sarvlm.io.georef import bbox_transform

                profile["crs"] = CRS.from_epsg(4326)
                profile["transform"] = Affine(*bbox_transform(georef.bbox_wgs84, width, height))
    elif driver == "JPEG":
        profile["quality"] = 95
    return profile


def _write_gcps(ds: Any, georef: GeoRef | None) -> None:
    if georef is None or georef.transform is not None or not georef.gcps:
        return
    from rasterio.control import GroundControlPoint as RioGCP
    from rasterio.crs import CRS

    gcps = [RioGCP(row=g.row, col=g.col, x=g.x, y=g.y, z=g.z, id=str(i)) for i, g in enumerate(georef.gcps)]
    ds.gcps = (gcps, CRS.from_user_input(georef.gcp_crs))


def write_raster(
    path: str | Path,
    array: np.ndarray,
    georef: GeoRef | None = None,
    tags: Mapping[str, Any] | None = None,
    nodata: float | None = None,
    compress: str | None = "deflate",
    band_descriptions: Sequence[str] | None = None,
) -> Path:
    """Write an ``(H, W)`` or ``(bands, H, W)`` array; the format follows the suffix.

    GeoTIFF keeps the georeference (CRS + affine transform, GCPs, or a WGS84 box as an EPSG:4326
    transform), tags, nodata and band descriptions, deflate-compressed and tiled when large. PNG
    (uint8/uint16) and JPEG (uint8) hold pixels only: their georeference lives in the sample
    record. The file appears atomically (temp + rename) and identical input gives identical bytes.
    """
    import rasterio
    from rasterio.errors import RasterioError

    path = Path(path)
    driver = driver_for(path)
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] == 0 or arr.shape[2] == 0 or arr.shape[0] == 0:
        raise InputError(
            f"{path}: cannot write an array of shape {np.shape(array)} (need (H, W) or (bands, H, W), non-empty)"
        )
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    dtype = str(arr.dtype)
    if driver in _BYTE_ONLY and dtype not in _BYTE_ONLY[driver]:
        raise InputError(
            f"{path}: {driver} holds {' or '.join(_BYTE_ONLY[driver])} pixels, got {dtype} (quantise first or write .tif)"
        )
    if driver == "JPEG" and arr.shape[0] not in (1, 3):
        raise InputError(f"{path}: JPEG needs 1 or 3 bands, got {arr.shape[0]}")
    count, height, width = arr.shape
    profile = _profile(driver, count, height, width, dtype, georef, nodata, compress)
    with atomic_path(path) as tmp, _rasterio_env():
        try:
            with rasterio.open(tmp, "w", **profile) as ds:
                _write_gcps(ds, georef)
                if tags:
                    ds.update_tags(**{str(k): str(v) for k, v in sorted(tags.items())})
                if band_descriptions:
                    for i, desc in enumerate(band_descriptions[:count], 1):
                        ds.set_band_description(i, str(desc))
                ds.write(arr)
        except (RasterioError, OSError) as exc:
            raise InputError(f"{path}: cannot write raster ({_reason(exc)})") from None
    return path


@contextlib.contextmanager
def open_raster_writer(
    path: str | Path,
    width: int,
    height: int,
    count: int = 1,
    dtype: str = "float32",
    georef: GeoRef | None = None,
    tags: Mapping[str, Any] | None = None,
    nodata: float | None = None,
    compress: str | None = "deflate",
) -> Iterator[Any]:
    """Create a GeoTIFF and yield the open rasterio dataset for windowed writes.

    For scenes too large to hold in memory: ``ds.write(block, window=Window(...))`` piece by
    piece. The file appears at ``path`` only when the block finishes without error.
    """
    import rasterio

    path = Path(path)
    if driver_for(path) != "GTiff":
        raise InputError(f"{path}: streaming writes need a GeoTIFF (.tif)")
    if width <= 0 or height <= 0 or count <= 0:
        raise InputError(f"{path}: zero-size image ({width}x{height}, {count} bands)")
    profile = _profile("GTiff", count, height, width, str(np.dtype(dtype)), georef, nodata, compress)
    with atomic_path(path) as tmp, _rasterio_env(), rasterio.open(tmp, "w", **profile) as ds:
        _write_gcps(ds, georef)
        if tags:
            ds.update_tags(**{str(k): str(v) for k, v in sorted(tags.items())})
        yield ds
