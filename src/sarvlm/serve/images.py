"""Decode uploaded images (data URLs of PNG, JPEG or GeoTIFF bytes) from memory only.

Rules for untrusted rasters (GUIDE "Wave 2 facts"):

- bytes are never turned into paths or URLs: ``/vsicurl/``, ``file:``, plain paths are refused;
  ``http(s)://`` image URLs only with ``allow_remote`` (``--allow-remote-images``), fetched with a
  byte cap, then decoded like an upload;
- the format is sniffed from the magic bytes and GDAL is given that one driver (allow-list
  ``GTiff``/``PNG``/``JPEG``), so a VRT (XML) renamed ``.tif`` is refused before GDAL sees it and
  could not be opened as a VRT anyway; :func:`disable_risky_gdal_drivers` sets ``GDAL_SKIP`` at
  server start-up, before GDAL registers its drivers;
- the declared width × height × bands × sample size is checked before any pixel is read, so a
  small file declaring 200000² pixels is refused without allocating it.

:func:`open_raster_bytes` is the single place in ``sarvlm.serve`` that opens raster bytes; it goes
through the shared safe opener :func:`sarvlm.io.raster.open_raster_bytes` (the same allow-list and
size policy as every CLI verb) and adds the server's per-request limits.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sarvlm.core.errors import InputError
from sarvlm.core.record import GeoRef
from sarvlm.io.raster_policy import DEFAULT_DRIVERS, SKIPPED_DRIVERS, sniff_driver

# The server accepts exactly the default allow-list (SARVLM_ALLOW_RASTER_DRIVERS does not widen it):
# sarvlm.io's one signature table names the driver, GDAL gets only that one.
ALLOWED_DRIVERS = DEFAULT_DRIVERS
_GDAL_ENV: dict[str, Any] = {
    "GDAL_PAM_ENABLED": "NO",  # no .aux.xml side-cars
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no sibling files (.ovr, .tfw) looked up
    "CPL_LOG_ERRORS": "OFF",
    "GDAL_CACHEMAX": 64,
    "GTIFF_REPORT_COMPD_CS": "NO",
}
_DATE_TAGS = ("ACQUISITION_DATE", "TIFFTAG_DATETIME", "DATE", "ACQUISITION_START_TIME")
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,")


def disable_risky_gdal_drivers() -> None:
    """Add the drivers that read other files or the network (VRT and friends,
    :data:`sarvlm.io.raster_policy.SKIPPED_DRIVERS`) to ``GDAL_SKIP``.

    A process-wide setting, so it is called by ``sarvlm serve`` at start-up (before rasterio
    registers GDAL's drivers), never by library code. Unlike
    :func:`sarvlm.io.raster_policy.configure_gdal`, a ``GDAL_SKIP`` the user set is extended,
    not kept as is: a server of untrusted uploads never registers these drivers.
    """
    current = [d for d in os.environ.get("GDAL_SKIP", "").replace(",", " ").split() if d]
    os.environ["GDAL_SKIP"] = " ".join(dict.fromkeys(current + list(SKIPPED_DRIVERS)))


@dataclass
class RasterMeta:
    """What :func:`open_raster_bytes` learned besides the pixels."""

    driver: str
    width: int
    height: int
    count: int
    dtype: str
    georef: GeoRef | None = None
    tags: dict[str, str] = field(default_factory=dict)
    nodata: float | None = None

    @property
    def acquisition_year(self) -> int | None:
        """Year of the first date-like tag (``ACQUISITION_DATE``, ``TIFFTAG_DATETIME``, ...)."""
        for key in _DATE_TAGS:
            m = re.match(r"\s*((?:19|20)\d\d)", self.tags.get(key, ""))
            if m:
                return int(m.group(1))
        return None


@dataclass
class DecodedImage:
    """One uploaded image: raw pixels (for the quick-look), the model's PIL view, its georeference."""

    array: np.ndarray  # (bands, H, W) as stored (complex → intensity)
    meta: RasterMeta
    image: Any  # PIL.Image in the model's view (sarvlm.models.processor.raster_to_image)

    @property
    def width(self) -> int:
        return self.meta.width

    @property
    def height(self) -> int:
        return self.meta.height

    @property
    def georef(self) -> GeoRef | None:
        return self.meta.georef


@contextlib.contextmanager
def _gdal_env() -> Iterator[None]:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings(), rasterio.Env(**_GDAL_ENV):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def open_raster_bytes(
    data: bytes, max_pixels: int, *, max_bands: int = 16, where: str = "image"
) -> tuple[np.ndarray, RasterMeta]:
    """Decode raster bytes held in memory: ``(array (bands, H, W), meta)``.

    Refused with :class:`InputError` (message names ``where``): bytes that are not PNG, JPEG or
    TIFF; files GDAL cannot open with that one driver; a declared ``width × height`` above
    ``max_pixels``, more than ``max_bands`` bands, or ``W·H·bands·sample size`` above
    ``8 · max_pixels`` bytes — all checked before reading any pixel. Complex samples (SLC) become
    intensity ``|z|²``.
    """
    from rasterio.errors import RasterioError

    from sarvlm.core.errors import SarvlmError
    from sarvlm.io.georef import georef_from_rasterio
    from sarvlm.io.raster import open_raster_bytes as open_shared

    if not data:
        raise InputError(f"{where}: empty image data")
    if sniff_driver(data) is None:
        raise InputError(f"{where}: not a PNG, JPEG or GeoTIFF (unrecognised leading bytes)")
    try:
        # The one safe opener of sarvlm.io: signature sniffing, driver allow-list, memory only,
        # declared size checked against the process's image-size policy before any read.
        with _gdal_env(), open_shared(data, where) as ds:
            driver = str(ds.driver)
            if driver not in ALLOWED_DRIVERS:  # the server's own, narrower contract
                raise InputError(f"{where}: driver {driver} is not allowed")
            width, height, count = int(ds.width), int(ds.height), int(ds.count)
            dtype = str(ds.dtypes[0]) if count else "uint8"
            # Request limits of the server, stricter than the process-wide policy.
            if width * height > max_pixels:
                raise InputError(
                    f"{where}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}"
                )
            if count > max_bands:
                raise InputError(f"{where}: {count} bands exceeds the limit of {max_bands}")
            itemsize = np.dtype(dtype).itemsize if dtype not in ("complex_int16",) else 4
            if width * height * count * itemsize > 8 * max_pixels:
                raise InputError(
                    f"{where}: {width}x{height}x{count} {dtype} needs {width * height * count * itemsize} bytes, "
                    f"over the limit of {8 * max_pixels}"
                )
            try:
                array = ds.read()
            except (RasterioError, OSError, MemoryError) as exc:
                raise InputError(f"{where}: corrupt or truncated {driver} data ({_first_line(exc)})") from None
            georef = georef_from_rasterio(ds) if driver == "GTiff" else None
            meta = RasterMeta(
                driver=driver,
                width=width,
                height=height,
                count=count,
                dtype=dtype,
                georef=georef,
                tags={str(k): str(v) for k, v in ds.tags().items()},
                nodata=ds.nodata,
            )
    except InputError:
        raise
    except SarvlmError as exc:  # the shared opener's refusal, as a 4xx input error
        raise InputError(str(exc)) from None
    except (RasterioError, OSError) as exc:
        raise InputError(f"{where}: not a readable image ({_first_line(exc)})") from None
    if np.iscomplexobj(array):
        array = (np.abs(array) ** 2).astype(np.float32)
    return array, meta


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.replace("/vsimem/", "")[:200]


def decode_data_url(url: str, where: str = "image_url") -> bytes:
    """The bytes of a ``data:[mime];base64,...`` URL (only base64 data URLs are accepted)."""
    m = _DATA_URL.match(url)
    if m is None or not m.group("b64"):
        raise InputError(f"{where}: expected a base64 data URL (data:image/png;base64,...)")
    try:
        return base64.b64decode(url[m.end() :], validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: invalid base64 in the data URL") from None


def image_bytes(url: str, *, allow_remote: bool, max_bytes: int, where: str = "image_url") -> bytes:
    """Bytes of an ``image_url``: a data URL, or (only with ``allow_remote``) an http(s) URL.

    Everything else — file paths, ``file:``, ``/vsicurl/`` and other GDAL virtual paths — is refused.
    """
    if not isinstance(url, str) or not url:
        raise InputError(f"{where}: missing url")
    if url.startswith("data:"):
        data = decode_data_url(url, where)
        if len(data) > max_bytes:
            raise InputError(f"{where}: image is {len(data)} bytes, over the limit of {max_bytes}")
        return data
    low = url.lower()
    if low.startswith(("http://", "https://")):
        if not allow_remote:
            raise InputError(
                f"{where}: remote image URLs are refused (send a data URL, or start the server with --allow-remote-images)"
            )
        return _fetch_remote(url, max_bytes, where)
    raise InputError(f"{where}: only data URLs are accepted (paths and other URL schemes are refused)")


def _fetch_remote(url: str, max_bytes: int, where: str) -> bytes:
    import httpx

    chunks: list[bytes] = []
    total = 0
    try:
        with httpx.stream("GET", url, timeout=10.0, follow_redirects=False) as resp:
            if resp.status_code != 200:
                raise InputError(f"{where}: fetching the image returned HTTP {resp.status_code}")
            for chunk in resp.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise InputError(f"{where}: remote image exceeds the limit of {max_bytes} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise InputError(f"{where}: cannot fetch the image ({type(exc).__name__})") from None
    return b"".join(chunks)


def decode_image(data: bytes, max_pixels: int, where: str = "image") -> DecodedImage:
    """Bytes → :class:`DecodedImage` (pixels, meta, the model's PIL view)."""
    from sarvlm.models.processor import raster_to_image

    array, meta = open_raster_bytes(data, max_pixels, where=where)
    if meta.driver in ("PNG", "JPEG") and array.shape[0] in (2, 4):
        array = array[:-1] if array.shape[0] == 4 else array[:1]  # drop the alpha band
    return DecodedImage(array=array, meta=meta, image=raster_to_image(array))
