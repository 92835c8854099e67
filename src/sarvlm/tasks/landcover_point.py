"""Land cover at the prior's anchor nodes: the question family that needs the geospatial prior.

FUSAR-GPT samples its AlphaEarth prior on an ``N_lon × N_lat`` anchor grid (Eq. 1–3,
:mod:`sarvlm.priors.anchor_grid`). ``landcover_point`` asks, for every node of that grid that lies on
the image, "what is the land cover in this small region around the node?", answered from the
sample's land-cover mask. In the synthetic world farmland and grassland look identical in SAR and
are orthogonal in the prior, so on those answers a model can only beat chance by reading the prior
at the right place: this is the family the demo's decision rule is powered on (docs/demo.md).

Node placement mirrors :func:`sarvlm.priors.sampling.sample_grid` with ``anchors="auto"``: a record
whose georeference states a WGS84 box (``bbox_wgs84``) and has an affine transform or GCPs gets the
Eq. 2 nodes on that box, mapped to pixels through the georeference; a record with a transform or
GCPs and no stated box gets the nodes on the image's own pixel grid; a record with only a box gets
the north-up box formula. Nodes more than 5 % of the image size outside it are skipped (the
priors mark them invalid); the others are clipped to the image.

The region is a square of half the node spacing (centred on the node, clipped to the image); a
node is asked only when one land cover covers at least :data:`MIN_SHARE` of the region's labelled
mask pixels, so the answer is unambiguous. A record of any split but ``train`` (test, val, or none
given) gets one question per such node — the family exists to put many questions on each test
scene (``--max-per-sample`` does not cap it); a ``train`` record gets :data:`TRAIN_MAX` of them,
chosen by the sample's RNG, so the family does not swamp the other tasks of a training mixture.
``TaskContext.extra`` may set ``anchor_grid`` (default :data:`ANCHOR_GRID`, the priors' default),
``landcover_point_train_max`` (the training cap) and ``landcover_point_max`` (a cap for every split). ``params``: ``node`` (index ``j·N_lon + i``, as the
priors order them), ``point`` (pixel position of the node) and ``region`` (the box, original pixels).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np

from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import SampleRecord
from sarvlm.core.vocabulary import same_answer
from sarvlm.tasks.base import Draft, SampleView, TaskContext, choose, single_turn, vqa_question
from sarvlm.tasks.parsing import category_answer
from sarvlm.tasks.scoring import score_single_label
from sarvlm.tasks.spec import TaskSpec

TASK = "landcover_point"
ANCHOR_GRID = (8, 8)  # (N_lon, N_lat): sarvlm.priors.cache.build_prior_cache's default grid
MIN_SHARE = 0.75
EDGE_TOLERANCE = 0.05  # as sarvlm.priors.sampling.sample_grid
TRAIN_MAX = 8  # questions per training scene (records with split "train")


def anchor_pixels(record: SampleRecord, grid: tuple[int, int] = ANCHOR_GRID) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions ``(x, y)`` of the anchor nodes of ``record``, each ``(N_lon·N_lat,)``, in the
    priors' node order (row-major from the south-west node); NaN where the record has no georeference."""
    n_lon, n_lat = int(grid[0]), int(grid[1])
    w, h = record.width, record.height
    geo = record.georef
    s = n_lon * n_lat
    if geo is None:
        return np.full(s, np.nan), np.full(s, np.nan)
    has_model = geo.transform is not None or bool(geo.gcps)
    if has_model and geo.bbox_wgs84 is None:  # image-space anchors (anchor_grid.image_anchor_nodes)
        xs = np.linspace(0.0, w, n_lon) if n_lon > 1 else np.array([w / 2.0])
        ys = np.linspace(h, 0.0, n_lat) if n_lat > 1 else np.array([h / 2.0])
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        return xx.ravel(), yy.ravel()
    if geo.bbox_wgs84 is None:
        return np.full(s, np.nan), np.full(s, np.nan)
    lon_min, lat_min, lon_max, lat_max = (float(v) for v in geo.bbox_wgs84)
    lons = np.linspace(lon_min, lon_max, n_lon) if n_lon > 1 else np.array([(lon_min + lon_max) / 2.0])
    lats = np.linspace(lat_min, lat_max, n_lat) if n_lat > 1 else np.array([(lat_min + lat_max) / 2.0])
    lat_g, lon_g = np.meshgrid(lats, lons, indexing="ij")
    lon, lat = lon_g.ravel(), lat_g.ravel()
    if has_model:
        from sarvlm.io.georef import lonlat_to_pixel

        x, y = lonlat_to_pixel(geo, lon, lat, width=w, height=h)
        return np.asarray(x, np.float64), np.asarray(y, np.float64)
    x = (lon - lon_min) / (lon_max - lon_min) * w if lon_max > lon_min else np.full_like(lon, w / 2.0)
    y = (lat_max - lat) / (lat_max - lat_min) * h if lat_max > lat_min else np.full_like(lat, h / 2.0)
    return x, y


