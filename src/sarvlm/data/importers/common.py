"""What every importer shares: locating and checking images, naming records, counting skips,
and the acquisition facts (date, sensor, polarisations) a record carries.

Acquisition facts, in order of precedence (first one found wins, per field):

1. the sidecar CSV (``--meta FILE``): one row per image, column ``file_name`` (or ``image``) and any
   of ``date`` (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``, or a timestamp starting with one),
   ``year``, ``sensor``, ``band``, ``polarizations`` (``VV+VH``, ``VV;VH`` or ``VV VH``),
   ``resolution_m``; rows match the image's path relative to ``--images`` or its file name;
2. what the format or the file carries: COCO ``images[].date_captured``, GeoTIFF band descriptions
   naming polarisations (one per band), GeoTIFF tags ``ACQUISITION_DATE`` /
   ``ACQUISITION_START_TIME``;
3. the import options ``--date``/``--year``, ``--sensor``, ``--pol`` (defaults for every record
   that still lacks the field).

The import summary counts records without a date, since ``sarvlm priors`` needs the year.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarvlm.core.errors import InputError, NotFoundError, SarvlmError
from sarvlm.core.record import GeoRef, SampleRecord, parse_sample

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass
class ImageInfo:
    """An image found on disk: its path relative to the output JSONL, size and georeference."""

    rel: str
    width: int
    height: int
    georef: GeoRef | None
    polarizations: list[str] = field(default_factory=list)  # from band descriptions, when they name them
    date: str | None = None  # from acquisition tags
    key: str = ""  # path relative to the images folder (sidecar lookup)
    count: int = 0  # bands (0 = not read)


_DATE_PREFIX = re.compile(r"^\s*(\d{4})(?:[-:/](\d{2})(?:[-:/](\d{2}))?)?")
_DATE_TAGS = ("ACQUISITION_DATE", "ACQUISITION_START_TIME", "acquisition_date", "acquisition_start_time")


def parse_date(value: object, who: str) -> str | None:
    """``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or a timestamp (``2021-06-14 10:12:00``, ``2021:06:14``,
    ``2021-06-14T10:12:00Z``) -> the record's date string; empty -> None; anything else -> error."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    m = _DATE_PREFIX.match(text)
    if m is None or not 1900 <= int(m.group(1)) <= 2200:
        raise InputError(f"{who}: date: cannot read {text!r} (expected YYYY, YYYY-MM or YYYY-MM-DD)")
    year, month, day = m.groups()
    if month and not 1 <= int(month) <= 12 or day and not 1 <= int(day) <= 31:
        raise InputError(f"{who}: date: {text!r} is not a calendar date")
    return "-".join(p for p in (year, month, day) if p)


def parse_polarizations(value: object, who: str) -> list[str]:
    """``VV+VH``, ``VV;VH``, ``VV,VH`` or ``VV VH`` -> ``["VV", "VH"]`` (validated)."""
    from sarvlm.core.record import normalize_polarization

    parts = [p for p in re.split(r"[+;,/\s]+", str(value or "").strip()) if p]
    try:
        return [normalize_polarization(p) for p in parts]
    except SarvlmError as exc:
        raise InputError(f"{who}: {exc}") from None


_SIDECAR_FIELDS = ("date", "year", "sensor", "band", "polarizations", "pol", "resolution_m")


