"""The configured preprocessing chain over sample records (``sarvlm preprocess``).

Per image (or per SRC tile of it, read window by window):

    read -> complex to intensity -> input quantity to intensity -> polarisation / dual-pol composite
         -> speckle filter (on intensity; no-data filled for the filter and restored after)
         -> output quantity (intensity | amplitude | dB) -> log + percentile stretch -> uint8
         -> write (PNG for uint8, GeoTIFF float32 otherwise, with the georeference) + sample record

Multi-band inputs (dual-pol VV+VH, HH+HV, full-pol) need an explicit choice: ``pol`` keeps one band
(a name, or ``co`` / ``cross`` for the co-/cross-polarised band each record has, for archives mixing
VV and HH products) and ``composite="dual"`` writes the 3-channel composite (co, cross, mean) that
loaders read as RGB. Without either, the **co-polarised band alone** is kept (VV, else HH, else the
first band), counted in ``preprocess.json`` (``multiband_kept_copol``) and reported as a warning:
a 2-band PNG would be grey + alpha, and every RGB loader would drop the cross-pol band silently.

Then, optionally, GLCM + KNN quality screening of all outputs, dropping low-information tiles with
a reason each (``screening.jsonl``). The output directory appears atomically with ``images/``,
``samples.jsonl`` (written last), ``preprocess.json`` (configuration and counts) and preview plots.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from sarvlm.core.errors import ConfigurationError, InputError, NotFoundError, SarvlmError
from sarvlm.core.record import LandCover, SampleRecord, read_samples, write_samples
from sarvlm.core.sharding import Shard
from sarvlm.preprocess.contrast import stretch as stretch_image
from sarvlm.preprocess.conversions import Quantity, convert, to_intensity
from sarvlm.preprocess.polarization import DUAL_PAIRS, dual_pol_composite, normalize_polarization, select_polarization
from sarvlm.preprocess.quantize import quantize_uint8
from sarvlm.preprocess.speckle import boxcar, check_window, lee, refined_lee
from sarvlm.preprocess.tiling import (
    EdgeMode,
    PixelModeWarning,
    TilePlan,
    TileSpec,
    plan_tiles,
    read_tile,
    tile_id,
    tile_record,
)

POL_ROLES = ("co", "cross")
_ROLE_ORDER = {"co": ("VV", "HH"), "cross": ("VH", "HV")}

FilterName = Literal["refined-lee", "lee", "boxcar", "none"]
FILTERS = ("refined-lee", "lee", "boxcar", "none")
INPUT_KINDS = ("auto", "intensity", "amplitude", "db")
OUTPUT_KINDS = ("intensity", "amplitude", "db")


@dataclass
class PreprocessConfig:
    """Every step of the chain; the defaults leave pixels as they are (float32 intensity GeoTIFF)."""

    pol: str | None = None  # keep one polarisation (HH/HV/VH/VV, or co / cross)
    composite: Literal["dual"] | None = None  # 3-channel (co, cross, mean) composite
    input: str = "auto"  # what the pixels are: auto (complex -> intensity, else tag/meta 'quantity', else intensity)
    to: str = "intensity"  # output quantity before stretch/quantisation
    filter: str = "none"
    window: int = 7
    looks: float = 1.0
    stretch: bool = False  # log (unless already dB) + linear percentile stretch to 0..1
    stretch_low: float = 2.0
    stretch_high: float = 98.0
    uint8: bool = False  # quantise to uint8 (PNG output)
    clip_low: float = 0.5  # percentile thresholds of the uint8 quantisation (when not stretched)
    clip_high: float = 99.5
    tile_m: float | None = None  # SRC tile size in metres
    target_res_m: float | None = None  # resample tiles to this pixel size
    edge: EdgeMode = "shift"
    min_visible: float = 0.5  # keep a clipped object when this fraction of its box is inside the tile
    screen: bool = False
    screen_k: int = 5
    screen_low_quantile: float = 0.1
    screen_max_nodata: float = 0.5
    format: Literal["auto", "png", "tif"] = "auto"
    overwrite: bool = False
    plots: bool = True
    allow_outside_root: bool = False  # accept record paths leaving the samples file's folder

    def validate(self) -> PreprocessConfig:
        """Check option values; raises SarvlmError naming the option."""
        if self.pol is not None:
            self.pol = (
                self.pol.strip().lower() if self.pol.strip().lower() in POL_ROLES else normalize_polarization(self.pol)
            )
        if self.composite not in (None, "dual"):
            raise ConfigurationError(f"composite: only 'dual' is supported, got {self.composite!r}")
        if self.pol and self.composite:
            raise ConfigurationError("pol/composite: choose one polarisation or the dual-pol composite, not both")
        for name, value, allowed in (
            ("input", self.input, INPUT_KINDS),
            ("to", self.to, OUTPUT_KINDS),
            ("filter", self.filter, FILTERS),
            ("format", self.format, ("auto", "png", "tif")),
        ):
            if value not in allowed:
                raise ConfigurationError(f"{name}: must be one of {', '.join(allowed)}, got {value!r}")
        # checked even without a filter: an invalid value the user typed is never silently ignored
        check_window(self.window)
        if not (isinstance(self.looks, (int, float)) and math.isfinite(self.looks) and self.looks > 0):
            raise ConfigurationError(f"looks: must be a positive number, got {self.looks}")
        for name, lo, hi in (("stretch", self.stretch_low, self.stretch_high), ("clip", self.clip_low, self.clip_high)):
            if not 0 <= lo < hi <= 100:
                raise ConfigurationError(f"{name} percentiles: need 0 <= low < high <= 100, got {lo}, {hi}")
        if self.format == "png" and not self.uint8:
            raise ConfigurationError("format: PNG output needs --uint8 (PNG holds 8-bit pixels)")
        if self.target_res_m is not None and self.tile_m is None:
            raise ConfigurationError("target_res_m: resampling applies to SRC tiles: give tile_m too")
        if not 0 < self.min_visible <= 1:
            raise ConfigurationError(f"min_visible: must be in (0, 1], got {self.min_visible}")
        return self

    @property
    def suffix(self) -> str:
        if self.format == "auto":
            return ".png" if self.uint8 else ".tif"
        return "." + self.format


@dataclass
class _Counts:
    scenes: int = 0
    outputs: int = 0
    tiles_nodata: int = 0
    objects_clipped: int = 0
    objects_dropped: int = 0
    screened_out: int = 0
    pixel_mode_scenes: int = 0
    scenes_too_small: list[str] = field(default_factory=list)
    multiband_kept_copol: list[str] = field(default_factory=list)  # "id: kept VV of VV+VH"


def _band_names(record: SampleRecord, info: Any) -> list[str]:
    if record.polarizations and len(record.polarizations) == info.count:
        return list(record.polarizations)
    if record.polarizations:
        # e.g. a 3-band PNG declared VV: which band is VV is unknown, and dropping the declaration
        # silently would lose what the user said
        raise SarvlmError(
            f"record {record.id!r}: polarizations {record.polarizations} name {len(record.polarizations)} "
            f"band(s) but {info.path} has {info.count}"
        )
    names = [(d or "").strip().upper() for d in info.band_descriptions]
    if len(names) == info.count and all(n in ("HH", "HV", "VH", "VV") for n in names):
        return names
    return list(record.polarizations) if info.count == 1 and len(record.polarizations) == 1 else []


def _input_kind(config: PreprocessConfig, record: SampleRecord, info: Any) -> Quantity:
    if info.is_complex:
        return "complex"
    if config.input != "auto":
        return cast(Quantity, config.input)  # validate() checked it against INPUT_KINDS
    for value in (record.meta.get("quantity"), info.tags.get("quantity"), info.tags.get("QUANTITY")):
        if isinstance(value, str) and value.lower() in OUTPUT_KINDS:
            return cast(Quantity, value.lower())
    return "intensity"


def resolve_pol(pol: str | None, names: list[str], count: int, where: str) -> str | None:
    """The band name ``pol`` stands for in this image (``co``/``cross`` → VV or HH / VH or HV)."""
    if pol not in POL_ROLES:
        return pol
    for name in _ROLE_ORDER[pol]:
        if name in names:
            return name
    if not names and count == 1 and pol == "co":
        return None  # one unnamed band: taken as the co-pol band
    raise SarvlmError(
        f"{where}: --pol {pol}: no {'/'.join(_ROLE_ORDER[pol])} band (the image has {', '.join(names) or 'unnamed bands'})"
    )


def default_band(names: list[str], count: int) -> str | None:
    """The band kept from a multi-band image given no --pol/--composite: VV, else HH, else band 1."""
    return next((n for n in ("VV", "HH") if n in names), names[0] if names else None) if count > 1 else None


def _bands_to_read(config: PreprocessConfig, names: list[str], count: int, where: str) -> list[int]:
    if config.pol:
        if not names and count == 1:
            return [1]
        select_polarization(np.zeros((len(names) or count, 1, 1)), names, config.pol, where)  # validates
        return [names.index(config.pol) + 1]
    if config.composite is None and count > 1:
        keep = default_band(names, count)
        return [names.index(keep) + 1 if keep else 1]
    return list(range(1, count + 1))


def _filter(intensity: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    if config.filter == "none":
        return intensity
    out = np.empty_like(intensity, dtype=np.float32)
    for b, band in enumerate(intensity):
        invalid = ~np.isfinite(band)
        if invalid.all():
            out[b] = band
            continue
        filled = np.where(invalid, np.float32(np.median(band[~invalid])), band) if invalid.any() else band
        if config.filter == "refined-lee":
            res = refined_lee(filled, config.window, config.looks)
        elif config.filter == "lee":
            res = lee(filled, config.window, config.looks)
        else:
            res = boxcar(filled, config.window)
        res[invalid] = np.nan
        out[b] = res
    return out


def process_pixels(
    data: np.ndarray,
    config: PreprocessConfig,
    kind: Quantity,
    names: list[str],
    nodata: float | None,
    crop: tuple[int, int, int, int] = (0, 0, 0, 0),
    where: str = "image",
) -> np.ndarray | None:
    """Run the pixel steps on ``(bands, H, W)`` read pixels (plus a halo given by ``crop``).

    Returns float32 ``(C, h, w)`` (NaN = no data), uint8 when ``config.uint8``, or ``None`` when no
    pixel of the (cropped) result is valid.
    """
    if kind == "complex":
        x = to_intensity(data, "complex")
    else:
        x = data.astype(np.float32)
        if nodata is not None and not np.isnan(nodata):
            x[data == nodata] = np.nan
        x[~np.isfinite(x)] = np.nan
        x = to_intensity(x, kind) if kind != "intensity" else x
    if config.composite == "dual":
        x = dual_pol_composite(x, names, where=where)
    top, bottom, left, right = crop
    inner = (slice(None), slice(top, x.shape[1] - bottom), slice(left, x.shape[2] - right))
    if not np.isfinite(x[inner]).any():
        return None
    x = _filter(x, config)[inner]
    if config.to != "intensity":
        x = convert(x, "intensity", cast(Quantity, config.to))  # validate() checked it against OUTPUT_KINDS
    if config.stretch:
        x = stretch_image(x, config.stretch_low, config.stretch_high, log=config.to != "db", where=where)
    if config.uint8:
        if config.stretch:
            return quantize_uint8(x, vmin=0.0, vmax=1.0, where=where)
        return quantize_uint8(x, config.clip_low, config.clip_high, log=config.to != "db", where=where)
    return x.astype(np.float32, copy=False)


def _render_u8(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 view of an output (for screening features and previews) and its valid mask."""
    if pixels.dtype == np.uint8:
        return pixels[0], np.ones(pixels.shape[1:], bool)
    band = pixels[0]
    valid = np.isfinite(band)
    if not valid.any():
        return np.zeros(band.shape, np.uint8), valid
    positive = bool(np.nanmin(band) >= 0)
    return quantize_uint8(band, 1, 99, log=positive and bool((band[valid] > 0).any())), valid


