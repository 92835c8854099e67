"""What a sample record knows, as the facts an annotation prompt is filled with and checked against.

- objects: per canonical category the count, fine types, the 3x3 grid cells and SARLANG-1M regions
  holding them (:mod:`sarvlm.core.vocabulary`), and their length range in metres (box diagonal x
  resolution, only when the resolution is known);
- land cover: class shares of the land-cover mask (canonical names, classes >= 0.5 %), or the
  ``meta.landcover_fractions`` a record carries when it has no mask;
- sensor, band, resolution, polarisations, acquisition date and year;
- place: the WGS84 centre of the georeference (and a place name when ``meta`` has one:
  ``place``/``city``/``location``/``region``);
- the record's existing captions (for modality transfer and dialogue expansion) and whether a paired
  optical image exists.

Facts are a pure function of the record (and its mask), serialised canonically: their digest is part
of the annotation cache key, so a changed annotation is asked again and an unchanged one never is.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sarvlm.annotate.vocabulary import canonical, plural
from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import SampleRecord
from sarvlm.core.vocabulary import box_centre, grid_cells, majority_region, regions_with

MIN_LANDCOVER_SHARE = 0.005
_PLACE_KEYS = ("place", "city", "location", "region", "site")


@dataclass(frozen=True, slots=True)
class ObjectGroup:
    """The annotated objects of one category in one image."""

    category: str
    count: int
    fine: dict[str, int]
    cells: list[int]
    regions: list[str]
    main_region: str
    length_m: list[float] | None  # [shortest, longest] box diagonal in metres
    centres: list[list[float]] = field(default_factory=list)  # box centres in pixels, for position checks


@dataclass(frozen=True, slots=True)
class CaptionFact:
    text: str
    style: str
    source: str | None


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything an annotation prompt may use about one sample (see the module docstring)."""

    sample_id: str
    width: int
    height: int
    sensor: str | None
    band: str | None
    polarizations: list[str]
    resolution_m: float | None
    date: str | None
    year: int | None
    place: dict[str, Any] | None
    scene: str | None
    objects: list[ObjectGroup]
    landcover: dict[str, float] | None
    captions: list[CaptionFact]
    has_optical: bool

    @property
    def total_objects(self) -> int:
        return sum(g.count for g in self.objects)

    @property
    def categories(self) -> list[str]:
        return [g.category for g in self.objects]

    def group(self, category: str) -> ObjectGroup | None:
        c = canonical(category)
        return next((g for g in self.objects if g.category == c), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        """sha256 of the canonical JSON of the facts (part of the cache key)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def dominant_landcover(self) -> str | None:
        if not self.landcover:
            return None
        return min(self.landcover.items(), key=lambda kv: (-kv[1], kv[0]))[0]

    def as_text(self) -> str:
        """The facts as the bullet list that prompts embed (no pixel coordinates, nothing invented)."""
        lines = []
        sensor = ", ".join(
            x
            for x in (
                self.sensor,
                f"{self.band}-band" if self.band else None,
                "/".join(self.polarizations) or None,
                f"{self.resolution_m:g} m resolution" if self.resolution_m else None,
            )
            if x
        )
        if sensor:
            lines.append(f"- sensor: {sensor}")
        if self.date:
            lines.append(f"- acquired: {self.date}")
        if self.place:
            name = f"{self.place['name']}, " if self.place.get("name") else ""
            lines.append(f"- place: {name}lon {self.place['lon']:.4f}, lat {self.place['lat']:.4f} (WGS84 centre)")
        if self.scene:
            lines.append(f"- scene type: {self.scene}")
        lines.append(f"- image size: {self.width} x {self.height} pixels")
        if self.landcover:
            shares = ", ".join(
                f"{k} {100 * v:.0f}%" for k, v in sorted(self.landcover.items(), key=lambda kv: (-kv[1], kv[0]))
            )
            lines.append(f"- land cover: {shares}")
        if self.objects:
            for g in self.objects:
                noun = g.category if g.count == 1 else plural(g.category)
                fine = ", ".join(f"{n} {k}" for k, n in sorted(g.fine.items()))
                size = ""
                if g.length_m:
                    lo, hi = g.length_m
                    size = f"; about {lo:.0f} m long" if round(lo) == round(hi) else f"; {lo:.0f}-{hi:.0f} m long"
                lines.append(
                    f"- {g.count} {noun}" + (f" ({fine})" if fine else "") + f": mostly {g.main_region}, "
                    f"in 3x3 grid cell{'s' if len(g.cells) > 1 else ''} {', '.join(map(str, g.cells))}{size}"
                )
        else:
            lines.append("- annotated objects: none")
        return "\n".join(lines)


def _place(record: SampleRecord) -> dict[str, Any] | None:
    name = next((str(record.meta[k]) for k in _PLACE_KEYS if isinstance(record.meta.get(k), str)), None)
    g = record.georef
    lon = lat = None
    if g is not None:
        if g.bbox_wgs84 is not None:
            w, s, e, n = g.bbox_wgs84
            lon, lat = (w + e) / 2, (s + n) / 2
        else:
            from sarvlm.io.georef import pixel_to_lonlat

            lons, lats = pixel_to_lonlat(
                g, record.width / 2, record.height / 2, width=record.width, height=record.height
            )
            lon, lat = float(lons.ravel()[0]), float(lats.ravel()[0])
    if lon is None or lat is None or not (math.isfinite(lon) and math.isfinite(lat)):
        return {"name": name} if name else None
    out: dict[str, Any] = {"lon": round(lon, 5), "lat": round(lat, 5)}
    if name:
        out["name"] = name
    return out


def _read_mask(path: Path) -> Any:
    """The class mask; PNG masks through PIL (a tenth of GDAL's per-file cost), others through rasterio."""
    import numpy as np

    if path.suffix.lower() == ".png":
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                if im.mode in ("L", "P", "I", "I;16"):
                    return np.asarray(im)
        except FileNotFoundError:
            raise SarvlmError(f"{path}: no such file") from None
        except (OSError, UnidentifiedImageError) as exc:
            raise SarvlmError(f"{path}: cannot read land-cover mask ({exc})") from None
    from sarvlm.io.raster import read_raster

    return read_raster(path, bands=1)[0]


def _landcover(record: SampleRecord, base_dir: Path) -> dict[str, float] | None:
    shares: dict[str, float] = {}
    if record.landcover is not None:
        import numpy as np

        path = base_dir / record.landcover.mask
        mask = _read_mask(path)
        if mask.dtype.kind not in "iu":
            raise SarvlmError(f"{path}: land-cover mask must hold integer class values, got {mask.dtype}")
        names = {int(k): canonical(v) for k, v in record.landcover.classes.items()}
        counts = np.bincount(mask.astype(np.int64).ravel().clip(0), minlength=max(names, default=0) + 1)
        total = sum(int(counts[k]) for k in names if k < len(counts))
        if total == 0:
            return None
        for k, name in names.items():
            if k < len(counts) and counts[k]:
                shares[name] = shares.get(name, 0.0) + int(counts[k]) / total
    elif isinstance(record.meta.get("landcover_fractions"), dict):
        for k, v in record.meta["landcover_fractions"].items():
            if isinstance(v, (int, float)) and v > 0:
                shares[canonical(k)] = shares.get(canonical(k), 0.0) + float(v)
    shares = {k: round(v, 4) for k, v in sorted(shares.items()) if v >= MIN_LANDCOVER_SHARE}
    return shares or None


def _groups(record: SampleRecord) -> list[ObjectGroup]:
    by_cat: dict[str, list] = {}
    for obj in record.objects:
        if obj.iscrowd:
            continue
        by_cat.setdefault(canonical(obj.category), []).append(obj)
    w, h, res = record.width, record.height, record.resolution_m
    out = []
    for cat in sorted(by_cat):
        objs = by_cat[cat]
        boxes = [o.bbox for o in objs]
        fine: dict[str, int] = {}
        for o in objs:
            if o.fine_category:
                key = o.fine_category.replace("_", " ")
                fine[key] = fine.get(key, 0) + 1
        lengths = None
        if res:
            diag = [math.hypot(b[2] - b[0], b[3] - b[1]) * res for b in boxes]
            lengths = [round(min(diag), 1), round(max(diag), 1)]
        out.append(
            ObjectGroup(
                category=cat,
                count=len(objs),
                fine=dict(sorted(fine.items())),
                cells=grid_cells(boxes, w, h),
                regions=sorted(regions_with(boxes, w, h)),
                main_region=majority_region(boxes, w, h) or "center",
                length_m=lengths,
                centres=[[round(c, 2) for c in box_centre(b)] for b in boxes],
            )
        )
    return out


def record_facts(record: SampleRecord, base_dir: str | Path) -> Facts:
    """The facts of one record (reads its land-cover mask when it has one)."""
    return Facts(
        sample_id=record.id,
        width=record.width,
        height=record.height,
        sensor=record.sensor,
        band=record.band,
        polarizations=list(record.polarizations),
        resolution_m=record.resolution_m,
        date=record.date,
        year=record.year,
        place=_place(record),
        scene=str(record.meta["kind"]) if isinstance(record.meta.get("kind"), str) else None,
        objects=_groups(record),
        landcover=_landcover(record, Path(base_dir)),
        captions=[CaptionFact(c.text, c.style, c.source) for c in record.captions],
        has_optical=record.optical is not None,
    )
