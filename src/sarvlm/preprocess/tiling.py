"""Resolution-consistent tiling (SRC, FUSAR-KLIP): every tile covers the same ground extent.

The tile size in pixels follows the scene's pixel spacing: a 1 km tile is 1024 px at ~0.98 m and
5120 px at ~0.2 m, per axis (anisotropic pixels such as Sentinel-1 SLC get rectangular windows).
Tiles can be resampled to a common pixel size (``target_res_m``): area-averaging when shrinking
(multi-looking for intensity), bilinear when enlarging. Tiles are read window by window through
rasterio, so a scene larger than memory is tiled with bounded memory.

Each tile gets its own georeference (:func:`sarvlm.io.georef.georef_for_window`) and its objects
(boxes in tile pixels; clipped to the tile, or dropped when less than ``min_visible`` of the box
area remains; both counted). Without a georeference or a resolution, tiling runs in pixel mode
with a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from sarvlm.core.errors import InputError
from sarvlm.core.record import GeoRef, ObjectAnnotation, SampleRecord

EdgeMode = Literal["shift", "drop"]
# Pixel size assumed in pixel mode (no georeference, no resolution): tile_m then counts pixels.
PIXEL_MODE_SPACING_M = 1.0


class PixelModeWarning(UserWarning):
    """Tiling without a georeference or resolution: tile sizes are in pixels."""


@dataclass(frozen=True)
class TileSpec:
    """One tile: a window of the source scene and the size it is written at."""

    row: int  # tile row / column in the tile grid
    col: int
    col_off: int  # window in source pixels
    row_off: int
    src_width: int
    src_height: int
    width: int  # output size in pixels (differs from the window when resampled)
    height: int

    @property
    def scale_x(self) -> float:
        return self.src_width / self.width

    @property
    def scale_y(self) -> float:
        return self.src_height / self.height

    @property
    def window(self) -> tuple[int, int, int, int]:
        return (self.col_off, self.row_off, self.src_width, self.src_height)


@dataclass(frozen=True)
class TilePlan:
    """The tile grid of one scene."""

    tiles: tuple[TileSpec, ...]
    spacing_m: tuple[float, float]  # source pixel size (x, y) in metres
    out_resolution_m: float | None  # pixel size of the written tiles (None in pixel mode without target)
    pixel_mode: bool

    def __len__(self) -> int:
        return len(self.tiles)


def _starts(size: int, tile: int, edge: EdgeMode) -> list[int]:
    if tile > size:
        return []
    starts = list(range(0, size - tile + 1, tile))
    if edge == "shift" and starts[-1] + tile < size:
        starts.append(size - tile)  # last tile flush with the scene edge, overlapping its neighbour
    return starts


def scene_spacing_m(
    width: int, height: int, georef: GeoRef | None, resolution_m: float | None
) -> tuple[tuple[float, float], bool]:
    """Pixel spacing ``(x, y)`` in metres and whether it had to be assumed (pixel mode)."""
    if georef is not None:
        from sarvlm.io.georef import pixel_spacing_m

        return pixel_spacing_m(georef, width, height), False
    if resolution_m:
        return (float(resolution_m), float(resolution_m)), False
    return (PIXEL_MODE_SPACING_M, PIXEL_MODE_SPACING_M), True


def plan_tiles(
    width: int,
    height: int,
    tile_m: float,
    *,
    georef: GeoRef | None = None,
    resolution_m: float | None = None,
    target_res_m: float | None = None,
    edge: EdgeMode = "shift",
    where: str = "scene",
) -> TilePlan:
    """Lay out SRC tiles of ``tile_m`` metres over a ``width x height`` scene.

    The pixel spacing comes from ``georef`` (measured at the scene centre), else ``resolution_m``,
    else pixel mode (1 px = 1 m assumed, :class:`PixelModeWarning`). ``edge="shift"`` adds a last
    tile flush with the right/bottom edge (overlapping its neighbour) so the whole scene is covered;
    ``"drop"`` leaves the remainder out. A scene smaller than one tile yields no tiles.
    """
    if not (tile_m and tile_m > 0 and math.isfinite(tile_m)):
        raise InputError(f"tile_m: tile size must be a positive number of metres, got {tile_m}")
    if target_res_m is not None and not (target_res_m > 0 and math.isfinite(target_res_m)):
        raise InputError(f"target_res_m: must be a positive number of metres, got {target_res_m}")
    if edge not in ("shift", "drop"):
        raise InputError(f"edge: must be 'shift' or 'drop', got {edge!r}")
    (dx, dy), pixel_mode = scene_spacing_m(width, height, georef, resolution_m)
    if pixel_mode:
        warnings.warn(
            f"{where}: no georeference or resolution: tiling in pixel mode ({tile_m:g} px tiles, "
            "tiles carry no georeference)",
            PixelModeWarning,
            stacklevel=2,
        )
    tile_w = max(1, round(tile_m / dx))
    tile_h = max(1, round(tile_m / dy))
    out_res: float | None
    if target_res_m is not None:
        out_w = out_h = max(1, round(tile_m / target_res_m))
        out_res = float(target_res_m)
    else:
        out_w, out_h = tile_w, tile_h
        out_res = None if pixel_mode else float(math.sqrt(dx * dy))
    tiles = tuple(
        TileSpec(row=r, col=c, col_off=x0, row_off=y0, src_width=tile_w, src_height=tile_h, width=out_w, height=out_h)
        for r, y0 in enumerate(_starts(height, tile_h, edge))
        for c, x0 in enumerate(_starts(width, tile_w, edge))
    )
    return TilePlan(tiles=tiles, spacing_m=(dx, dy), out_resolution_m=out_res, pixel_mode=pixel_mode)


def read_tile(
    dataset: Any, spec: TileSpec, bands: list[int] | None = None, halo: int = 0, resampling: str | None = None
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Read one tile (``(bands, height, width)``) from an open rasterio dataset.

    ``halo`` extra output pixels are read around the tile where the scene has them (for filters
    that need context); the returned crop ``(top, bottom, left, right)`` removes them again.
    Complex pixels come back as they are; resampling is ``average`` when shrinking, ``bilinear``
    when enlarging, unless given.
    """
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    from sarvlm.io.raster import read_checked

    sx, sy = spec.scale_x, spec.scale_y
    hx, hy = halo * sx, halo * sy
    x0, y0 = max(0.0, spec.col_off - hx), max(0.0, spec.row_off - hy)
    x1 = min(float(dataset.width), spec.col_off + spec.src_width + hx)
    y1 = min(float(dataset.height), spec.row_off + spec.src_height + hy)
    left, top = round((spec.col_off - x0) / sx), round((spec.row_off - y0) / sy)
    out_w = left + spec.width + round((x1 - spec.col_off - spec.src_width) / sx)
    out_h = top + spec.height + round((y1 - spec.row_off - spec.src_height) / sy)
    indexes = bands or list(range(1, dataset.count + 1))
    window = Window(x0, y0, x1 - x0, y1 - y0)
    # rasterio cannot return complex int16 (Sentinel-1 SLC) as such; GDAL converts to complex64.
    out_dtype = "complex64" if dataset.dtypes[0] == "complex_int16" else None
    # the source window is what GDAL decodes: size-check it before any allocation (docs/security.md)
    read_checked(dataset, indexes, window=window, out_dtype=out_dtype, check_only=True)
    if spec.width == spec.src_width and spec.height == spec.src_height:
        data = dataset.read(indexes, window=window, out_dtype=out_dtype)
    elif dataset.dtypes[0].startswith("complex"):
        data = _resample_complex_as_intensity(
            dataset.read(indexes, window=window, out_dtype=out_dtype), (out_h, out_w), resampling
        )
    else:
        method = resampling or ("average" if spec.width < spec.src_width else "bilinear")
        data = dataset.read(
            indexes,
            window=window,
            out_shape=(len(indexes), out_h, out_w),
            resampling=Resampling[method],
            out_dtype=out_dtype,
        )
    return data, (top, out_h - top - spec.height, left, out_w - left - spec.width)


