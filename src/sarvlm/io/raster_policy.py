"""What sarvlm agrees to open as an image: a driver allow-list and a size limit (see docs/security.md).

Images are user data (and, for the server, uploads from anyone), and GDAL opens far more than
images: a GDAL VRT renamed ``.tif`` reads arbitrary local files, ``/vsicurl/`` paths fetch URLs.
So every raster sarvlm reads is checked first:

- **driver allow-list** — the file's first bytes must be a TIFF (GeoTIFF/COG), PNG or JPEG
  signature and GDAL is told to use only that driver; other GDAL drivers only when the user
  names them (``--allow-raster-driver VRT`` or ``SARVLM_ALLOW_RASTER_DRIVERS=VRT``);
- **no virtual or network paths** — ``/vsi…/`` prefixes, ``scheme://`` URLs and
  ``DRIVER:…`` open strings are refused, as are non-regular files (FIFOs, devices);
- **size before allocation** — the declared ``width × height × bands × bytes per sample`` of a
  read must fit ``max_image_bytes`` (default 1 GiB; ``--max-image-bytes`` or
  ``SARVLM_MAX_IMAGE_BYTES``) before any pixel is decoded. GeoTIFFs larger than the limit may
  still be opened and read window by window (``preprocess --tile-m``); PNG and JPEG cannot be
  read in windows without decoding everything before, so they are refused at open.

The policy in force is a context variable: :func:`raster_policy` sets it for a block (the CLI
wraps each verb in it); outside any block it comes from the environment variables above.
:func:`configure_gdal` is the one process-level step (``GDAL_SKIP`` is read only when GDAL
registers its drivers): the CLI entry point calls it before rasterio is first imported.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from sarvlm.core.errors import InputError

DEFAULT_DRIVERS: tuple[str, ...] = ("GTiff", "PNG", "JPEG")
DEFAULT_MAX_IMAGE_BYTES = 1 << 30  # 1 GiB of declared pixel data per read
MAX_BYTES_ENV = "SARVLM_MAX_IMAGE_BYTES"
DRIVERS_ENV = "SARVLM_ALLOW_RASTER_DRIVERS"
# Aliases users may type for an allowed driver ("COG" is written by the COG driver, read by GTiff).
_ALIASES = {"COG": "GTiff", "GEOTIFF": "GTiff", "TIFF": "GTiff", "JPG": "JPEG"}
# GDAL options that take effect only when set before GDAL registers its drivers (process level).
# GDAL_SKIP: drivers never registered. CPL_VSIL_CURL_ALLOWED_EXTENSIONS: /vsicurl/ fetches only
# names ending so (an extension no real file has: no fetch at all).
NO_CURL_EXTENSION = ".sarvlm-no-network"
# Drivers whose "files" read other files or the network (VRT and its kin, web services).
SKIPPED_DRIVERS: tuple[str, ...] = (
    *("VRT", "DERIVED", "GTI", "VICAR", "MBTiles"),
    *("WMS", "WMTS", "WCS", "HTTP", "DAAS", "EEDAI", "PLMOSAIC", "OGCAPI", "STACIT", "STACTA"),
)
# The one table of file signatures sarvlm recognises (leading bytes → GDAL driver of DEFAULT_DRIVERS),
# used by every opener: local files (sarvlm.io.raster) and server uploads (sarvlm.serve.images).
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"II*\x00", "GTiff"),  # little-endian TIFF
    (b"MM\x00*", "GTiff"),  # big-endian TIFF
    (b"II+\x00", "GTiff"),  # BigTIFF
    (b"MM\x00+", "GTiff"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
)
_VIRTUAL_PATH = re.compile(r"^(/vsi[a-z0-9_]*/|[A-Za-z][A-Za-z0-9+.-]*://|[A-Za-z][A-Za-z0-9_]+:)")


@dataclass(frozen=True)
class RasterPolicy:
    """Which GDAL drivers may open user images, and how many bytes one read may declare."""

    allowed_drivers: frozenset[str] = frozenset(DEFAULT_DRIVERS)
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES

    def describe_drivers(self) -> str:
        return ", ".join(sorted(self.allowed_drivers))


_POLICY: contextvars.ContextVar[RasterPolicy | None] = contextvars.ContextVar("sarvlm_raster_policy", default=None)


def parse_size(text: str | int, what: str = "--max-image-bytes") -> int:
    """``"1073741824"``, ``"512M"``, ``"4G"``, ``"2GiB"`` → bytes (positive). One-line error otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
        if not m:
            raise InputError(f"{what}: expected a size in bytes such as 1073741824, 512M or 4G, got {text!r}")
        scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
        value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise InputError(f"{what}: must be a positive size, got {text!r}")
    return value


def normalise_driver(name: str) -> str:
    """Canonical GDAL short name for a driver the user typed (``cog`` → ``GTiff``, ``vrt`` → ``VRT``)."""
    key = name.strip()
    if not key or not re.fullmatch(r"[A-Za-z0-9_]+", key):
        raise InputError(f"--allow-raster-driver: not a GDAL driver name: {name!r}")
    upper = key.upper()
    if upper in _ALIASES:
        return _ALIASES[upper]
    return {d.upper(): d for d in DEFAULT_DRIVERS}.get(upper, upper)


