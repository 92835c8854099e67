"""Reading and writing SAR rasters: GeoTIFF/COG, PNG and JPEG through rasterio (GDAL); PNG and JPEG
pixels are read through Pillow (:mod:`sarvlm.io.pillow_image`, same arrays), so reading them needs no GDAL.

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
import math
import stat
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sarvlm.core.atomic import atomic_path
from sarvlm.core.errors import InputError, SarvlmError
from sarvlm.core.record import GeoRef
from sarvlm.io.raster_policy import (
    DEFAULT_DRIVERS,
    NO_CURL_EXTENSION,
    RasterPolicy,
    check_declared_size,
    check_path_string,
    current_policy,
    looks_like,
    sniff_driver,
)

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
    # /vsicurl/ fetches only names with this (non-existent) extension: never (docs/security.md).
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": NO_CURL_EXTENSION,
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


def _require_rasterio(path: str | Path) -> None:
    """GeoTIFF (and any GDAL read) needs rasterio; say so in one line where it is not installed."""
    try:
        import rasterio  # noqa: F401
    except ImportError:
        raise SarvlmError(
            f"{path}: reading this file needs rasterio (GDAL), which is not installed: pip install rasterio "
            "(PNG and JPEG are read without it)"
        ) from None


def _reason(exc: Exception) -> str:
    """GDAL messages repeat the path; keep the first line and drop the path."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.replace("\n", " ")


