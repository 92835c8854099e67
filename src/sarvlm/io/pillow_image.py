"""PNG and JPEG pixels through Pillow: reading them needs no GDAL/rasterio.

A GPU machine can then read quick-looks, chips and land-cover masks with only Pillow installed;
GeoTIFF keeps going through rasterio (:mod:`sarvlm.io.raster`). Pillow is used only for the kinds of
file where it returns the same ``(bands, H, W)`` array, dtype included, as GDAL's PNG/JPEG drivers
(checked against rasterio in ``tests/test_io_pillow_image.py``):

- PNG with 8-bit samples (grey, grey + alpha, RGB, RGBA, palette indices), 16-bit grey (``uint16``),
  1-bit grey (``uint8`` 0/1);
- baseline JPEG decoded as grey or RGB (``uint8``).

Anything else (16-bit RGB PNG, which Pillow would reduce to 8 bits; 2/4-bit grey; CMYK or 12-bit JPEG)
is left to GDAL (:func:`pillow_reads` says no). The same checks as :func:`sarvlm.io.raster.open_raster`
apply first: a local regular file, an allowed signature, the declared size within the image size limit.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sarvlm.core.errors import InputError, SarvlmError
from sarvlm.io.raster_policy import check_declared_size, current_policy

# Pillow mode -> (bands, numpy dtype of the result)
_MODES: dict[str, tuple[int, Any]] = {
    "1": (1, np.uint8),
    "L": (1, np.uint8),
    "P": (1, np.uint8),
    "LA": (2, np.uint8),
    "RGB": (3, np.uint8),
    "RGBA": (4, np.uint8),
    "I;16": (1, np.uint16),
    "I;16B": (1, np.uint16),
}
_JPEG_MODES = ("L", "RGB")


def pillow_reads(driver: str, head: bytes) -> bool:
    """Whether Pillow gives GDAL's pixels for a file of ``driver`` whose first bytes are ``head``
    (JPEG: decided again on the decoded mode, see :func:`open_pillow_image`)."""
    if driver == "JPEG":
        return True
    if driver != "PNG" or len(head) < 26 or head[12:16] != b"IHDR":
        return False
    depth, colour = head[24], head[25]  # IHDR bit depth and colour type
    return depth == 8 or (colour == 0 and depth in (1, 16)) or colour == 3


@contextlib.contextmanager
def open_pillow_image(path: Path, driver: str, like_gdal: bool = True) -> Iterator[Any]:
    """The file opened by Pillow (header only; pixels not yet decoded), size-checked against the image
    size limit. With ``like_gdal``, yields ``None`` when Pillow would not return GDAL's pixels (the caller
    falls back to GDAL); without, any mode Pillow opens (for callers that want a PIL image anyway)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow's decompression-bomb warning: the size is checked below against sarvlm's own limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SarvlmError(f"{path}: not a readable raster ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    with img:
        gdal_like = img.mode in _MODES and (driver != "JPEG" or img.mode in _JPEG_MODES)
        if img.format != driver or (like_gdal and not gdal_like):
            yield None
            return
        width, height = img.size
        if width <= 0 or height <= 0:
            raise SarvlmError(f"{path}: zero-size image ({width}x{height})")
        bands = len(img.getbands())
        itemsize = np.dtype(_MODES[img.mode][1]).itemsize if gdal_like else (1 if img.mode in ("1", "L", "P") else 4)
        check_declared_size(path, width, height, bands, itemsize, current_policy())
        yield img


def pillow_pixels(path: Path, img: Any) -> np.ndarray:
    """Decode an image from :func:`open_pillow_image` into ``(bands, H, W)`` (the dtype GDAL gives)."""
    from PIL import Image

    bands, dtype = _MODES[img.mode]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # size checked on open
            img.load()
        array = np.asarray(img)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: corrupt or truncated raster data ({exc})") from None
    array = array.astype(dtype, copy=False)  # bool (1-bit) -> 0/1, big-endian 16-bit -> native
    if array.ndim == 2:
        array = array[None]
    else:
        array = np.moveaxis(array, -1, 0)
    if array.shape[0] != bands:
        raise InputError(f"{path}: decoded {array.shape[0]} bands, expected {bands} for mode {img.mode}")
    return np.ascontiguousarray(array)
