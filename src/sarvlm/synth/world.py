"""``generate_world``: the built-in synthetic SAR world, written as a dataset directory.

Layout of ``OUT`` (other stages rely on it)::

    OUT/samples.jsonl                 one SampleRecord per scene
    OUT/images/<id>.tif               float32 intensity GeoTIFF, UTM CRS + affine, tags
    OUT/masks/<id>.png                uint8 land-cover class per pixel (keys of CLASSES)
    OUT/optical/<id>.png              RGB rendering of the same scene (unless optical=False)
    OUT/aef/{year}/{zone}{N|S}/*.tiff AlphaEarth-layout embedding tiles (one per scene cell and year)
    OUT/aef/aef_index.csv|.parquet    the official tile index
    OUT/world.json                    parameters and counts of the world
    OUT/preview.png                   (preview=True) one scene: SAR, mask, optical, 3 AEF bands

Each scene is drawn from its own random stream ``default_rng([seed, index])``, so the same
seed gives byte-identical files, and scene i does not depend on how many scenes follow it.
The directory appears atomically (built in a temporary sibling, then renamed).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sarvlm.data.record import LandCover, ObjectAnnotation, SampleRecord, write_samples
from sarvlm.errors import SarvlmError
from sarvlm.io.atomic import atomic_dir, atomic_open
from sarvlm.progress import track
from sarvlm.synth.backscatter import add_point_scatterers, pick_sea_state, sigma0_map, speckle
from sarvlm.synth.captions import make_captions
from sarvlm.synth.embedding_field import embedding_field
from sarvlm.synth.footprint import DEFAULT_REGION, SceneFootprint, place_footprints
from sarvlm.synth.landcover import CLASSES, WATER, generate_layout, pick_kind
from sarvlm.synth.optical import render_optical
from sarvlm.synth.shapes import paint
from sarvlm.synth.targets import place_targets

SENSOR = "sarvlm-synth"
BAND = "C"
DEFAULT_YEARS = (2021, 2022)
AEF_DIRNAME = "aef"
# AEF tile offsets are given on each zone's 10 m grid from easting 0 / northing 10,000 km.
_AEF_NORTH_REF = 10_000_000.0


@dataclass
class WorldSummary:
    """What :func:`generate_world` wrote."""

    out_dir: Path
    scenes: int
    seed: int
    size: int
    resolution_m: float
    looks: float
    years: list[int]
    zones: list[str]
    kinds: dict[str, int]
    objects: dict[str, int]
    fine_objects: dict[str, int]
    clutter: int
    aef_tiles: int
    optical: bool
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "generator": SENSOR,
            "scenes": self.scenes,
            "seed": self.seed,
            "size": self.size,
            "resolution_m": self.resolution_m,
            "looks": self.looks,
            "years": self.years,
            "zones": self.zones,
            "kinds": self.kinds,
            "objects": self.objects,
            "fine_objects": self.fine_objects,
            "clutter": self.clutter,
            "aef_tiles": self.aef_tiles,
            "optical": self.optical,
            "classes": {str(k): v for k, v in CLASSES.items()},
            "layout": {"samples": "samples.jsonl", "images": "images/", "masks": "masks/",
                       "optical": "optical/" if self.optical else None, "aef": f"{AEF_DIRNAME}/"},
            **self.extra,
        }


def _check(scenes: int, size: int, looks: float, resolution_m: float, years: Sequence[int]) -> list[int]:
    if isinstance(scenes, bool) or not isinstance(scenes, (int, np.integer)) or scenes <= 0:
        raise SarvlmError(f"--scenes: must be a positive integer, got {scenes!r}")
    if not isinstance(size, (int, np.integer)) or not 32 <= size <= 4096:
        raise SarvlmError(f"--size: must be an integer between 32 and 4096 pixels, got {size!r}")
    if not (isinstance(looks, (int, float)) and math.isfinite(looks) and looks > 0):
        raise SarvlmError(f"--looks: must be a positive number, got {looks!r}")
    if not (isinstance(resolution_m, (int, float)) and math.isfinite(resolution_m) and 0.1 <= resolution_m <= 30):
        raise SarvlmError(f"--resolution: must be between 0.1 and 30 metres, got {resolution_m!r}")
    ys = sorted({int(y) for y in years})
    if not ys:
        raise SarvlmError("--years: give at least one year")
    bad = [y for y in ys if not 2017 <= y <= 2100]
    if bad:
        raise SarvlmError(f"--years: AlphaEarth annual embeddings start in 2017, got {bad[0]}")
    return ys


def _tile_offsets(fp: SceneFootprint) -> tuple[int, int]:
    return int(round((_AEF_NORTH_REF - fp.cell_north) / 10.0)), int(round(fp.cell_west / 10.0))


@dataclass
class Scene:
    """One generated scene in memory (what the files hold), before writing."""

    record: SampleRecord
    intensity: np.ndarray  # (H, W) float32
    mask: np.ndarray  # (H, W) uint8
    optical: np.ndarray | None  # (H, W, 3) uint8
    aef: dict[int, np.ndarray]  # year -> (64, n, n) float32 over the cell
    footprint: SceneFootprint
    clutter: int


def make_scene(index: int, fp: SceneFootprint, seed: int, looks: float, years: Sequence[int],
               optical: bool = True) -> Scene:
    """Generate scene ``index`` of the world with ``seed`` inside footprint ``fp`` (no I/O)."""
    scene_seed = [int(seed), int(index)]
    rng = np.random.default_rng(scene_seed)
    sid = f"synth_{index:05d}"
    kind = pick_kind(rng)
    year = int(years[int(rng.integers(len(years)))])
    date = f"{year}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}"

    cell = generate_layout(rng, fp.cell_px, fp.resolution_m, kind)
    scene = cell.window(fp.offset_px, fp.offset_px, fp.size)  # a view: pier edits reach the cell
    targets = place_targets(scene, rng)

    sea = pick_sea_state(rng)
    sigma, nu = sigma0_map(scene, rng, sea)
    points = []
    for t in targets:
        for poly, db, _rgb, _in_box in t.parts:
            paint(sigma, poly, np.float32(10.0 ** (db / 10.0)))
        points.extend(t.points)
    add_point_scatterers(sigma, points)
    intensity = speckle(sigma, nu, looks, rng)
    rgb = render_optical(scene, targets, year, int(seed), rng) if optical else None

    objects = []
    clutter = []
    for t in targets:
        if t.annotated:
            objects.append(ObjectAnnotation(category=t.category, fine_category=t.fine, bbox=t.bbox,
                                            polygon=None if t.category == "harbor" else t.outline,
                                            id=f"{sid}-{len(objects)}"))
        else:
            clutter.append({"bbox": t.bbox, "looks_like": t.fine})
    mask = np.ascontiguousarray(scene.classes)
    fractions = {k: round(v, 4) for k, v in scene.fractions().items()}
    captions = make_captions(kind, objects, fractions, fp.size, fp.size, fp.resolution_m)
    lon, lat = fp.center_lonlat()
    meta = {
        "kind": kind,
        "looks": float(looks),
        "utm_zone": fp.zone_label,
        "center_lonlat": [round(lon, 6), round(lat, 6)],
        "landcover_fractions": fractions,
        "clutter": clutter,
    }
    if (mask == WATER).any():
        meta["sea_state"] = sea.name
    record = SampleRecord(
        id=sid, image=f"images/{sid}.tif", optical=f"optical/{sid}.png" if optical else None,
        width=fp.size, height=fp.size, sensor=SENSOR, band=BAND, polarizations=["VV"],
        resolution_m=fp.resolution_m, date=date, georef=fp.georef(), objects=objects,
        landcover=LandCover(mask=f"masks/{sid}.png", classes=dict(CLASSES)), captions=captions,
        source=SENSOR, meta=meta,
    )
    aef = {y: embedding_field(cell, fp, y, int(seed), scene_seed) for y in years}
    return Scene(record, intensity, mask, rgb, aef, fp, len(clutter))


def _write_scene(root: Path, sc: Scene) -> int:
    from sarvlm.io.raster import write_raster
    from sarvlm.priors.aef_layout import quantize_aef, write_aef_tile

    rec = sc.record
    tags = {
        "SENSOR": SENSOR, "BAND": BAND, "POLARIZATION": "VV", "UNITS": "linear intensity (sigma0)",
        "LOOKS": f"{rec.meta['looks']:g}", "RESOLUTION_M": f"{rec.resolution_m:g}", "ACQUISITION_DATE": rec.date,
        "SCENE_KIND": rec.meta["kind"],
    }
    write_raster(root / rec.image, sc.intensity, georef=rec.georef, tags=tags, band_descriptions=["VV"])
    write_raster(root / rec.landcover.mask, sc.mask)
    if sc.optical is not None:
        write_raster(root / rec.optical, np.ascontiguousarray(sc.optical.transpose(2, 0, 1)))
    fp = sc.footprint
    y_off, x_off = _tile_offsets(fp)
    for year, field_ in sc.aef.items():
        write_aef_tile(root / AEF_DIRNAME, year, fp.zone, "N" if fp.north else "S", "sarvlm_synth",
                       quantize_aef(field_), fp.aef_transform(), offset=(y_off, x_off))
    return len(sc.aef)


def generate_world(out_dir: str | Path, scenes: int, seed: int = 0, *, size: int = 256, looks: float = 4.0,
                   resolution_m: float = 2.0, optical: bool = True, years: Sequence[int] = DEFAULT_YEARS,
                   region: tuple[float, float, float, float] = DEFAULT_REGION, overwrite: bool = False,
                   preview: bool = False) -> WorldSummary:
    """Generate ``scenes`` synthetic SAR scenes with annotations and an AlphaEarth-layout field.

    Args:
        out_dir: output directory; must be absent or empty unless ``overwrite``.
        scenes: number of scenes (> 0).
        seed: world seed; the same seed gives byte-identical files.
        size: scene side in pixels (square scenes).
        looks: number of looks L of the Gamma speckle.
        resolution_m: pixel spacing in metres.
        optical: also render the paired optical PNGs.
        years: acquisition years scenes are drawn from; the embedding field is written for
            every one of them over every scene cell (so each footprint also has other years).
        region: WGS84 box the scenes are placed in; the default straddles UTM zones 50N/51N.
        overwrite: replace a non-empty ``out_dir``.
        preview: also write ``preview.png`` (scene 0: SAR, mask, optical, 3 embedding bands).

    Returns:
        A :class:`WorldSummary` (also written to ``out_dir/world.json``).
    """
    ys = _check(scenes, size, looks, resolution_m, years)
    out_dir = Path(out_dir)
    footprints = place_footprints(int(scenes), int(size), float(resolution_m), np.random.default_rng([int(seed), 1 << 30]), region)
    kinds: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    fine: Counter[str] = Counter()
    zones: set[str] = set()
    clutter = 0
    tiles = 0
    records = []
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for d in ("images", "masks", AEF_DIRNAME) + (("optical",) if optical else ()):
            (tmp / d).mkdir()
        first: Scene | None = None
        for i in track(range(int(scenes)), description=f"synth: {scenes} scenes", total=int(scenes)):
            sc = make_scene(i, footprints[i], int(seed), float(looks), ys, optical)
            tiles += _write_scene(tmp, sc)
            records.append(sc.record)
            kinds[sc.record.meta["kind"]] += 1
            zones.add(sc.footprint.zone_label)
            clutter += sc.clutter
            for o in sc.record.objects:
                objects[o.category] += 1
                if o.fine_category:
                    fine[f"{o.category}/{o.fine_category}"] += 1
            if i == 0 and preview:
                first = sc
        write_samples(tmp / "samples.jsonl", records)
        from sarvlm.priors.aef_layout import write_aef_index

        write_aef_index(tmp / AEF_DIRNAME)
        summary = WorldSummary(out_dir=out_dir, scenes=int(scenes), seed=int(seed), size=int(size),
                               resolution_m=float(resolution_m), looks=float(looks), years=ys,
                               zones=sorted(zones), kinds=dict(sorted(kinds.items())),
                               objects=dict(sorted(objects.items())), fine_objects=dict(sorted(fine.items())),
                               clutter=clutter, aef_tiles=tiles, optical=bool(optical),
                               extra={"region": list(region)})
        with atomic_open(tmp / "world.json") as fh:
            json.dump(summary.to_dict(), fh, indent=2, sort_keys=False)
            fh.write("\n")
        if first is not None:
            from sarvlm.synth.preview import render_preview

            render_preview(tmp / "preview.png", first)
    return summary