def _mask(view: SampleView) -> tuple[np.ndarray, dict[int, str]] | None:
    lc = view.record.landcover
    if lc is None:
        return None
    from sarvlm.core.paths import resolve_in_root
    from sarvlm.io.raster import read_raster

    path = resolve_in_root(
        view.base_dir, lc.mask, allow_outside=view.allow_outside_root, what=f"record {view.record.id!r}: landcover.mask"
    )
    mask = read_raster(path, bands=1)[0]
    if mask.dtype.kind not in "iu":
        raise SarvlmError(f"{path}: land-cover mask must hold integer class values, got {mask.dtype}")
    return mask.astype(np.int64, copy=False), {int(k): v for k, v in lc.classes.items()}


def generate(task: str, view: SampleView, ctx: TaskContext, rng: random.Random) -> Iterator[Draft]:
    """One question per anchor node with an unambiguous land cover around it (needs ``landcover``
    and a georeference)."""
    if task != TASK:
        raise ValueError(f"not a {TASK} task: {task}")
    grid = tuple(ctx.extra.get("anchor_grid", ANCHOR_GRID))
    if "landcover_mask" not in view.cache:
        view.cache["landcover_mask"] = _mask(view)
    got = view.cache["landcover_mask"]
    if got is None:
        return
    mask, names = got
    w, h = view.width, view.height
    x, y = anchor_pixels(view.record, grid)
    sx, sy = mask.shape[1] / w, mask.shape[0] / h  # the mask may be coarser than the image
    half_x = w / max(int(grid[0]) - 1, 1) / 4.0
    half_y = h / max(int(grid[1]) - 1, 1) / 4.0
    asked: list[tuple[int, float, float, list[float], str]] = []
    for node in range(len(x)):
        px, py = float(x[node]), float(y[node])
        if not (np.isfinite(px) and np.isfinite(py)):
            continue
        if not (
            -EDGE_TOLERANCE * w <= px <= (1 + EDGE_TOLERANCE) * w
            and -EDGE_TOLERANCE * h <= py <= (1 + EDGE_TOLERANCE) * h
        ):
            continue
        px, py = min(max(px, 0.0), float(w)), min(max(py, 0.0), float(h))
        box = [max(px - half_x, 0.0), max(py - half_y, 0.0), min(px + half_x, float(w)), min(py + half_y, float(h))]
        part = mask[
            int(np.floor(box[1] * sy)) : max(int(np.ceil(box[3] * sy)), int(np.floor(box[1] * sy)) + 1),
            int(np.floor(box[0] * sx)) : max(int(np.ceil(box[2] * sx)), int(np.floor(box[0] * sx)) + 1),
        ]
        counts = {names[v]: int(c) for v, c in zip(*np.unique(part, return_counts=True)) if int(v) in names}
        total = sum(counts.values())
        if not total:
            continue
        kind, n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if n / total >= MIN_SHARE:
            asked.append((node, px, py, [round(v, 2) for v in box], kind))
    # every node of an evaluation scene (power); a capped, random subset of a training scene's (so the
    # family does not swamp the other tasks of a training mixture)
    cap = ctx.extra.get("landcover_point_max")
    if cap is None and view.record.split == "train":
        cap = ctx.extra.get("landcover_point_train_max", TRAIN_MAX)
    if cap is not None:
        asked = choose(rng, asked, int(cap))
    for node, px, py, box, kind in asked:
        q = vqa_question(f"What is the land cover in region {ctx.box_text(box, w, h)}?")
        yield single_turn(TASK, q, kind, kind, {"node": node, "point": [round(px, 2), round(py, 2)], "region": box})


SPECS = (
    TaskSpec(
        needs="land-cover masks (record.landcover) and a georeference (record.georef)",
        name=TASK,
        paper="FUSAR-GPT (paper 001, §3.1 anchor grid) + FUSAR-KLIP's region land-cover VQA (paper 004)",
        answer="str land cover of the region around one anchor node",
        generator=generate,
        parser=category_answer,
        scorer=score_single_label,
        metrics=("n", "top1"),
        max_new_tokens=32,
        matches=same_answer,
        label_vocabulary=True,
    ),
)