def _resample_complex_as_intensity(data: np.ndarray, shape: tuple[int, int], resampling: str | None) -> np.ndarray:
    """Resample complex SLC pixels by their intensity (incoherent multi-looking).

    Averaging complex values would sum them coherently and destroy the speckle statistics, so the
    intensity ``|z|^2`` is resampled (GDAL ``average`` when shrinking) and returned as the complex
    amplitude ``sqrt(I) + 0j`` (the phase of a resampled pixel has no meaning), so ``|z|^2`` downstream
    is the resampled intensity.
    """
    from rasterio.enums import Resampling
    from rasterio.transform import Affine
    from rasterio.warp import reproject

    bands, h, w = data.shape
    out_h, out_w = shape
    intensity = (np.abs(data) ** 2).astype(np.float32)
    out = np.zeros((bands, out_h, out_w), np.float32)
    method = resampling or ("average" if out_w < w else "bilinear")
    reproject(
        intensity,
        out,
        src_transform=Affine.identity(),
        src_crs="EPSG:3857",
        dst_transform=Affine.scale(w / out_w, h / out_h),
        dst_crs="EPSG:3857",
        resampling=Resampling[method],
    )
    return np.sqrt(out).astype(np.complex64)


def clip_objects(
    objects: list[ObjectAnnotation], spec: TileSpec, min_visible: float = 0.5
) -> tuple[list[ObjectAnnotation], int, int]:
    """Objects of the scene mapped into tile pixels: ``(kept, clipped count, dropped count)``.

    A box is kept (clipped to the tile) when at least ``min_visible`` of its area lies inside, and
    dropped otherwise. Polygons are mapped and clamped to the tile.
    """
    kept: list[ObjectAnnotation] = []
    clipped = dropped = 0
    sx, sy = spec.scale_x, spec.scale_y
    for obj in objects:
        x1, y1, x2, y2 = obj.bbox
        ix1, iy1 = max(x1, spec.col_off), max(y1, spec.row_off)
        ix2, iy2 = min(x2, spec.col_off + spec.src_width), min(y2, spec.row_off + spec.src_height)
        if ix2 <= ix1 or iy2 <= iy1:
            continue  # entirely outside: not this tile's object
        area = max((x2 - x1) * (y2 - y1), 1e-9)
        visible = (ix2 - ix1) * (iy2 - iy1) / area
        if visible < min_visible:
            dropped += 1
            continue
        if visible < 1.0:
            clipped += 1
        box = [
            round((ix1 - spec.col_off) / sx, 3),
            round((iy1 - spec.row_off) / sy, 3),
            round((ix2 - spec.col_off) / sx, 3),
            round((iy2 - spec.row_off) / sy, 3),
        ]
        poly = None
        if obj.polygon:
            xs = np.clip((np.asarray(obj.polygon[0::2]) - spec.col_off) / sx, 0, spec.width)
            ys = np.clip((np.asarray(obj.polygon[1::2]) - spec.row_off) / sy, 0, spec.height)
            poly = [round(float(v), 3) for pair in zip(xs, ys) for v in pair]
        kept.append(obj.model_copy(update={"bbox": box, "polygon": poly}))
    return kept, clipped, dropped