def _safe_name(record_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in record_id)


def _whole_image(width: int, height: int) -> TileSpec:
    return TileSpec(row=0, col=0, col_off=0, row_off=0, src_width=width, src_height=height, width=width, height=height)


class _Preprocessor:
    def __init__(self, config: PreprocessConfig, out_dir: Path, base_dir: Path):
        self.config, self.out, self.base = config, out_dir, base_dir
        self.counts = _Counts()
        self.records: list[SampleRecord] = []
        self.features: list[dict[str, float]] = []
        self.previews: list[tuple[str, np.ndarray, np.ndarray]] = []  # (id, input u8, output u8)
        self._raw_preview = np.zeros((1, 1), np.uint8)
        self.tile_progress = False  # one scene: show progress over its tiles instead of over records
        (out_dir / "images").mkdir(parents=True, exist_ok=True)

    def _write(self, rel: str, pixels: np.ndarray, georef: Any, tags: dict[str, Any]) -> None:
        from sarvlm.io.raster import write_raster

        write_raster(self.out / rel, pixels, georef=georef if rel.endswith(".tif") else None, tags=tags)

    def process(self, record: SampleRecord) -> None:
        from sarvlm.io.raster import raster_info

        cfg = self.config
        path = self._resolve(record, record.image, "image")
        info = raster_info(path)
        where = str(path)
        if (info.width, info.height) != (record.width, record.height):
            raise InputError(
                f"record {record.id!r}: width/height {record.width}x{record.height} do not match "
                f"{path} ({info.width}x{info.height})"
            )
        georef = record.georef or info.georef
        names = _band_names(record, info)
        if cfg.pol in POL_ROLES:
            cfg = replace(cfg, pol=resolve_pol(cfg.pol, names, info.count, where))
        elif cfg.pol is None and cfg.composite is None and info.count > 1:
            keep = default_band(names, info.count)
            kept = f"{record.id}: kept {keep or 'band 1'} of {'+'.join(names) or f'{info.count} bands'}"
            self.counts.multiband_kept_copol.append(kept)
            cfg = replace(cfg, pol=keep) if keep else cfg
            if keep is None:
                names = []
        self._record_pol = cfg.pol  # the band this record keeps (steps of its outputs)
        bands = _bands_to_read(cfg, names, info.count, where)
        kind = _input_kind(cfg, record, info)
        if cfg.composite == "dual":
            dual_pol_composite(np.zeros((len(names) or info.count, 1, 1)), names, where=where)  # fail early
        plan = self._tile_plan(cfg, record, info, georef, where)
        if not plan.tiles:
            self.counts.scenes_too_small.append(record.id)
            self.counts.scenes += 1
            return
        if not self._process_tiles(cfg, record, path, info, plan, georef, bands, kind, names):
            raise InputError(f"{path}: all pixels are NaN, infinite or no-data")
        self.counts.scenes += 1

    def _tile_plan(self, cfg: PreprocessConfig, record: SampleRecord, info: Any, georef: Any, where: str) -> TilePlan:
        """The tiles of a scene (``--tile-m``; none when the scene is too small) or the whole image as one."""
        if cfg.tile_m is not None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", PixelModeWarning)
                plan = plan_tiles(
                    info.width,
                    info.height,
                    cfg.tile_m,
                    georef=georef,
                    resolution_m=record.resolution_m,
                    target_res_m=cfg.target_res_m,
                    edge=cfg.edge,
                    where=where,
                )
            for w in caught:
                warnings.warn(str(w.message), PixelModeWarning, stacklevel=3)
            self.counts.pixel_mode_scenes += plan.pixel_mode
            return plan
        return TilePlan(
            tiles=(_whole_image(info.width, info.height),),
            spacing_m=(0.0, 0.0),
            out_resolution_m=record.resolution_m,
            pixel_mode=False,
        )

    def _process_tiles(
        self,
        cfg: PreprocessConfig,
        record: SampleRecord,
        path: Path,
        info: Any,
        plan: TilePlan,
        georef: Any,
        bands: list[int],
        kind: Quantity,
        names: list[str],
    ) -> bool:
        """Read, process and write each planned tile; False when no tile had a valid pixel."""
        from sarvlm.io.raster import open_raster, read_checked

        where = str(path)
        halo = cfg.window // 2 if cfg.filter != "none" and cfg.tile_m is not None else 0
        if cfg.pol:
            pols = [cfg.pol]
        elif cfg.composite == "dual":
            pols = next([a, b] for a, b in DUAL_PAIRS if a in names and b in names)
        else:
            pols = names
        any_valid = False
        tiles: Iterable[TileSpec] = plan.tiles
        if self.tile_progress and len(plan.tiles) > 1:
            from sarvlm.core.progress import track

            tiles = track(plan.tiles, f"tiling {record.id}", total=len(plan.tiles))
        with open_raster(path) as ds:
            for spec in tiles:
                try:
                    if cfg.tile_m is None:
                        out_dtype = "complex64" if info.dtype == "complex_int16" else None
                        data = read_checked(ds, bands, out_dtype=out_dtype, where=path)
                        crop = (0, 0, 0, 0)
                    else:
                        data, crop = read_tile(ds, spec, bands, halo)
                except SarvlmError:
                    raise
                except Exception as exc:  # rasterio raises several types for damaged files
                    raise InputError(f"{path}: corrupt or truncated raster data ({str(exc).splitlines()[0]})") from None
                pixels = process_pixels(data, cfg, kind, names, info.nodata, crop, where)
                if cfg.plots and len(self.previews) < 4 and pixels is not None:
                    self._raw_preview = self._render_input(data, kind, crop, info.nodata)
                if pixels is None:
                    self.counts.tiles_nodata += 1
                    continue
                any_valid = True
                self._emit(record, spec, plan, pixels, georef, pols, info)
        return any_valid

    def _resolve(self, record: SampleRecord, name: str, what: str) -> Path:
        from sarvlm.core.paths import resolve_in_root

        return resolve_in_root(
            self.base, name, allow_outside=self.config.allow_outside_root, what=f"record {record.id!r}: {what}"
        )

    def _emit(
        self,
        record: SampleRecord,
        spec: TileSpec,
        plan: TilePlan,
        pixels: np.ndarray,
        georef: Any,
        pols: list[str],
        info: Any,
    ) -> None:
        cfg = self.config
        tiled = cfg.tile_m is not None
        rid = tile_id(record.id, spec) if tiled else record.id
        rel = f"images/{_safe_name(rid)}{cfg.suffix}"
        if tiled:
            rec = tile_record(record, spec, plan, rel, georef, cfg.min_visible)
            self.counts.objects_clipped += rec.meta["tile"]["objects_clipped"]
            self.counts.objects_dropped += rec.meta["tile"]["objects_dropped"]
            rec = self._tile_side_files(record, rec, spec, info)
        else:
            rec = record.model_copy(update={"image": rel, "georef": georef})
            rec = self._copy_side_files(record, rec)
        steps = self._steps()
        rec = rec.model_copy(update={"polarizations": pols, "meta": {**rec.meta, "preprocess": steps}})
        tags = {
            "sarvlm_source": record.id,
            "sarvlm_steps": json.dumps(steps, sort_keys=True),
            "quantity": "uint8" if pixels.dtype == np.uint8 else ("stretched" if cfg.stretch else cfg.to),
        }
        self._write(rel, pixels, rec.georef, tags)
        self.records.append(rec)
        self.counts.outputs += 1
        if cfg.screen or (cfg.plots and len(self.previews) < 4):
            u8, valid = _render_u8(pixels)
            if cfg.screen:
                from sarvlm.preprocess.quality import tile_features

                self.features.append(tile_features(u8, valid))
            if cfg.plots and len(self.previews) < 4:
                self.previews.append((rec.id, self._raw_preview, u8))

    @staticmethod
    def _render_input(
        data: np.ndarray, kind: Quantity, crop: tuple[int, int, int, int], nodata: float | None
    ) -> np.ndarray:
        """The first input band as intensity, cropped like the output, rendered to uint8 (log scale)."""
        band = data[:1]
        x = to_intensity(band, "complex") if kind == "complex" else band.astype(np.float32)
        if nodata is not None and not np.isnan(nodata) and kind != "complex":
            x[band == nodata] = np.nan
        if kind in ("amplitude", "db"):
            x = to_intensity(x, kind)
        top, bottom, left, right = crop
        x = x[:, top : x.shape[1] - bottom, left : x.shape[2] - right]
        return _render_u8(x)[0]

    def _steps(self) -> dict[str, Any]:
        cfg = self.config
        steps: dict[str, Any] = {"input": cfg.input}
        pol = getattr(self, "_record_pol", None) or cfg.pol
        if pol:
            steps["pol"] = pol
        if cfg.pol in POL_ROLES:
            steps["pol_role"] = cfg.pol
        if cfg.composite:
            steps["composite"] = cfg.composite
        if cfg.filter != "none":
            steps["filter"] = {"name": cfg.filter, "window": cfg.window, "looks": cfg.looks}
        steps["to"] = cfg.to
        if cfg.stretch:
            steps["stretch"] = [cfg.stretch_low, cfg.stretch_high]
        if cfg.uint8:
            steps["uint8"] = "stretched" if cfg.stretch else [cfg.clip_low, cfg.clip_high]
        if cfg.tile_m is not None:
            steps["tile_m"] = cfg.tile_m
            if cfg.target_res_m is not None:
                steps["target_res_m"] = cfg.target_res_m
        return steps

    def _copy_side_files(self, record: SampleRecord, rec: SampleRecord) -> SampleRecord:
        """Carry the mask and optical image along (paths are relative to the samples file)."""
        update: dict[str, Any] = {}
        for key, sub in (("optical", "optical"), ("landcover", "masks")):
            value = getattr(record, key)
            if value is None:
                continue
            rel = value.mask if key == "landcover" else value
            src = self._resolve(record, rel, "landcover.mask" if key == "landcover" else key)
            if not src.is_file():
                raise NotFoundError(f"record {record.id!r}: {key}: {src}: no such file")
            dst_rel = f"{sub}/{_safe_name(record.id)}{src.suffix.lower()}"
            (self.out / sub).mkdir(exist_ok=True)
            shutil.copyfile(src, self.out / dst_rel)
            update[key] = LandCover(mask=dst_rel, classes=value.classes) if key == "landcover" else dst_rel
        return rec.model_copy(update=update)

    def _tile_side_files(self, record: SampleRecord, rec: SampleRecord, spec: TileSpec, info: Any) -> SampleRecord:
        """Cut the land-cover mask (nearest) and the optical image (average) like the SAR tile, when
        they share the SAR image's pixel grid."""
        from sarvlm.io.raster import open_raster, raster_info, write_raster

        update: dict[str, Any] = {}
        for key, sub, _method in (("landcover", "masks", "nearest"), ("optical", "optical", "average")):
            value = getattr(record, key)
            if value is None:
                continue
            rel = value.mask if key == "landcover" else value
            src = self._resolve(record, rel, "landcover.mask" if key == "landcover" else key)
            side = raster_info(src)
            if (side.width, side.height) != (info.width, info.height):
                continue  # a different pixel grid: not cut (the tile record omits it)
            with open_raster(src) as ds:
                data, _ = read_tile(
                    ds,
                    spec,
                    None,
                    0,
                    resampling="nearest" if key == "landcover" else None if spec.width < spec.src_width else "bilinear",
                )
            if data.dtype != np.uint8 and key == "optical":
                data = quantize_uint8(data, 0.5, 99.5)
            dst_rel = f"{sub}/{_safe_name(rec.id)}.png"
            write_raster(self.out / dst_rel, data.astype(np.uint8) if key == "landcover" else data)
            update[key] = LandCover(mask=dst_rel, classes=value.classes) if key == "landcover" else dst_rel
        return rec.model_copy(update=update)

    def screen(self) -> list[dict[str, Any]]:
        """Run quality screening; drop screened-out outputs; return the dropped entries."""
        from sarvlm.preprocess.quality import screen_tiles

        cfg = self.config
        decisions = screen_tiles(
            self.features, k=cfg.screen_k, low_quantile=cfg.screen_low_quantile, max_nodata=cfg.screen_max_nodata
        )
        kept, dropped = [], []
        for rec, feats, dec in zip(self.records, self.features, decisions):
            if dec.keep:
                kept.append(rec.model_copy(update={"meta": {**rec.meta, "quality": {"score": round(dec.score, 4)}}}))
                continue
            for rel in (rec.image, rec.optical, rec.landcover.mask if rec.landcover else None):
                if rel:
                    (self.out / rel).unlink(missing_ok=True)
            dropped.append(
                {
                    "id": rec.id,
                    "image": rec.image,
                    "reason": dec.reason,
                    "score": round(dec.score, 4),
                    "features": {k: round(v, 5) for k, v in feats.items()},
                }
            )
        self.counts.screened_out = len(dropped)
        self.screen_decisions = decisions
        self.records = kept
        return dropped