def policy_from_env() -> RasterPolicy:
    """The policy the environment asks for (defaults when the variables are unset)."""
    extra = os.environ.get(DRIVERS_ENV, "")
    drivers = set(DEFAULT_DRIVERS) | {normalise_driver(d) for d in extra.split(",") if d.strip()}
    raw = os.environ.get(MAX_BYTES_ENV)
    limit = parse_size(raw, MAX_BYTES_ENV) if raw else DEFAULT_MAX_IMAGE_BYTES
    return RasterPolicy(frozenset(drivers), limit)


def current_policy() -> RasterPolicy:
    """The policy in force: the innermost :func:`raster_policy` block, else the environment's."""
    return _POLICY.get() or policy_from_env()


@contextlib.contextmanager
def raster_policy(
    *, max_image_bytes: int | str | None = None, allow_drivers: Iterable[str] = ()
) -> Iterator[RasterPolicy]:
    """Use a stricter or looser policy inside the block (the CLI wraps every verb in one).

    ``allow_drivers`` adds GDAL drivers to the allow-list; ``max_image_bytes`` replaces the limit.
    """
    policy = current_policy()
    if max_image_bytes is not None:
        policy = replace(policy, max_image_bytes=parse_size(max_image_bytes))
    extra = {normalise_driver(d) for d in allow_drivers}
    if extra:
        policy = replace(policy, allowed_drivers=policy.allowed_drivers | extra)
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def sniff_driver(head: bytes) -> str | None:
    """GDAL driver for a file's first bytes (:data:`SIGNATURES`): TIFF/BigTIFF → GTiff, PNG, JPEG; None otherwise."""
    for magic, driver in SIGNATURES:
        if head.startswith(magic):
            return driver
    return None


def looks_like(head: bytes) -> str:
    """A short guess at what an unsupported file is, for the error message."""
    text = head.lstrip()[:64].lower()
    if text.startswith(b"<vrtdataset") or b"<vrt" in text:
        return "it is a GDAL VRT, XML that can read other files"
    if text.startswith(b"<"):
        return "it is XML/HTML"
    if head[:2] == b"PK":
        return "it is a ZIP archive"
    if head[:2] == b"BM":
        return "it is a BMP image"
    if head[:4] == b"GIF8":
        return "it is a GIF image"
    if head[:4] == b"\x00\x00\x00\x0c" or head[4:8] == b"ftyp":
        return "it is a JPEG 2000 / ISO media file"
    if head[:3] == b"CDF" or head[:4] == b"\x89HDF":
        return "it is a netCDF/HDF file"
    return "unknown format"


def check_path_string(path: str | Path) -> None:
    """Refuse GDAL virtual filesystems, URLs and ``DRIVER:...`` open strings given as paths."""
    text = str(path)
    if _VIRTUAL_PATH.match(text):
        raise InputError(
            f"{text}: virtual, network or driver-prefixed paths are not opened (sarvlm reads local "
            f"files only; see docs/security.md)"
        )


def check_declared_size(
    where: str | Path, width: int, height: int, bands: int, itemsize: int, policy: RasterPolicy, what: str = "declares"
) -> None:
    """Fail before allocation when ``width × height × bands × itemsize`` exceeds the policy's limit."""
    need = int(width) * int(height) * int(bands) * int(itemsize)
    if need > policy.max_image_bytes:
        raise InputError(
            f"{where}: {what} {width}x{height} pixels x {bands} band(s) x {itemsize} byte(s) = "
            f"{_human(need)}, over the image size limit of {_human(policy.max_image_bytes)} "
            f"(raise it with --max-image-bytes or {MAX_BYTES_ENV}; tile large GeoTIFF scenes with preprocess --tile-m)"
        )


def _human(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def gdal_process_settings(allowed_drivers: Iterable[str] = DEFAULT_DRIVERS) -> dict[str, str]:
    """The process-level GDAL settings :func:`configure_gdal` applies (for docs and tests)."""
    allowed = {normalise_driver(d) for d in allowed_drivers}
    skip = [d for d in SKIPPED_DRIVERS if d not in allowed]
    settings = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_PAM_ENABLED": "NO"}
    if skip:
        settings["GDAL_SKIP"] = " ".join(skip)
    if "HTTP" not in allowed:
        settings["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"] = NO_CURL_EXTENSION
    return settings


def configure_gdal(allowed_drivers: Iterable[str] = DEFAULT_DRIVERS) -> dict[str, str]:
    """Process-level GDAL hardening, for entry points (the CLI calls it first thing).

    Writes ``GDAL_SKIP`` (VRT and network drivers are never registered),
    ``CPL_VSIL_CURL_ALLOWED_EXTENSIONS`` (``/vsicurl/`` fetches nothing),
    ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`` (no side-car discovery) and ``GDAL_PAM_ENABLED=NO``
    (no ``.aux.xml``) into ``os.environ``, where GDAL reads them when rasterio first loads it.
    Values the user already set are kept. Returns what was set. It only matters before GDAL
    loads; :func:`sarvlm.io.raster.open_raster` is safe without it (it sniffs the file and
    restricts the driver itself).
    """
    applied = {}
    for key, value in gdal_process_settings(allowed_drivers).items():
        if key not in os.environ:
            os.environ[key] = value
            applied[key] = value
    return applied
