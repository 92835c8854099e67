"""Look at a prior: the SAR image beside the embedding field mapped to RGB, with the anchor nodes
(as in FUSAR-GPT Fig. 3).

The field panel is sampled from the source at (a coarse lattice of) the SAR image's own pixel
centres, so both panels share pixel coordinates and the nodes are drawn at the same places.
Three embedding channels become R, G, B (default ``A01, A16, A09``, the bands Earth Engine's
Satellite Embedding tutorial displays) — or, with ``channels="pca"``, the field's first three
principal components — each stretched between its 2nd and 98th percentile.
Valid nodes are filled circles, invalid ones crosses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sarvlm.core.errors import InputError, NotFoundError
from sarvlm.core.record import GeoRef
from sarvlm.priors.prior_grid import PriorGrid

DEFAULT_CHANNELS = (1, 16, 9)


def field_rgb(
    source,
    georef: GeoRef,
    width: int,
    height: int,
    year: int,
    channels: Sequence[int] | str = DEFAULT_CHANNELS,
    max_side: int = 192,
) -> tuple[np.ndarray, np.ndarray]:
    """The embedding field over the image as an RGB array ``(h, w, 3)`` in [0, 1] and its validity
    mask, on a lattice of at most ``max_side`` cells per side aligned with the image pixels.

    ``channels``: three embedding channels, or ``"pca"`` for the field's first three principal
    components (shows every direction the field varies in, not just three bands)."""
    from sarvlm.io.georef import pixel_to_lonlat

    pca = isinstance(channels, str)
    if pca and channels != "pca":
        raise InputError(f"channels: three channel numbers or 'pca', got {channels!r}")
    if not pca and (len(channels) != 3 or not all(0 <= int(c) < source.prior_dim for c in channels)):
        raise InputError(f"channels: need 3 channel numbers in 0..{source.prior_dim - 1}, got {list(channels)}")
    step = max(1.0, max(width, height) / float(max_side))
    w, h = max(1, int(round(width / step))), max(1, int(round(height / step)))
    cols = (np.arange(w) + 0.5) * (width / w)
    rows = (np.arange(h) + 0.5) * (height / h)
    cc, rr = np.meshgrid(cols, rows)
    lon, lat = pixel_to_lonlat(georef, cc.ravel(), rr.ravel(), width=width, height=height)
    vec, ok = source.sample(np.asarray(lon), np.asarray(lat), year)
    if pca:
        rgb = np.zeros((vec.shape[0], 3))
        if ok.sum() >= 3:
            centred = vec[ok].astype(np.float64) - vec[ok].mean(axis=0)
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            vt = vt[:3] * np.sign(vt[:3].sum(axis=1, keepdims=True) + 1e-12)  # deterministic signs
            rgb[ok, : vt.shape[0]] = centred @ vt.T
    else:
        rgb = vec[:, [int(c) for c in channels]].astype(np.float64)
    if ok.any():
        lo = np.percentile(rgb[ok], 2, axis=0)
        hi = np.percentile(rgb[ok], 98, axis=0)
        rgb = np.clip((rgb - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
    rgb[~ok] = 0.0
    return rgb.reshape(h, w, 3), ok.reshape(h, w)


def sar_display(image: np.ndarray) -> np.ndarray:
    """A grey display of a SAR band: dB for linear intensities, then a 2–98 % stretch."""
    img = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(img)
    if img.dtype != np.uint8 and finite.any() and np.nanmin(img[finite]) >= 0 and np.nanmax(img[finite]) > 0:
        img = 10.0 * np.log10(np.maximum(img, 1e-10))
    vals = img[np.isfinite(img)]
    if vals.size == 0:
        return np.zeros(img.shape)
    lo, hi = np.percentile(vals, [2, 98])
    return np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)


def render_prior(
    sar_image: np.ndarray,
    grid: PriorGrid,
    field: np.ndarray | None,
    out_png: str | Path,
    *,
    title: str | None = None,
    channels: Sequence[int] | str = DEFAULT_CHANNELS,
) -> Path:
    """Write a two-panel PNG: SAR image | embedding field RGB, anchor nodes on both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sarvlm.core.atomic import atomic_path

    sar = np.asarray(sar_image)
    if sar.ndim == 3:
        sar = sar[0]
    height, width = sar.shape
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2 * max(0.4, height / width)), dpi=110)
    axes[0].imshow(sar_display(sar), cmap="gray", extent=(0, width, height, 0), interpolation="nearest")
    axes[0].set_title("SAR image", pad=12)
    if field is not None:
        axes[1].imshow(field, extent=(0, width, height, 0), interpolation="nearest")
    else:
        axes[1].imshow(np.zeros((2, 2, 3)), extent=(0, width, height, 0))
    label = (
        "first 3 principal components" if isinstance(channels, str) else "A{:02d}, A{:02d}, A{:02d}".format(*channels)
    )
    axes[1].set_title(f"AlphaEarth field ({label} → RGB)", pad=12)
    v = grid.valid
    for ax in axes:
        ax.scatter(
            grid.x[v],
            grid.y[v],
            s=28,
            c="#ffd400",
            edgecolors="black",
            linewidths=0.6,
            label="valid node",
            clip_on=False,
            zorder=3,
        )
        if (~v).any():
            ax.scatter(
                grid.x[~v],
                grid.y[~v],
                s=28,
                c="red",
                marker="x",
                linewidths=1.2,
                label="invalid node",
                clip_on=False,
                zorder=3,
            )
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_xlabel("x (pixels)")
    axes[0].set_ylabel("y (pixels)")
    axes[1].legend(loc="lower right", fontsize=7, framealpha=0.8)
    year = f"year {grid.year}" if grid.year is not None else "no data year"
    if grid.year_requested is not None and grid.year != grid.year_requested:
        year += f" (requested {grid.year_requested})"
    fig.suptitle(f"{title + ' — ' if title else ''}{grid.num_valid}/{grid.size} valid nodes, {year}", fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    return out_png


def show_sample(
    sample_path: str | Path,
    source,
    out_png: str | Path,
    *,
    sample_id: str | None = None,
    grid: tuple[int, int] = (8, 8),
    year: int | None = None,
    channels: Sequence[int] | str = DEFAULT_CHANNELS,
    allow_outside_root: bool = False,
) -> Path:
    """Render one sample of a samples JSONL (``sample_id`` or the first record), or a
    georeferenced raster (then ``year`` is required), with the source's field."""
    from sarvlm.core.record import read_samples
    from sarvlm.io.raster import raster_info, read_raster
    from sarvlm.priors.sampling import sample_grid

    sample_path = Path(sample_path)
    if sample_path.suffix.lower() == ".jsonl":
        rec = None
        for r in read_samples(sample_path):
            if sample_id is None or r.id == sample_id:
                rec = r
                break
        if rec is None:
            raise NotFoundError(
                f"{sample_path}: no sample {sample_id!r}" if sample_id else f"{sample_path}: no samples"
            )
        if rec.georef is None:
            raise InputError(
                f"{sample_path}: record {rec.id!r}: field 'georef': missing, so the sample has no prior to show"
            )
        from sarvlm.core.paths import resolve_in_root

        image_path = resolve_in_root(
            sample_path.parent, rec.image, allow_outside=allow_outside_root, what=f"record {rec.id!r}: image"
        )
        georef, width, height, name = rec.georef, rec.width, rec.height, rec.id
        year = year if year is not None else rec.year
    else:
        info = raster_info(sample_path)
        if info.georef is None:
            raise InputError(f"{sample_path}: no georeference, so the image has no prior to show")
        image_path, georef, width, height, name = sample_path, info.georef, info.width, info.height, sample_path.stem
    if year is None:
        raise InputError(f"{sample_path}: {name}: no acquisition year (pass --year)")
    g = sample_grid(source, None, year, grid[0], grid[1], width, height, georef)
    sar = read_raster(image_path, bands=1)
    if sar.shape[-2:] != (height, width):
        raise InputError(f"{image_path}: image is {sar.shape[-1]}x{sar.shape[-2]}, the record says {width}x{height}")
    field = None
    if g.year is not None:
        field, _ = field_rgb(source, georef, width, height, g.year, channels)
    return render_prior(sar[0], g, field, out_png, title=name, channels=channels)
