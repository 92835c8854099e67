"""``generate_world``: the built-in synthetic SAR world, written as a dataset directory.

Layout of ``OUT`` (other stages rely on it)::

    OUT/samples.jsonl                 one SampleRecord per scene
    OUT/images/<id>.tif               float32 intensity GeoTIFF (band VV, optionally VH), UTM CRS + affine, tags
    OUT/masks/<id>.png                uint8 land-cover class per pixel (keys of CLASSES)
    OUT/optical/<id>.png              RGB rendering of the same scene (unless optical=False)
    OUT/aef/{year}/{zone}{N|S}/*.tiff AlphaEarth-layout embedding tiles (one per site and year)
    OUT/aef/aef_index.csv|.parquet    the official tile index
    OUT/world.json                    parameters and counts of the world
    OUT/preview.png                   (preview=True) one scene: SAR, mask, optical, 3 AEF bands

Each scene is drawn from its own random stream ``default_rng([seed, index])`` (its location
also depends on the number of scenes, through the site layout), so the same seed gives
byte-identical files. Scenes are generated site by site (one embedding tile per site and
year needs all its cells) and listed in index order. The directory appears atomically (built
in a temporary sibling, then renamed).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sarvlm.core.atomic import atomic_dir, atomic_open
from sarvlm.core.errors import SarvlmError
from sarvlm.core.progress import track
from sarvlm.core.record import LandCover, ObjectAnnotation, SampleRecord, write_samples
from sarvlm.synth.backscatter import (
    VH_MINUS_VV_TARGET_DB,
    WAKE_CONTRAST_DB,
    SeaState,
    add_point_scatterers,
    cross_pol_offset_db,
    db_to_linear,
    modulate,
    pick_sea_state,
    sigma0_map,
    speckle,
    texture,
)
from sarvlm.synth.captions import make_captions
from sarvlm.synth.embedding_field import CellLayout, site_embedding_fields
from sarvlm.synth.footprint import DEFAULT_REGION, SceneFootprint, Site, place_scenes
from sarvlm.synth.landcover import CLASSES, WATER, Layout, generate_layout, pick_kind
from sarvlm.synth.optical import render_optical
from sarvlm.synth.scene import Scene
from sarvlm.synth.shapes import paint
from sarvlm.synth.targets import PlacedTarget, place_targets

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
            "layout": {
                "samples": "samples.jsonl",
                "images": "images/",
                "masks": "masks/",
                "optical": "optical/" if self.optical else None,
                "aef": f"{AEF_DIRNAME}/",
            },
            **self.extra,
        }


def _check_pols(polarizations: Sequence[str]) -> tuple[str, ...]:
    pols = tuple(p.strip().upper() for p in polarizations)
    if pols not in (("VV",), ("VV", "VH")):
        raise SarvlmError(f"--pols: the synthetic sensor images VV or VV,VH; got {','.join(polarizations) or '(none)'}")
    return pols


def _check(scenes: int, size: int, looks: float, resolution_m: float, years: Sequence[int]) -> list[int]:
    if isinstance(scenes, bool) or not isinstance(scenes, (int, np.integer)) or scenes <= 0:
        raise SarvlmError(f"--scenes: must be a positive integer, got {scenes!r}")
    if not isinstance(size, (int, np.integer)) or not 32 <= size <= 2048:
        raise SarvlmError(f"--size: must be an integer between 32 and 2048 pixels, got {size!r}")
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


def _tile_offsets(site: Site) -> tuple[int, int]:
    return int(round((_AEF_NORTH_REF - site.north) / 10.0)), int(round(site.west / 10.0))


def cell_key(seed: int, index: int) -> int:
    """Key of scene ``index``'s cell in the crop hash shared by the optical and embedding renderers."""
    return int(seed) * 1_000_003 + int(index)