def _plots(pre: _Preprocessor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sarvlm.core.atomic import atomic_path

    if pre.previews:
        cols = len(pre.previews)
        fig, axes = plt.subplots(2, cols, figsize=(3.0 * cols, 6.2), squeeze=False)
        for i, (rid, raw, out) in enumerate(pre.previews):
            for row, (img, label) in enumerate(((raw, "input (log scale)"), (out, "output"))):
                ax = axes[row][i]
                ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                ax.set_title(f"{rid}\n{label}" if row == 0 else label, fontsize=8)
                ax.axis("off")
        fig.suptitle("sarvlm preprocess: first outputs, before and after", fontsize=10)
        fig.tight_layout()
        with atomic_path(pre.out / "preview.png") as tmp:
            fig.savefig(tmp, dpi=90, metadata={"Software": None})
        plt.close(fig)
    if pre.config.screen and pre.features:
        decisions = pre.screen_decisions
        ent = [f["glcm_entropy"] for f in pre.features]
        rng = [f["dynamic_range"] for f in pre.features]
        keep = np.array([d.keep for d in decisions])
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(np.array(ent)[keep], np.array(rng)[keep], s=12, c="tab:blue", label=f"kept ({keep.sum()})")
        ax.scatter(
            np.array(ent)[~keep],
            np.array(rng)[~keep],
            s=18,
            c="tab:red",
            marker="x",
            label=f"dropped ({(~keep).sum()})",
        )
        ax.set_xlabel("GLCM entropy (bits)")
        ax.set_ylabel("dynamic range p1-p99 (grey levels)")
        ax.set_title("quality screening")
        ax.legend()
        fig.tight_layout()
        with atomic_path(pre.out / "screening.png") as tmp:
            fig.savefig(tmp, dpi=90, metadata={"Software": None})
        plt.close(fig)


def _process_block(
    config: PreprocessConfig, out_dir: Path, base_dir: Path, single: bool, records: list[SampleRecord]
) -> tuple[list[SampleRecord], list[dict[str, float]], list[tuple[str, np.ndarray, np.ndarray]], _Counts, list[str]]:
    """Preprocess a contiguous block of records into ``out_dir`` (one worker's share): its records,
    screening features, first previews, counts and the pixel-mode warnings it raised."""
    pre = _Preprocessor(config, out_dir, base_dir)
    pre.tile_progress = single
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PixelModeWarning)
        for rec in records:
            pre.process(rec)
    messages = [str(w.message) for w in caught if issubclass(w.category, PixelModeWarning)]
    return pre.records, pre.features, pre.previews, pre.counts, messages