def read_sidecar(path: str | Path) -> dict[str, dict[str, Any]]:
    """A sidecar CSV of per-image acquisition facts -> ``{file key: {field: value}}`` (validated)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file (--meta)")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            key_col = next((c for c in ("file_name", "image", "file") if c in header), None)
            if key_col is None:
                raise InputError(f"{path}: --meta CSV needs a 'file_name' (or 'image') column, has {header}")
            unknown = [h for h in header if h != key_col and h not in _SIDECAR_FIELDS]
            if unknown:
                raise InputError(
                    f"{path}: unknown column(s) {', '.join(unknown)} (known: {', '.join(_SIDECAR_FIELDS)})"
                )
            rows: dict[str, dict[str, Any]] = {}
            for lineno, row in enumerate(reader, 2):
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                who = f"{path}:{lineno}"
                name = row.get(key_col, "")
                if not name:
                    raise InputError(f"{who}: {key_col}: empty")
                facts: dict[str, Any] = {}
                if row.get("date") or row.get("year"):
                    facts["date"] = parse_date(row.get("date") or row.get("year"), who)
                for key in ("sensor", "band"):
                    if row.get(key):
                        facts[key] = row[key]
                if row.get("polarizations") or row.get("pol"):
                    facts["polarizations"] = parse_polarizations(row.get("polarizations") or row.get("pol"), who)
                if row.get("resolution_m"):
                    try:
                        facts["resolution_m"] = float(row["resolution_m"])
                    except ValueError:
                        raise InputError(f"{who}: resolution_m: not a number: {row['resolution_m']!r}") from None
                key = Path(name).as_posix()
                if key in rows:
                    raise InputError(f"{who}: {key_col}: {name!r} listed twice")
                rows[key] = facts
            return rows
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


@dataclass
class ImportContext:
    """Options and running counts of one import."""

    images_dir: Path
    out_path: Path  # the samples JSONL being written (image paths are relative to its directory)
    source: str | None = None
    split: str | None = None  # split given on the command line (overrides what the format says)
    skip_missing: bool = False
    check_images: bool = True  # open every image (readable, size matches); off: existence only
    date: str | None = None  # default acquisition date (--date / --year)
    sensor: str | None = None  # default sensor (--sensor)
    polarizations: list[str] | None = None  # default band polarisations (--pol)
    sidecar: dict[str, dict[str, Any]] = field(default_factory=dict)  # --meta CSV rows by file key
    allow_outside_root: bool = False  # accept image names leaving the root (absolute, ../)
    root: Path | None = None  # the folder image names must stay in (default: images_dir)
    counts: Counter = field(default_factory=Counter)
    _size_cache: dict[str, ImageInfo | None] = field(default_factory=dict)

    def image(self, name: str, who: str, width: int | None = None, height: int | None = None) -> ImageInfo | None:
        """Find and check an image named by an annotation file.

        Returns None when the image is missing and ``skip_missing`` is set (counted as
        ``missing_image``); raises :class:`SarvlmError` naming ``who`` otherwise. Sizes given by the
        annotations must match the file.
        """
        from sarvlm.core.paths import resolve_in_root

        path = Path(name)
        try:
            full = resolve_in_root(self.images_dir, path, allow_outside=True)
            resolve_in_root(self.root or self.images_dir, full, allow_outside=self.allow_outside_root)
        except SarvlmError as exc:
            raise SarvlmError(f"{who}: {exc}") from None
        if not full.exists() and not path.is_absolute():
            alt = self.images_dir / path.name  # annotation files often keep a sub-folder the user flattened
            if alt.exists():
                full = alt
        key = str(full)
        if key in self._size_cache:
            info = self._size_cache[key]
        else:
            info = self._probe(full, who)
            self._size_cache[key] = info
        if info is None:
            return None
        if width is not None and height is not None and (info.width, info.height) != (int(width), int(height)):
            raise InputError(
                f"{who}: image {full} is {info.width}x{info.height} but the annotations say {int(width)}x{int(height)}"
            )
        return info

    def _probe(self, full: Path, who: str) -> ImageInfo | None:
        if not full.exists():
            if self.skip_missing:
                self.counts["missing_image"] += 1
                return None
            raise NotFoundError(f"{who}: image {full}: no such file (use --skip-missing to skip it)")
        rel = os.path.relpath(full.resolve(), self.out_path.resolve().parent).replace(os.sep, "/")
        try:
            key = full.resolve().relative_to(self.images_dir.resolve()).as_posix()
        except ValueError:
            key = full.name
        if not self.check_images:
            width, height = _header_size(full)
            return ImageInfo(rel, width, height, None, key=key)
        from sarvlm.io.raster import raster_info

        try:
            info = raster_info(full)
        except SarvlmError as exc:
            raise InputError(f"{who}: {exc}") from None
        names = [(d or "").strip().upper() for d in info.band_descriptions]
        pols = names if len(names) == info.count and all(n in ("HH", "HV", "VH", "VV") for n in names) else []
        date = None
        for tag in _DATE_TAGS:
            if info.tags.get(tag):
                try:
                    date = parse_date(info.tags[tag], f"{full}: tag {tag}")
                except SarvlmError:
                    date = None  # a tag we cannot read is not the user's error
                break
        return ImageInfo(rel, info.width, info.height, info.georef, pols, date, key, info.count)

    def record(self, name: str, info: ImageInfo, who: str, **fields: Any) -> SampleRecord:
        """The sample record of one imported image: id, image path, size, georeference, split and
        source from this context and ``info``, plus the format's ``fields`` (objects, captions, ...;
        a ``georef`` there is used only when the image has none). Counts records and objects."""
        rec: dict[str, Any] = {
            "id": record_id(self.source, name),
            "image": info.rel,
            "width": info.width,
            "height": info.height,
            "split": self.split,
            "source": self.source,
            **fields,
        }
        if info.georef is not None:
            rec["georef"] = info.georef.model_dump(mode="json", exclude_none=True)
        self._acquisition(rec, info, who)
        self.counts["records"] += 1
        if "objects" in fields:
            self.counts["objects"] += len(fields["objects"])
        return parse_sample({k: v for k, v in rec.items() if v is not None}, who)

    def _acquisition(self, rec: dict[str, Any], info: ImageInfo, who: str) -> None:
        """Fill date, sensor and polarisations: sidecar row > format/file > import defaults."""
        side = self.sidecar.get(info.key) or self.sidecar.get(Path(info.key).name)
        if side is not None:
            self.counts["with_sidecar_row"] += 1
            rec.update(side)
        if "date" in rec and rec["date"] is not None:
            rec["date"] = parse_date(rec["date"], who)
        if not rec.get("date"):
            rec["date"] = info.date or self.date
        if not rec.get("sensor") and self.sensor:
            rec["sensor"] = self.sensor
        if not rec.get("polarizations"):
            rec["polarizations"] = info.polarizations or self.polarizations or []
        pols = rec["polarizations"]
        if pols and info.count and len(pols) != info.count:
            raise InputError(
                f"{who}: polarizations: {'+'.join(pols)} names {len(pols)} band(s) but the image has {info.count}"
            )
        if not rec.get("date"):
            self.counts["without_date"] += 1

    def find_image(self, stem: str, who: str) -> Path | None:
        """An image in ``images_dir`` with this stem and a usual suffix (for DOTA/YOLO/VOC layouts)."""
        for suffix in IMAGE_SUFFIXES:
            for cand in (self.images_dir / f"{stem}{suffix}", self.images_dir / f"{stem}{suffix.upper()}"):
                if cand.exists():
                    return cand
        if self.skip_missing:
            self.counts["missing_image"] += 1
            return None
        raise InputError(
            f"{who}: no image named {stem}.* ({', '.join(IMAGE_SUFFIXES)}) in {self.images_dir} "
            f"(use --skip-missing to skip it)"
        )


def _header_size(path: Path) -> tuple[int, int]:
    """Width and height from the header only, through the same safe opener (allow-list, size limit)."""
    from sarvlm.io.raster import open_raster

    with open_raster(path) as ds:
        return ds.width, ds.height


def load_json(path: Path) -> Any:
    """A JSON file, with errors naming the file and line."""
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


def record_id(prefix: str | None, name: str) -> str:
    """A record id from an image name (``prefix/stem``), stable across runs. Parent (``..``),
    current (``.``) and root parts of a path name are left out (``../pre/images/x.png`` -> ``pre/images/x``)."""
    parts = [p for p in Path(name).with_suffix("").parts if p not in ("..", ".", "/") and not p.endswith(":\\")]
    stem = "/".join(parts) or Path(name).stem
    return f"{prefix}/{stem}" if prefix else stem
