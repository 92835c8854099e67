"""FUSAR-GEOVL-1M structured captions -> sample records with an 8-field caption.

A JSON array (or JSONL, or an object keyed by image id) of entries with ``image_id`` (or ``image``)
and the eight fields Terrain, Functionality, Distribution, Layout, Boundary, Buildings, Roads, Water
(paper 004, §3 and Fig. 8; names are matched case-insensitively and singular forms such as
``Building``/``Road`` are accepted; further text fields such as ``Location`` or ``Region`` are kept).
The caption's ``text`` is the fields as ``Field: value`` lines in that order; ``fields`` keeps them.
``image_id`` without a suffix is looked up as ``<id>.png/.tif/...`` in ``--images``. Optional
``lon``/``lat`` or ``bbox_wgs84`` entries become the record's WGS84 georeference when the image has
none.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sarvlm.core.errors import InputError, NotFoundError, SarvlmError
from sarvlm.core.record import SampleRecord
from sarvlm.data.export import iter_rows
from sarvlm.data.importers.common import ImportContext
from sarvlm.tasks.caption import GEOVL_FIELDS, structured_text

_ID_KEYS = ("image_id", "image", "imageid", "id", "filename", "file_name")
_NOT_FIELDS = set(_ID_KEYS) | {"lon", "lat", "bbox_wgs84", "split", "date", "sensor", "resolution", "resolution_m"}


def _canonical_field(name: str) -> str:
    low = name.strip().lower()
    for f in GEOVL_FIELDS:
        if low in (f.lower(), f.lower().rstrip("s")):
            return f
    return name.strip()


def _entries(src: Path) -> Iterator[tuple[str, dict]]:
    head = src.read_text(encoding="utf-8", errors="replace").lstrip()[:1]
    if head == "{":
        from sarvlm.data.importers.common import load_json

        try:
            data = load_json(src)
        except SarvlmError:
            data = None  # JSONL: one object per line
        if isinstance(data, dict) and not any(k.lower() in _ID_KEYS for k in data):
            for key, value in data.items():
                if not isinstance(value, dict):
                    raise InputError(f"{src}: {key}: expected an object of fields")
                yield f"{src}: {key}", {"image_id": key, **value}
            return
    yield from iter_rows(src)


def read_geovl(src: Path, ctx: ImportContext) -> Iterator[SampleRecord]:
    """Stream sample records from a FUSAR-GEOVL-1M caption file."""
    if not src.is_file():
        raise NotFoundError(f"{src}: no such file")
    for where, entry in _entries(src):
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected an object")
        key = next((k for k in entry if k.lower() in _ID_KEYS), None)
        if key is None or not str(entry[key]).strip():
            raise InputError(f"{where}: image_id: missing")
        name = str(entry[key]).strip()
        fields = {
            _canonical_field(k): str(v).strip()
            for k, v in entry.items()
            if k.lower() not in _NOT_FIELDS and isinstance(v, str) and v.strip()
        }
        if not any(f in fields for f in GEOVL_FIELDS):
            raise InputError(f"{where}: none of the fields {', '.join(GEOVL_FIELDS)}")
        if Path(name).suffix:
            info = ctx.image(name, where)
        else:
            found = ctx.find_image(name, where)
            info = ctx.image(str(found), where) if found is not None else None
        if info is None:
            continue
        box = entry.get("bbox_wgs84")
        yield ctx.record(
            name,
            info,
            where,
            source=ctx.source or "FUSAR-GEOVL-1M",
            georef={"bbox_wgs84": box} if isinstance(box, list) else None,
            captions=[
                {"text": structured_text(fields), "style": "structured", "fields": fields, "source": "FUSAR-GEOVL-1M"}
            ],
        )