def _absorb(pre: _Preprocessor, result: tuple) -> None:
    """Append one block's (or shard's) results to ``pre``, in order, as if one loop had made them."""
    records, features, previews, counts, messages = result
    pre.records += records
    pre.features += features
    pre.previews += previews[: max(0, 4 - len(pre.previews))]
    for key, value in asdict(counts).items():
        setattr(pre.counts, key, getattr(pre.counts, key) + value)
    for message in messages:
        warnings.warn(message, PixelModeWarning, stacklevel=3)


def _finish(pre: _Preprocessor, tmp: Path, config: PreprocessConfig) -> None:
    """Screening, plots, ``preprocess.json`` and ``samples.jsonl`` (last) over all outputs."""
    from sarvlm.core.atomic import atomic_open

    dropped = pre.screen() if config.screen else []
    if config.screen:
        with atomic_open(tmp / "screening.jsonl") as fh:
            for entry in dropped:
                fh.write(json.dumps(entry, sort_keys=True) + "\n")
    if config.plots:
        _plots(pre)
    summary = {"config": asdict(config), "counts": asdict(pre.counts)}
    with atomic_open(tmp / "preprocess.json") as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
        fh.write("\n")
    write_samples(tmp / "samples.jsonl", pre.records)


def _run(
    records: list[SampleRecord],
    base_dir: Path,
    out_dir: Path,
    config: PreprocessConfig,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    shard: Shard | str | None = None,
) -> Path:
    from sarvlm.core.atomic import atomic_dir
    from sarvlm.core.parallel import check_workers, run_blocks, split_blocks
    from sarvlm.core.progress import progress_bar

    config.validate()
    workers = check_workers(workers)
    seen: set[str] = set()
    for rec in records:
        if rec.id in seen:
            raise InputError(f"record {rec.id!r}: duplicate id")
        seen.add(rec.id)
    shard = Shard.parse(shard)
    final_dir = out_dir
    if shard is not None:
        records = list(shard.select(records))
        out_dir = shard.output_path(out_dir, directory=True)
    parallel = workers > 1 or scheduler is not None
    # several blocks per worker: finished blocks drive the progress bar and balance the load
    blocks = split_blocks(records, workers * 4) if parallel else [[rec] for rec in records]
    with atomic_dir(out_dir, overwrite=config.overwrite) as tmp:
        pre = _Preprocessor(config, tmp, base_dir)
        single = len(records) == 1
        with progress_bar("preprocess", total=len(blocks), enabled=not single) as advance:
            results = run_blocks(
                _process_block,
                blocks,
                args=(config, tmp, base_dir, single),
                workers=workers,
                scheduler=scheduler,
                progress=advance,
            )
        for result in results:
            _absorb(pre, result)
        if shard is None:
            _finish(pre, tmp, config)
        else:
            _write_shard_part(pre, tmp, config, shard, final_dir)
    return out_dir / "samples.jsonl"


