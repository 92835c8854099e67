"""Images of a request: hashed for the cache, rendered as PNG data URLs for ``image_url`` content parts.

SAR images are rendered with the project's stretch (:func:`sarvlm.preprocess.contrast.stretch`: log
of intensity, 2-98 percentile linear stretch, first band) to 8-bit grey; optical images (already
8-bit) are read as they are. Both are resized so the longer side is at most ``max_side`` pixels
(Lanczos), keeping the aspect ratio; smaller images are not enlarged.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import numpy as np

from sarvlm.core.errors import InputError

HASH_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (raises InputError naming the file when it cannot be read)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(HASH_CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise InputError(f"{path}: cannot read image ({exc.strerror or exc})") from None
    return h.hexdigest()


def _to_uint8(path: Path, sar: bool) -> np.ndarray:
    from sarvlm.io.raster import read_raster
    from sarvlm.preprocess.contrast import stretch

    data = read_raster(path)
    if sar:
        band = data[0]
        if band.dtype == np.uint8:
            return band  # already quantised by preprocessing
        grey = stretch(band.astype(np.float32), log=True, where=str(path))
        return np.nan_to_num(grey * 255.0 + 0.5, nan=0.0).astype(np.uint8)
    if data.shape[0] >= 3:
        return np.moveaxis(data[:3], 0, -1).astype(np.uint8, copy=False)
    return data[0].astype(np.uint8, copy=False)


def render_png(path: str | Path, sar: bool = True, max_side: int = 512) -> bytes:
    """PNG bytes of the image as sent to the model (see the module docstring)."""
    from PIL import Image

    from sarvlm.core.errors import SarvlmError

    path = Path(path)
    try:
        pixels = _to_uint8(path, sar)
    except SarvlmError as exc:
        raise InputError(str(exc)) from None
    img = Image.fromarray(pixels)
    scale = max_side / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def data_url(png: bytes) -> str:
    """``data:image/png;base64,...`` for an OpenAI ``image_url`` content part."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
