"""A one-figure look at a synthetic scene: SAR, land cover, optical and three embedding bands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sarvlm.core.atomic import atomic_path
from sarvlm.synth.landcover import CLASSES

if TYPE_CHECKING:
    from sarvlm.synth.footprint import Site
    from sarvlm.synth.scene import Scene

CLASS_COLOURS = ["#2b6cb0", "#e53e3e", "#ecc94b", "#68d391", "#22543d", "#a0816c"]  # water … bare
CATEGORY_COLOURS = {
    "ship": "#ff3b30",
    "aircraft": "#ffcc00",
    "oil_tank": "#ff9500",
    "bridge": "#af52de",
    "harbor": "#34c759",
    "car": "#5ac8fa",
}


def render_preview(path: str | Path, scene: Scene, site: Site, fields: dict[int, np.ndarray]) -> Path:
    """Write a PNG: SAR (dB, boxes; dashed cyan = unannotated clutter), mask, optical, 3 AEF bands.

    The embedding panels show the scene's whole site tile at 10 m (``fields``: year → (64, H, W))
    with the scene footprint outlined, using the three bands that vary most over the site.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch, Rectangle

    rec = scene.record
    fp = scene.footprint
    field = fields[rec.year] if rec.year in fields else next(iter(fields.values()))
    bands = np.argsort(-np.nanvar(field.reshape(64, -1), axis=1))[:3]

    fig, axes = plt.subplots(2, 3, figsize=(13, 8.6))
    ax = axes[0, 0]
    db = 10 * np.log10(np.maximum(scene.intensity[0], 1e-6))  # the VV band
    lo, hi = np.percentile(db, [1, 99.5])
    ax.imshow(db, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    for o in rec.objects:
        x1, y1, x2, y2 = o.bbox
        ax.add_patch(
            Rectangle(
                (x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, lw=0.9, ec=CATEGORY_COLOURS.get(o.category, "w")
            )
        )
    for c in rec.meta.get("clutter", []):
        x1, y1, x2, y2 = c["bbox"]
        ax.add_patch(
            Rectangle((x1 - 1.5, y1 - 1.5), x2 - x1 + 2, y2 - y1 + 2, fill=False, lw=1.1, ls="--", ec="#00e5ff")
        )
    sea = rec.meta.get("sea_state")
    ax.set_title(f"SAR VV intensity (dB), L={rec.meta['looks']:g}" + (f", {sea} sea" if sea else ""), fontsize=9)
    present = {o.category for o in rec.objects}
    handles = [Patch(fc="none", ec=c, label=k) for k, c in CATEGORY_COLOURS.items() if k in present]
    if rec.meta.get("clutter"):
        handles.append(Patch(fc="none", ec="#00e5ff", ls="--", label="clutter (not annotated)"))
    if handles:
        ax.legend(handles=handles, fontsize=6, loc="upper right", framealpha=0.5)

    ax = axes[0, 1]
    ax.imshow(
        scene.mask, cmap=ListedColormap(CLASS_COLOURS), vmin=-0.5, vmax=len(CLASSES) - 0.5, interpolation="nearest"
    )
    ax.legend(handles=[Patch(fc=CLASS_COLOURS[k], label=v) for k, v in CLASSES.items()], fontsize=6, loc="lower left")
    ax.set_title("land-cover mask", fontsize=9)

    ax = axes[0, 2]
    if scene.optical is not None:
        ax.imshow(scene.optical, interpolation="nearest")
        ax.set_title("paired optical rendering", fontsize=9)
    else:
        ax.text(0.5, 0.5, "optical disabled", ha="center", va="center")
    # Footprint of the scene inside the site's 10 m grid.
    x0 = (fp.scene_west - site.west) / 10.0
    y0 = (site.north - fp.scene_north) / 10.0
    side = fp.size * fp.resolution_m / 10.0
    for ax, b in zip(axes[1], bands, strict=True):
        im = ax.imshow(field[b], cmap="viridis", interpolation="nearest")
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), side, side, fill=False, ec="w", lw=1.0))
        ax.set_title(f"embedding band A{b:02d} ({rec.year}, 10 m, site tile)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"{rec.id}: {rec.meta['kind']}, {rec.date}, zone {fp.zone_label}, {rec.resolution_m:g} m — "
        + rec.captions[1].text,
        fontsize=9,
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return Path(path)