def _check_file(path: Path) -> None:
    check_path_string(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SarvlmError(f"{path}: no such file") from None
    except OSError as exc:
        raise SarvlmError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise SarvlmError(f"{path}: is a directory, not a raster file")
    if not stat.S_ISREG(st.st_mode):
        raise SarvlmError(f"{path}: not a regular file (devices, FIFOs and sockets are not opened)")
    if st.st_size == 0:
        raise SarvlmError(f"{path}: empty file (0 bytes)")


def _sniff(path: Path, head: bytes, policy: RasterPolicy) -> list[str]:
    """The drivers GDAL may try for this file: the one its signature names, if allowed."""
    driver = sniff_driver(head)
    if driver is not None:
        if driver not in policy.allowed_drivers:
            raise SarvlmError(
                f"{path}: {driver} files are not allowed here (allowed drivers: {policy.describe_drivers()})"
            )
        return [driver]
    extra = sorted(policy.allowed_drivers - set(DEFAULT_DRIVERS))
    if not extra:
        raise SarvlmError(
            f"{path}: not a readable raster: not a GeoTIFF, PNG or JPEG file ({looks_like(head)}); sarvlm "
            f"opens only these (see docs/security.md; other GDAL drivers with --allow-raster-driver NAME)"
        )
    return extra  # the user explicitly allowed more drivers: let GDAL pick among them only


def check_whole_image(path: str | Path) -> None:
    """Everything :func:`read_raster` of the whole image would refuse, without decoding pixels:
    missing/unsafe file, disallowed driver, declared size over the limit. Cheap (header only), so
    callers can check inputs before slow work such as loading a model."""
    path = Path(path)
    with open_raster(path) as ds:
        out = "complex64" if ds.dtypes[0] == "complex_int16" else None
        read_checked(ds, out_dtype=out, where=path, check_only=True)


def _checked_head(path: Path) -> bytes:
    """The first 64 bytes of a local regular file that passed :func:`_check_file` (the signature sniffed)."""
    _check_file(path)
    try:
        with open(path, "rb") as fh:
            return fh.read(64)
    except OSError as exc:
        raise SarvlmError(f"{path}: cannot read ({exc.strerror or exc})") from None


def allowed_driver(path: str | Path) -> str:
    """Check a local raster file like :func:`open_raster` does before GDAL sees it (local regular
    file, allowed signature) and return the one GDAL driver to open it with. For code that keeps
    datasets open itself (prior tiles): ``rasterio.open(path, driver=allowed_driver(path))``."""
    path = Path(path)
    head = _checked_head(path)
    return _sniff(path, head, current_policy())[0]


def _check_open_size(path: Path, ds: Any, policy: RasterPolicy) -> None:
    """PNG/JPEG decode from the top whatever the window: their whole declared size must fit. Tiled or
    striped GeoTIFFs may be larger than the limit (read them window by window), but one internal
    block (what GDAL decodes at once) must fit."""
    itemsize = _itemsize(ds.dtypes[0])
    if ds.driver != "GTiff":
        check_declared_size(path, ds.width, ds.height, ds.count, itemsize, policy)
    else:
        bh, bw = ds.block_shapes[0]
        check_declared_size(path, bw, bh, ds.count, itemsize, policy, what="has internal blocks of")


def _itemsize(dtype: str) -> int:
    if dtype == "complex_int16":
        return 8  # read as complex64
    return int(np.dtype(dtype).itemsize)


def _open_first(opener: Any, drivers: list[str], where: str | Path) -> Any:
    """Open with the first driver (GDAL is given exactly one allowed driver per attempt) that works."""
    from rasterio.errors import RasterioError

    error: Exception | None = None
    for driver in drivers:
        try:
            return opener(driver)
        except (RasterioError, OSError) as exc:
            error = exc
    raise SarvlmError(f"{where}: not a readable raster ({_reason(error or OSError('no driver'))})") from None


@contextlib.contextmanager
def open_raster(path: str | Path) -> Iterator[Any]:
    """Open a user's raster read-only, safely; errors name the file. Yields the rasterio dataset.

    Only local regular files whose signature is an allowed driver's (GeoTIFF/COG, PNG, JPEG by
    default; :mod:`sarvlm.io.raster_policy`) are opened, with GDAL restricted to that driver; PNG
    and JPEG must fit the image size limit as a whole, GeoTIFF blocks must. Read pixels through
    :func:`read_checked` so every read is size-checked before allocation.
    """
    path = Path(path)
    _require_rasterio(path)
    import rasterio

    head = _checked_head(path)
    policy = current_policy()
    drivers = _sniff(path, head, policy)
    with _rasterio_env():
        ds = _open_first(lambda driver: rasterio.open(path, driver=driver), drivers, path)
        with ds:
            if ds.driver not in policy.allowed_drivers:
                raise SarvlmError(f"{path}: opened as {ds.driver}, which is not an allowed driver")
            if ds.width <= 0 or ds.height <= 0 or ds.count <= 0:
                raise SarvlmError(f"{path}: zero-size image ({ds.width}x{ds.height}, {ds.count} bands)")
            _check_open_size(path, ds, policy)
            yield ds


@contextlib.contextmanager
def open_raster_bytes(data: bytes, name: str = "upload") -> Iterator[Any]:
    """Open raster *bytes* (an upload) with the same allow-list and size checks as :func:`open_raster`.

    ``name`` is used in error messages only (never as a path). The bytes are opened from memory
    (``rasterio.MemoryFile``); nothing is written to disk.
    """
    from rasterio.io import MemoryFile

    if not data:
        raise SarvlmError(f"{name}: empty upload (0 bytes)")
    policy = current_policy()
    drivers = _sniff(Path(name), bytes(data[:64]), policy)
    with _rasterio_env(), MemoryFile(bytes(data)) as mem:
        ds = _open_first(lambda driver: mem.open(driver=driver), drivers, name)
        with ds:
            if ds.driver not in policy.allowed_drivers:
                raise SarvlmError(f"{name}: opened as {ds.driver}, which is not an allowed driver")
            if ds.width <= 0 or ds.height <= 0 or ds.count <= 0:
                raise SarvlmError(f"{name}: zero-size image ({ds.width}x{ds.height}, {ds.count} bands)")
            _check_open_size(Path(name), ds, policy)
            yield ds


def read_checked(
    ds: Any,
    indexes: Sequence[int] | int | None = None,
    window: Any = None,
    out_dtype: str | None = None,
    out_shape: tuple[int, ...] | None = None,
    where: str | Path | None = None,
    check_only: bool = False,
    **kwargs: Any,
) -> np.ndarray | None:
    """``ds.read(...)`` after checking the declared size of the result against the image size limit
    (``check_only``: only the check, for callers that read themselves)."""
    if indexes is None:
        n_bands = ds.count
    else:
        n_bands = 1 if isinstance(indexes, int) else len(indexes)
    if out_shape is not None:
        height, width = out_shape[-2], out_shape[-1]
    elif window is not None:
        height, width = int(math.ceil(window.height)), int(math.ceil(window.width))
    else:
        height, width = ds.height, ds.width
    itemsize = _itemsize(out_dtype or ds.dtypes[0])
    check_declared_size(where or ds.name, width, height, n_bands, itemsize, current_policy(), what="read of")
    if check_only:
        return None
    if out_shape is not None:
        kwargs["out_shape"] = out_shape
    return ds.read(indexes, window=window, out_dtype=out_dtype, **kwargs)


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


def _window_bounds(window: WindowLike, path: Path, width: int, height: int) -> tuple[int, int, int, int] | None:
    """``(col_off, row_off, width, height)`` of a window inside a ``width`` x ``height`` image (no rasterio)."""
    if window is None:
        return None
    try:
        if hasattr(window, "col_off"):  # a rasterio Window
            bounds = tuple(int(v) for v in (window.col_off, window.row_off, window.width, window.height))
        else:
            bounds = tuple(int(v) for v in window)
        col_off, row_off, w, h = bounds
    except (TypeError, ValueError):
        raise InputError(f"{path}: window must be (col_off, row_off, width, height), got {window!r}") from None
    if w <= 0 or h <= 0:
        raise InputError(f"{path}: window {bounds} is empty")
    if col_off < 0 or row_off < 0 or col_off + w > width or row_off + h > height:
        raise InputError(f"{path}: window {bounds} lies outside the {width}x{height} image")
    return col_off, row_off, w, h


def _as_window(window: WindowLike, path: Path, width: int, height: int) -> Any:
    from rasterio.windows import Window

    if window is None:
        return None
    if isinstance(window, Window) and (window.width <= 0 or window.height <= 0):
        raise InputError(f"{path}: window {tuple(window.flatten())} is empty")
    bounds = _window_bounds(window, path, width, height)
    if isinstance(window, Window) or bounds is None:
        return window
    return Window(*bounds)


def _band_indexes(bands: Sequence[int] | int | None, count: int, path: Path) -> list[int]:
    if bands is None:
        return list(range(1, count + 1))
    indexes = [bands] if isinstance(bands, int) else [int(b) for b in bands]
    bad = [b for b in indexes if not 1 <= b <= count]
    if bad:
        raise InputError(f"{path}: band {bad[0]} does not exist (the file has {count} band(s), numbered from 1)")
    return indexes


def _read_with_pillow(
    path: Path, bands: Sequence[int] | int | None, window: WindowLike, out_dtype: str | np.dtype | None
) -> np.ndarray | None:
    """PNG/JPEG pixels through Pillow (:mod:`sarvlm.io.pillow_image`; no rasterio needed), with the
    checks and results of the GDAL path; ``None`` for files Pillow does not read like GDAL."""
    from sarvlm.io.pillow_image import open_pillow_image, pillow_pixels, pillow_reads

    head = _checked_head(path)
    drivers = _sniff(path, head, current_policy())
    if len(drivers) != 1 or not pillow_reads(drivers[0], head):
        return None
    with open_pillow_image(path, drivers[0]) as img:
        if img is None:
            return None
        width, height = img.size
        count = len(img.getbands())
        indexes = _band_indexes(bands, count, path)
        win = _window_bounds(window, path, width, height)
        data = pillow_pixels(path, img)
    if indexes != list(range(1, count + 1)):
        data = data[[b - 1 for b in indexes]]
    if win is not None:
        col, row, w, h = win
        data = np.ascontiguousarray(data[:, row : row + h, col : col + w])
    if out_dtype is not None:
        data = data.astype(out_dtype, copy=False)
    return data


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
    path = Path(path)
    if complex_mode not in ("intensity", "amplitude", "complex"):
        raise InputError(f"complex_mode must be intensity, amplitude or complex, got {complex_mode!r}")
    data = _read_with_pillow(path, bands, window, out_dtype)  # PNG/JPEG: no GDAL needed
    if data is not None:
        return data
    _require_rasterio(path)
    from rasterio.errors import RasterioError

    with open_raster(path) as ds:
        indexes = _band_indexes(bands, ds.count, path)
        win = _as_window(window, path, ds.width, ds.height)
        try:
            # rasterio cannot return complex int16 directly; GDAL converts to complex64 for us.
            out = "complex64" if ds.dtypes[0] == "complex_int16" else None
            data = read_checked(ds, indexes, window=win, out_dtype=out, where=path)
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