def render_sar(
    scene: Layout,
    targets: Sequence[PlacedTarget],
    sea: SeaState,
    looks: float,
    rng: np.random.Generator,
    vh_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """(P, H, W) float32 intensity of a scene window: VV, and VH when ``vh_rng`` is given.

    Order: background σ0 and texture parameter; wakes (relative to the sea, on open water not
    covered by an object, at the ship's true position: moving ships are imaged displaced in
    azimuth from their wakes); object parts and their bright points; texture and speckle. VH
    shares the VV texture and draws its own speckle from ``vh_rng``.
    """
    sigma, nu = sigma0_map(scene, rng, sea)
    open_water = scene.classes == WATER
    for t in targets:
        open_water &= ~t.mask
    turbulent_db, kelvin_db = WAKE_CONTRAST_DB[sea.name]
    for t in targets:
        for poly, part in t.wake:
            modulate(
                sigma,
                poly + np.asarray(t.wake_offset_px),
                turbulent_db if part == "turbulent" else kelvin_db,
                open_water,
            )
    xpol = cross_pol_offset_db(scene) if vh_rng is not None else None
    points = []
    for t in targets:
        for poly, db, _rgb, in_box in t.parts:
            paint(sigma, poly, np.float32(10.0 ** (db / 10.0)))
            if xpol is not None and in_box:
                paint(xpol, poly, VH_MINUS_VV_TARGET_DB)
        points.extend(t.points)
    add_point_scatterers(sigma, points)
    tau = texture(nu, rng)
    bands = [speckle(sigma, nu, looks, rng, tau=tau)]
    if xpol is not None:
        bands.append(speckle(sigma * db_to_linear(xpol), nu, looks, vh_rng, tau=tau))
    return np.stack(bands)


def make_scene(
    index: int,
    fp: SceneFootprint,
    seed: int,
    looks: float,
    years: Sequence[int],
    optical: bool = True,
    polarizations: Sequence[str] = ("VV",),
) -> Scene:
    """Generate scene ``index`` of the world with ``seed`` inside footprint ``fp`` (no I/O).

    With ``polarizations=("VV", "VH")`` the VH band shares the VV texture and gets its own
    speckle (from the stream ``[seed, index, 2]``, so the VV band is the same either way).
    """
    scene_seed = [int(seed), int(index)]
    rng = np.random.default_rng(scene_seed)
    sid = f"synth_{index:05d}"
    kind = pick_kind(rng)
    year = int(years[int(rng.integers(len(years)))])
    date = f"{year}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}"

    cell = generate_layout(rng, fp.cell_px, fp.resolution_m, kind)
    scene = cell.window(fp.offset_px, fp.offset_px, fp.size)  # a view: pier edits reach the cell
    targets = place_targets(scene, rng)

    sea = pick_sea_state(rng, kind)
    dual = "VH" in polarizations
    intensity = render_sar(scene, targets, sea, looks, rng, np.random.default_rng(scene_seed + [2]) if dual else None)
    key = cell_key(seed, index)
    rgb = render_optical(scene, targets, year, key, rng) if optical else None

    objects, clutter, moving = [], [], []
    for t in targets:
        if t.annotated:
            oid = f"{sid}-{len(objects)}"
            objects.append(
                ObjectAnnotation(
                    category=t.category,
                    fine_category=t.fine,
                    bbox=t.bbox,
                    polygon=None if t.category == "harbor" else t.outline,
                    id=oid,
                )
            )
            if t.wake:
                moving.append({"id": oid, "speed_ms": t.speed_ms, "wake_offset_px": list(t.wake_offset_px)})
        else:
            clutter.append({"bbox": t.bbox, "looks_like": t.fine})
    mask = np.ascontiguousarray(scene.classes)
    fractions = {k: round(v, 4) for k, v in scene.fractions().items()}
    pols = ["VV", "VH"] if dual else ["VV"]
    captions = make_captions(kind, objects, fractions, fp.size, fp.size, fp.resolution_m, "/".join(pols))
    lon, lat = fp.center_lonlat()
    meta = {
        "kind": kind,
        "looks": float(looks),
        "utm_zone": fp.zone_label,
        "center_lonlat": [round(lon, 6), round(lat, 6)],
        "landcover_fractions": fractions,
        "clutter": clutter,
        "moving": moving,
    }
    if (mask == WATER).any():
        meta["sea_state"] = sea.name
    record = SampleRecord(
        id=sid,
        image=f"images/{sid}.tif",
        optical=f"optical/{sid}.png" if optical else None,
        width=fp.size,
        height=fp.size,
        sensor=SENSOR,
        band=BAND,
        polarizations=pols,
        resolution_m=fp.resolution_m,
        date=date,
        georef=fp.georef(),
        objects=objects,
        landcover=LandCover(mask=f"masks/{sid}.png", classes=dict(CLASSES)),
        captions=captions,
        source=SENSOR,
        meta=meta,
    )
    # Keep only what the embedding field needs of the cell.
    light = Layout(
        kind,
        cell.resolution_m,
        cell.classes,
        cell.parcels,
        cell.buildings[:0, :0],
        cell.roads[:0, :0],
        cell.pavement[:0, :0],
    )
    return Scene(record, intensity, mask, rgb, CellLayout(fp.slot[0], fp.slot[1], light, key), fp, len(clutter))


def _write_scene(root: Path, sc: Scene) -> None:
    from sarvlm.io.raster import write_raster

    rec = sc.record
    tags = {
        "SENSOR": SENSOR,
        "BAND": BAND,
        "POLARIZATION": ",".join(rec.polarizations),
        "UNITS": "linear intensity (sigma0)",
        "LOOKS": f"{rec.meta['looks']:g}",
        "RESOLUTION_M": f"{rec.resolution_m:g}",
        "ACQUISITION_DATE": rec.date,
        "SCENE_KIND": rec.meta["kind"],
    }
    # Speckled float32 barely compresses (-17% with deflate at 10x the write time): store raw.
    write_raster(
        root / rec.image, sc.intensity, georef=rec.georef, tags=tags, compress=None, band_descriptions=rec.polarizations
    )
    write_raster(root / rec.landcover.mask, sc.mask)
    if sc.optical is not None:
        write_raster(root / rec.optical, np.ascontiguousarray(sc.optical.transpose(2, 0, 1)))


def _write_site_tiles(
    root: Path, site: Site, cells: list[CellLayout], years: Sequence[int], seed: int
) -> dict[int, np.ndarray]:
    """Write the site's embedding tile for every year; return the fields (year -> (64, H, W))."""
    from sarvlm.io.aef_layout import quantize_aef, write_aef_tile

    fields = site_embedding_fields(site, cells, years, [int(seed), 1 << 29, site.index])
    y_off, x_off = _tile_offsets(site)
    for year, field_ in fields.items():
        write_aef_tile(
            root / AEF_DIRNAME,
            year,
            site.zone,
            "N" if site.north_hemisphere else "S",
            "sarvlm_synth",
            quantize_aef(field_),
            site.aef_transform(),
            offset=(y_off, x_off),
        )
    return fields


def _build_site(
    root: Path,
    site: Site,
    indices: Sequence[int],
    footprints: Sequence[SceneFootprint],
    seed: int,
    looks: float,
    years: Sequence[int],
    optical: bool,
    preview: bool,
    polarizations: Sequence[str] = ("VV",),
) -> list[SampleRecord]:
    """Generate and write every scene of one site, then the site's embedding tiles.

    Runs in the main process or in a worker; ``preview`` renders scene ``indices[0]``.
    """
    records = []
    cells = []
    first: Scene | None = None
    for i, fp in zip(indices, footprints, strict=True):
        sc = make_scene(i, fp, seed, looks, years, optical, polarizations)
        _write_scene(root, sc)
        records.append(sc.record)
        cells.append(sc.cell)
        if preview and first is None:
            first = sc
    fields = _write_site_tiles(root, site, cells, years, seed)
    if first is not None:
        from sarvlm.synth.preview import render_preview

        render_preview(root / "preview.png", first, site, fields)
    return records


def default_workers(scenes: int) -> int:
    """Worker count the CLI uses when ``--workers`` is not given."""
    # Worker start-up (imports) costs about a second: only worth it for larger worlds.
    return 1 if scenes < 24 else max(1, min(2, os.cpu_count() or 1))


def generate_world(
    out_dir: str | Path,
    scenes: int,
    seed: int = 0,
    *,
    size: int = 256,
    looks: float = 4.0,
    resolution_m: float = 2.0,
    optical: bool = True,
    years: Sequence[int] = DEFAULT_YEARS,
    region: tuple[float, float, float, float] = DEFAULT_REGION,
    overwrite: bool = False,
    preview: bool = False,
    workers: int | None = 1,
    polarizations: Sequence[str] = ("VV",),
    geovl_corrupt: float | None = None,
) -> WorldSummary:
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
            every one of them over every site (so each footprint also has other years).
        region: WGS84 box the scenes are placed in; the default straddles UTM zones 50N/51N.
        overwrite: replace a non-empty ``out_dir``.
        preview: also write ``preview.png`` (scene 0: SAR, mask, optical, 3 embedding bands).
        workers: processes generating sites in parallel; ``None`` picks 2 for 24+ scenes on a
            multi-core machine, else 1. Workers are spawned, so a calling script needs the usual
            ``if __name__ == "__main__":`` guard. Output bytes do not depend on it.
        polarizations: ``("VV",)`` or ``("VV", "VH")`` (a second, cross-polarised band).
        geovl_corrupt: when given, also write a FUSAR-GEOVL 8-field ``structured`` caption per scene
            with this fraction of fragments corrupted (recorded in ``meta.geovl_corruptions``; see
            :mod:`sarvlm.synth.geovl_captions`); ``0.0`` writes clean 8-field captions.

    Returns:
        A :class:`WorldSummary` (also written to ``out_dir/world.json``).
    """
    ys = _check(scenes, size, looks, resolution_m, years)
    pols = _check_pols(polarizations)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SarvlmError(f"--seed: must be a non-negative integer, got {seed!r}")
    n = int(scenes)
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise SarvlmError(f"--workers: must be a positive integer, got {workers!r}")
    n_workers = default_workers(n) if workers is None else int(workers)
    if geovl_corrupt is not None and not 0.0 <= float(geovl_corrupt) < 1.0:
        raise SarvlmError(f"--geovl-corrupt: must be a fraction in [0, 1), got {geovl_corrupt}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SarvlmError(f"{out_dir}: exists and is not a directory")
    sites, footprints = place_scenes(
        n, int(size), float(resolution_m), np.random.default_rng([int(seed), 1 << 30]), region
    )
    jobs = []
    for site in sites:
        idx = list(range(site.index, n, len(sites)))
        jobs.append(
            (
                site,
                idx,
                [footprints[i] for i in idx],
                int(seed),
                float(looks),
                ys,
                bool(optical),
                bool(preview) and site.index == 0,
                pols,
            )
        )
    records: dict[int, SampleRecord] = {}
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for d in ("images", "masks", AEF_DIRNAME) + (("optical",) if optical else ()):
            (tmp / d).mkdir()

        def per_scene(results):
            for recs in results:
                for rec in recs:
                    records[int(rec.id.rsplit("_", 1)[1])] = rec
                    yield rec

        if n_workers == 1:
            results = (_build_site(tmp, *job) for job in jobs)
            for _ in track(per_scene(results), description=f"synth: {n} scenes", total=n):
                pass
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: the caller may hold threads (torch, rich) that fork would copy mid-state.
            with ProcessPoolExecutor(max_workers=min(n_workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(_build_site, tmp, *job) for job in jobs]
                results = (f.result() for f in futures)
                for _ in track(per_scene(results), description=f"synth: {n} scenes ({n_workers} workers)", total=n):
                    pass
        ordered = [records[i] for i in range(n)]
        if geovl_corrupt is not None:
            from sarvlm.synth.geovl_captions import add_geovl_captions

            ordered = add_geovl_captions(ordered, int(seed), float(geovl_corrupt))
        write_samples(tmp / "samples.jsonl", ordered)
        from sarvlm.io.aef_layout import write_aef_index

        write_aef_index(tmp / AEF_DIRNAME)
        summary = _summarise(
            out_dir,
            ordered,
            sites,
            len(sites) * len(ys),
            int(seed),
            int(size),
            float(resolution_m),
            float(looks),
            ys,
            bool(optical),
            region,
        )
        summary.extra["polarizations"] = list(pols)
        if geovl_corrupt is not None:
            summary.extra["geovl_captions"] = {
                "corrupt_fraction": float(geovl_corrupt),
                "corrupted_fragments": sum(len(r.meta["geovl_corruptions"]) for r in ordered),
                "fragments": 8 * len(ordered),
            }
        with atomic_open(tmp / "world.json") as fh:
            json.dump(summary.to_dict(), fh, indent=2, sort_keys=False)
            fh.write("\n")
    return summary


def _summarise(
    out_dir: Path,
    records: Sequence[SampleRecord],
    sites: Sequence[Site],
    tiles: int,
    seed: int,
    size: int,
    resolution_m: float,
    looks: float,
    years: list[int],
    optical: bool,
    region: tuple[float, float, float, float],
) -> WorldSummary:
    kinds: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    fine: Counter[str] = Counter()
    clutter = 0
    for rec in records:
        kinds[rec.meta["kind"]] += 1
        clutter += len(rec.meta.get("clutter", []))
        for o in rec.objects:
            objects[o.category] += 1
            if o.fine_category:
                fine[f"{o.category}/{o.fine_category}"] += 1
    return WorldSummary(
        out_dir=out_dir,
        scenes=len(records),
        seed=seed,
        size=size,
        resolution_m=resolution_m,
        looks=looks,
        years=years,
        zones=sorted({s.zone_label for s in sites}),
        kinds=dict(sorted(kinds.items())),
        objects=dict(sorted(objects.items())),
        fine_objects=dict(sorted(fine.items())),
        clutter=clutter,
        aef_tiles=tiles,
        optical=optical,
        extra={"sites": len(sites), "region": list(region)},
    )