PREVIEWS_FILE = "previews.npz"
FEATURES_FILE = "features.json"


def _write_shard_part(pre: _Preprocessor, tmp: Path, config: PreprocessConfig, shard: Shard, final: Path) -> None:
    """A part holds the images and unscreened records of its block plus what the global steps need:
    screening features, the first previews and counts (``sarvlm merge`` runs screening and plots)."""
    from sarvlm.core.sharding import write_shard_info

    write_samples(tmp / "samples.jsonl", pre.records)
    if config.screen:
        (tmp / FEATURES_FILE).write_text(json.dumps(pre.features), encoding="utf-8")
    arrays = {}
    for i, (_, raw, out) in enumerate(pre.previews):
        arrays[f"raw{i}"], arrays[f"out{i}"] = raw, out
    np.savez(tmp / PREVIEWS_FILE, **arrays)
    state = {
        "config": asdict(config),
        "counts": asdict(pre.counts),
        "previews": [rid for rid, _, _ in pre.previews],
        "out": str(final),
    }
    write_shard_info(tmp, "preprocess", shard, state)


def merge_preprocess_shards(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Join the parts ``OUT_DIR.shard-K-of-N`` of a sharded preprocess into ``OUT_DIR``: images moved
    in, records concatenated, then screening, plots and the summary over everything — byte-identical
    to one unsharded run. Returns ``OUT_DIR/samples.jsonl``."""
    import shutil

    from sarvlm.core.atomic import atomic_dir
    from sarvlm.core.sharding import find_parts, read_shard_info

    out_dir = Path(out_dir)
    parts = find_parts(out_dir, directory=True)
    infos = [read_shard_info(p) for p in parts]
    same = {k: v for k, v in infos[0]["config"].items() if k != "overwrite"}
    for p, info in zip(parts, infos):
        if info.get("kind") != "preprocess":
            raise SarvlmError(f"{p}: a {info.get('kind')} shard, not a preprocess shard")
        if {k: v for k, v in info["config"].items() if k != "overwrite"} != same:
            raise SarvlmError(f"{p}: made with other preprocessing settings than {parts[0]}; cannot merge")
    config = PreprocessConfig(**infos[0]["config"])
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        pre = _Preprocessor(config, tmp, tmp)
        for p, info in zip(parts, infos):
            for sub in ("images", "masks", "optical"):
                if (p / sub).is_dir():
                    shutil.copytree(p / sub, tmp / sub, dirs_exist_ok=True)
            features = json.loads((p / FEATURES_FILE).read_text(encoding="utf-8")) if config.screen else []
            with np.load(p / PREVIEWS_FILE) as arrays:
                previews = [(rid, arrays[f"raw{i}"], arrays[f"out{i}"]) for i, rid in enumerate(info["previews"])]
            counts = _Counts(**info["counts"])
            _absorb(pre, (list(read_samples(p / "samples.jsonl")), features, previews, counts, []))
        _finish(pre, tmp, config)
    return out_dir / "samples.jsonl"


def preprocess_samples(
    samples_path: str | Path,
    out_dir: str | Path,
    config: PreprocessConfig | None = None,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    shard: Shard | str | None = None,
) -> Path:
    """Preprocess every record of a samples JSONL into ``out_dir``; returns ``out_dir/samples.jsonl``.

    Records keep their annotations; image path, size, polarisations, resolution and georeference
    describe the output. With ``config.tile_m`` each record becomes one record per SRC tile.

    ``workers`` > 1 processes contiguous blocks of records in that many processes; ``scheduler``
    (a Dask scheduler address, or ``local``) runs the blocks on a Dask cluster instead
    (:mod:`sarvlm.core.parallel`); ``shard`` (``"K/N"``) processes only the K-th block of records into
    ``OUT_DIR.shard-K-of-N`` for :func:`merge_preprocess_shards`. The output is byte-identical in
    every case.
    """
    samples_path = Path(samples_path)
    config = (config or PreprocessConfig()).validate()
    records = list(read_samples(samples_path))
    if not records:
        raise SarvlmError(f"{samples_path}: no sample records")
    return _run(records, samples_path.parent, Path(out_dir), config, workers=workers, scheduler=scheduler, shard=shard)


def record_for_raster(path: str | Path) -> SampleRecord:
    """A minimal sample record for a bare raster file (id from the file name, georef from the file)."""
    from sarvlm.io.raster import raster_info

    path = Path(path)
    info = raster_info(path)
    names = [(d or "").strip().upper() for d in info.band_descriptions]
    pols = names if names and all(n in ("HH", "HV", "VH", "VV") for n in names) else []
    return SampleRecord(
        id=_safe_name(path.stem),
        image=path.name,
        width=info.width,
        height=info.height,
        polarizations=pols,
        georef=info.georef,
        source=str(path.name),
    )


def preprocess_raster(path: str | Path, out_dir: str | Path, config: PreprocessConfig | None = None) -> Path:
    """Preprocess a single raster file (GeoTIFF/PNG/JPEG) as if it were a one-record samples file."""
    path = Path(path)
    config = (config or PreprocessConfig()).validate()
    # the user named this file: its own folder (after following a symlink) is the dataset root
    real = path.resolve()
    record = record_for_raster(path).model_copy(update={"image": real.name})
    return _run([record], real.parent, Path(out_dir), config)


def record_for_safe(safe_dir: str | Path, polarisation: str, swath: str | None = None) -> SampleRecord:
    """A sample record for one measurement of a Sentinel-1 ``.SAFE`` product.

    The image is ``measurement/<annotation name>.tiff``; size, date, pixel spacing and the GCP
    georeference (geolocation grid) come from the annotation. GRD pixels are amplitude DN
    (``meta.quantity = "amplitude"``); SLC pixels are complex and read as intensity.
    """
    from sarvlm.io.sentinel1_safe import safe_annotation

    safe_dir = Path(safe_dir)
    ann = safe_annotation(safe_dir, polarisation, swath)
    candidates = [safe_dir / "measurement" / (ann.path.stem + suffix) for suffix in (".tiff", ".tif")]
    image = next((p for p in candidates if p.is_file()), None)
    if image is None:
        raise InputError(f"{safe_dir}: no measurement file {candidates[0].name} for {ann.swath}/{ann.polarisation}")
    spacing = math.sqrt(ann.range_pixel_spacing_m * ann.azimuth_pixel_spacing_m)
    meta = {"quantity": "amplitude"} if ann.product_type == "GRD" else {}
    return SampleRecord(
        id=_safe_name(f"{safe_dir.stem}_{ann.swath}_{ann.polarisation}"),
        image=str(image.relative_to(safe_dir)),
        width=ann.width,
        height=ann.height,
        sensor=f"Sentinel-1{ann.mission[-1]}",
        band="C",
        polarizations=[ann.polarisation],
        resolution_m=spacing,
        date=ann.date,
        georef=ann.georef,
        source=safe_dir.name,
        meta=meta,
    )


def preprocess_safe(
    safe_dir: str | Path, out_dir: str | Path, config: PreprocessConfig | None = None, swath: str | None = None
) -> Path:
    """Preprocess one polarisation (``config.pol``, default the co-pol VV or HH present) of a
    Sentinel-1 ``.SAFE`` product."""
    from sarvlm.io.sentinel1_safe import find_annotations, read_annotation

    safe_dir = Path(safe_dir)
    config = (config or PreprocessConfig()).validate()
    pol = config.pol
    if pol is None:
        have = {read_annotation(p).polarisation for p in find_annotations(safe_dir)}
        pol = next((p for p in ("VV", "HH", "VH", "HV") if p in have), None)
        if pol is None:
            raise InputError(f"{safe_dir}: no polarisation found in its annotation files")
    if config.composite:
        raise InputError("composite: a SAFE product stores each polarisation in its own file; use --pol")
    record = record_for_safe(safe_dir, pol, swath)
    return _run([record], safe_dir, Path(out_dir), config)
