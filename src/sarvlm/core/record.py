"""The sample record: one SAR image with everything known about it.

This is the one record type that flows through sarvlm: the synthetic world and
the importers produce it, preprocessing and tiling emit it, the task generators,
the prior sampler and the demo consume it. It is serialised one per line in JSONL
(see docs/sample-record.md). Image paths are relative to the JSONL file.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sarvlm.core.errors import InputError
from sarvlm.core.jsonl import parse_record, read_jsonl, write_jsonl

SCHEMA_VERSION = 1
POLARIZATIONS = ("HH", "HV", "VH", "VV")


def normalize_polarization(name: str) -> str:
    """Upper-case a polarisation name; raise naming it when it is not HH/HV/VH/VV."""
    pol = str(name).strip().upper()
    if pol not in POLARIZATIONS:
        raise InputError(f"polarisation: unknown polarisation {name!r} (expected one of {', '.join(POLARIZATIONS)})")
    return pol


_DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class GroundControlPoint(_Strict):
    """A tie point between image pixel (row, col) and a position in ``GeoRef.gcp_crs``."""

    row: float
    col: float
    x: float  # lon (or easting) in gcp_crs
    y: float  # lat (or northing) in gcp_crs
    z: float = 0.0


class GeoRef(_Strict):
    """Where the image lies on Earth: an affine transform + CRS, ground control points, or a WGS84 box.

    ``transform`` holds rasterio's ``Affine`` coefficients ``(a, b, c, d, e, f)``:
    ``x = a*col + b*row + c``, ``y = d*col + e*row + f`` (pixel corners, col/row at the
    top-left corner of a pixel being integer).
    """

    crs: str | None = None
    transform: list[float] | None = None
    gcps: list[GroundControlPoint] | None = None
    gcp_crs: str = "EPSG:4326"
    bbox_wgs84: list[float] | None = None  # lon_min, lat_min, lon_max, lat_max

    @field_validator("transform")
    @classmethod
    def _six_coefficients(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            if len(v) != 6:
                raise ValueError("affine transform needs 6 coefficients (a, b, c, d, e, f)")
            if v[0] * v[4] - v[1] * v[3] == 0:
                raise ValueError("affine transform is singular")
        return v

    @field_validator("bbox_wgs84")
    @classmethod
    def _valid_bbox(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            if len(v) != 4 or not all(math.isfinite(x) for x in v):
                raise ValueError("bbox_wgs84 needs 4 finite numbers: lon_min, lat_min, lon_max, lat_max")
            lon_min, lat_min, lon_max, lat_max = v
            if not (-180 <= lon_min <= 180 and -180 <= lon_max <= 180):
                raise ValueError(f"longitude out of range [-180, 180] in {v} (lat/lon swapped?)")
            if not (-90 <= lat_min <= 90 and -90 <= lat_max <= 90):
                raise ValueError(f"latitude out of range [-90, 90] in {v} (lat/lon swapped?)")
            if lat_min >= lat_max:
                raise ValueError(f"lat_min must be < lat_max in {v}")
            if lon_min >= lon_max:
                raise ValueError(
                    f"lon_min must be < lon_max in {v} (footprints across the antimeridian are not supported)"
                )
        return v

    @model_validator(mode="after")
    def _something_given(self) -> GeoRef:
        if self.transform is None and not self.gcps and self.bbox_wgs84 is None:
            raise ValueError("georef needs a transform (+crs), gcps, or bbox_wgs84")
        if self.transform is not None and not self.crs:
            raise ValueError("georef with a transform needs a crs")
        if self.gcps is not None and len(self.gcps) < 3:
            raise ValueError("georef needs at least 3 ground control points")
        return self


class ObjectAnnotation(_Strict):
    """One annotated target. ``bbox`` is ``[x1, y1, x2, y2]`` in pixels of this image."""

    category: str
    fine_category: str | None = None
    bbox: list[float]
    polygon: list[float] | None = None  # rotated box / polygon: x1, y1, x2, y2, ... in pixels
    iscrowd: bool = False
    difficult: bool = False
    id: str | None = None

    @field_validator("category")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("category is empty")
        return v

    @field_validator("bbox")
    @classmethod
    def _box(cls, v: list[float]) -> list[float]:
        if len(v) != 4 or not all(math.isfinite(x) for x in v):
            raise ValueError("bbox needs 4 finite numbers [x1, y1, x2, y2]")
        if v[2] < v[0] or v[3] < v[1]:
            raise ValueError(f"bbox {v} has negative size (x2 < x1 or y2 < y1)")
        return v

    @field_validator("polygon")
    @classmethod
    def _poly(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) < 6 or len(v) % 2):
            raise ValueError("polygon needs an even number (>= 6) of coordinates")
        return v


class Caption(_Strict):
    text: str
    style: str = "concise"  # concise | complex | structured | template | ...
    fields: dict[str, str] | None = None  # structured captions, e.g. FUSAR-GEOVL's 8 fields
    source: str | None = None
    # Provenance and checks of generated captions (e.g. `sarvlm annotate`: prompt, model, validation).
    meta: dict[str, Any] | None = None


class QAPair(_Strict):
    question: str
    answer: str
    type: str | None = None  # question type, e.g. SARLANG-1M's "counting"


class Turn(_Strict):
    role: Literal["user", "assistant", "system"]
    content: str


class Dialogue(_Strict):
    turns: list[Turn]
    source: str | None = None
    meta: dict[str, Any] | None = None  # provenance and checks of generated dialogues


class LandCover(_Strict):
    """A per-pixel class mask (single-band PNG/TIFF, path relative to the JSONL) and its class names."""

    mask: str
    classes: dict[int, str]


class SampleRecord(_Strict):
    """One SAR image and its annotations. See docs/sample-record.md."""

    schema_version: int = SCHEMA_VERSION
    id: str
    image: str
    optical: str | None = None
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    sensor: str | None = None
    band: str | None = None
    polarizations: list[str] = Field(default_factory=list)
    resolution_m: float | None = Field(default=None, gt=0)
    date: str | None = None  # "YYYY", "YYYY-MM" or "YYYY-MM-DD"
    georef: GeoRef | None = None
    objects: list[ObjectAnnotation] = Field(default_factory=list)
    landcover: LandCover | None = None
    captions: list[Caption] = Field(default_factory=list)
    qa: list[QAPair] = Field(default_factory=list)
    dialogues: list[Dialogue] = Field(default_factory=list)
    split: str | None = None
    source: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", "image")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("polarizations")
    @classmethod
    def _pols(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if p.upper() not in POLARIZATIONS]
        if bad:
            raise ValueError(f"unknown polarisation {bad[0]!r} (expected one of {', '.join(POLARIZATIONS)})")
        return [p.upper() for p in v]

    @field_validator("date")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        if v is not None and not _DATE_RE.match(v):
            raise ValueError(f"date must be YYYY, YYYY-MM or YYYY-MM-DD, got {v!r}")
        if v is not None and len(v) > 4:
            parts = [int(p) for p in v.split("-")] + [1]
            try:
                datetime.date(parts[0], parts[1], parts[2])
            except ValueError:
                raise ValueError(f"date {v!r} is not a calendar date") from None
        return v

    @field_validator("schema_version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v > SCHEMA_VERSION:
            raise ValueError(f"schema_version {v} is newer than this sarvlm supports ({SCHEMA_VERSION})")
        return v

    @property
    def year(self) -> int | None:
        """Acquisition year, if the date is known."""
        return int(self.date[:4]) if self.date else None

    def image_path(self, base_dir: str | Path) -> Path:
        """Absolute path of the SAR image, given the directory of the JSONL file."""
        return (Path(base_dir) / self.image).resolve()

    def optical_path(self, base_dir: str | Path) -> Path | None:
        return (Path(base_dir) / self.optical).resolve() if self.optical else None

    def to_json(self) -> str:
        """One JSONL line (no trailing newline). Field order is fixed, so output is byte-stable."""
        return json.dumps(self.model_dump(mode="json", exclude_none=True), ensure_ascii=False, sort_keys=False)


def parse_sample(data: dict[str, Any] | str, where: str = "") -> SampleRecord:
    """Validate one record (dict or JSON text); errors name ``where``, the record id and the field."""
    return parse_record(data, SampleRecord, where)


def read_samples(path: str | Path) -> Iterator[SampleRecord]:
    """Stream sample records from a JSONL file; errors name the file and line number."""
    return read_jsonl(path, SampleRecord)


def write_samples(path: str | Path, records: Iterable[SampleRecord]) -> int:
    """Write records as JSONL atomically (temp file + rename). Returns the count."""
    return write_jsonl(path, records)
