"""Server-side renderings for the web UI: a SAR quick-look, the prior field (PCA) overlay, PNG data URLs.

A browser ``<img>`` shows 8-bit pixels only: float32 intensity or dB rasters lose their dynamic
range there, so the server renders the quick-look. SAR stretch: linear intensity (or amplitude)
is converted to dB, dB data (a ``UNITS`` tag naming dB, or negative samples) kept as is, then a
2–98 percentile linear stretch of the first band to grey; uint8 images (PNG/JPEG, quick-looks)
are shown as stored. Large images are reduced by block averaging in the linear domain.

The prior overlay colours each pixel by the nearest valid anchor node; colours are the first
three principal components of the valid nodes' embeddings (each scaled to 0–255).
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np

from sarvlm.serve.images import DecodedImage


def _is_db(image: DecodedImage, band: np.ndarray) -> bool:
    units = " ".join(v for k, v in image.meta.tags.items() if "UNIT" in k.upper()).lower()
    if "db" in units or "decibel" in units:
        return True
    finite = band[np.isfinite(band)]
    return bool(finite.size) and float(finite.min()) < 0.0


def _block_mean(band: np.ndarray, step: int) -> np.ndarray:
    if step <= 1:
        return band
    h, w = (band.shape[0] // step) * step, (band.shape[1] // step) * step
    if h == 0 or w == 0:
        return band[::step, ::step]
    with np.errstate(invalid="ignore"):
        return np.nanmean(band[:h, :w].reshape(h // step, step, w // step, step), axis=(1, 3))


def render_quicklook(image: DecodedImage, max_side: int = 1024) -> Any:
    """An 8-bit PIL image of at most ``max_side`` pixels per side (grey SAR stretch, or the stored RGB)."""
    from PIL import Image

    from sarvlm.models.processor import stretch_to_uint8

    arr = image.array
    step = max(1, math.ceil(max(image.width, image.height) / max_side))
    if arr.dtype == np.uint8:
        pixels = arr[:3] if arr.shape[0] >= 3 else arr[:1]
        pixels = pixels[:, ::step, ::step]
        out = pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1)
        return Image.fromarray(np.ascontiguousarray(out))
    band = arr[0].astype(np.float64)
    if image.meta.nodata is not None:
        band[band == image.meta.nodata] = np.nan
    if _is_db(image, band):
        band = 10.0 ** (band / 10.0)  # average in linear power, show in dB
    band = _block_mean(band, step)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(np.where(band > 0, band, np.nan))
    return Image.fromarray(stretch_to_uint8(db))


def pca_colours(vectors: np.ndarray) -> np.ndarray:
    """``(N, D)`` embeddings → ``(N, 3)`` uint8 colours from their first three principal components."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.shape[0] == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    x = x - x.mean(axis=0, keepdims=True)
    if x.shape[0] > 1 and np.abs(x).max() > 0:
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        comps = x @ vt[:3].T
    else:
        comps = np.zeros((x.shape[0], 0))
    if comps.shape[1] < 3:
        comps = np.concatenate([comps, np.zeros((x.shape[0], 3 - comps.shape[1]))], axis=1)
    lo, hi = comps.min(axis=0), comps.max(axis=0)
    scaled = np.where(hi > lo, (comps - lo) / np.where(hi > lo, hi - lo, 1.0), 0.5)
    return np.round(scaled * 255).astype(np.uint8)


def render_prior_overlay(grid: Any, width: int, height: int, out_size: tuple[int, int], alpha: int = 120) -> Any:
    """RGBA overlay ``out_size`` (w, h): each pixel takes the PCA colour of its nearest valid node."""
    from PIL import Image

    valid = np.asarray(grid.valid, dtype=bool)
    colours = pca_colours(np.asarray(grid.vectors)[valid])
    ow, oh = out_size
    lw, lh = max(1, min(ow, 160)), max(1, min(oh, 160))  # nearest-node map at low res, then upscaled
    gx = (np.arange(lw) + 0.5) / lw * width
    gy = (np.arange(lh) + 0.5) / lh * height
    xx, yy = np.meshgrid(gx, gy)
    nx, ny = np.asarray(grid.x)[valid], np.asarray(grid.y)[valid]
    rgba = np.zeros((lh, lw, 4), dtype=np.uint8)
    if nx.size:
        d = (xx[..., None] - nx) ** 2 + (yy[..., None] - ny) ** 2
        nearest = np.argmin(d, axis=-1)
        rgba[..., :3] = colours[nearest]
        rgba[..., 3] = alpha
    return Image.fromarray(rgba, mode="RGBA").resize((ow, oh), Image.NEAREST)


def png_data_url(img: Any) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