def tile_georef(georef: GeoRef | None, spec: TileSpec, parent_width: int, parent_height: int) -> GeoRef | None:
    """The georeference of a tile (with a WGS84 footprint box when the scene had one)."""
    if georef is None:
        return None
    from sarvlm.io.georef import footprint_wgs84, georef_for_window

    sub = georef_for_window(
        georef,
        spec.col_off,
        spec.row_off,
        spec.width,
        spec.height,
        scale_x=spec.scale_x,
        scale_y=spec.scale_y,
        parent_width=parent_width,
        parent_height=parent_height,
    )
    if georef.bbox_wgs84 is not None and sub.bbox_wgs84 is None:
        sub = sub.model_copy(
            update={"bbox_wgs84": [round(v, 8) for v in footprint_wgs84(sub, spec.width, spec.height)]}
        )
    return sub


def tile_id(record_id: str, spec: TileSpec) -> str:
    """Stable id of a tile: ``<scene id>_r<row>c<col>``."""
    return f"{record_id}_r{spec.row:03d}c{spec.col:03d}"


def tile_record(
    record: SampleRecord, spec: TileSpec, plan: TilePlan, image: str, georef: GeoRef | None, min_visible: float = 0.5
) -> SampleRecord:
    """The sample record of one tile: geometry, objects and georeference of the tile; scene-level
    captions, QA and dialogues are not carried over (they describe the whole scene)."""
    objects, clipped, dropped = clip_objects(record.objects, spec, min_visible)
    meta = dict(record.meta)
    meta["tile"] = {
        "source_id": record.id,
        "row": spec.row,
        "col": spec.col,
        "col_off": spec.col_off,
        "row_off": spec.row_off,
        "src_width": spec.src_width,
        "src_height": spec.src_height,
        "objects_clipped": clipped,
        "objects_dropped": dropped,
        "pixel_mode": plan.pixel_mode,
    }
    return record.model_copy(
        update={
            "id": tile_id(record.id, spec),
            "image": image,
            "width": spec.width,
            "height": spec.height,
            "resolution_m": plan.out_resolution_m if plan.out_resolution_m else record.resolution_m,
            "georef": tile_georef(georef, spec, record.width, record.height),
            "objects": objects,
            "captions": [],
            "qa": [],
            "dialogues": [],
            "landcover": None,
            "optical": None,
            "meta": meta,
        }
    )


def iter_tiles(
    path: Any, plan: TilePlan, bands: list[int] | None = None, halo: int = 0
) -> Iterator[tuple[TileSpec, np.ndarray, tuple[int, int, int, int]]]:
    """Open a raster once and yield ``(spec, pixels, crop)`` tile by tile (bounded memory)."""
    from rasterio.errors import RasterioError

    from sarvlm.io.raster import open_raster

    with open_raster(path) as ds:
        for spec in plan.tiles:
            try:
                data, crop = read_tile(ds, spec, bands, halo)
            except (RasterioError, OSError) as exc:
                raise InputError(f"{path}: corrupt or truncated raster data in tile {spec.window} ({exc})") from None
            yield spec, data, crop
