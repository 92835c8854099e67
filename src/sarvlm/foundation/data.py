"""Sample records -> KLIP training items: the 8 caption fragments and the image of each record.

Texts come from one caption per record, chosen by ``text_field`` (a caption ``style``):

- ``structured`` (default): FUSAR-GEOVL's 8-field caption (``Caption.fields``) -- the fragments
  are the fields in GEOVL order (Terrain, Functionality, Distribution, Layout, Boundary,
  Buildings, Roads, Water), or the HCoT object fields (Count, Location, Feature, Size, Category,
  Distribution, Region, Environment) when those are the keys;
- any other style: that caption's sentences are the fragments.

A fragment renders as ``"Field: value."``; the text is the fragments joined by spaces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sarvlm.core.errors import InputError, NotFoundError
from sarvlm.core.progress import track
from sarvlm.core.record import SampleRecord, read_samples

GEOVL_FIELDS = ("Terrain", "Functionality", "Distribution", "Layout", "Boundary", "Buildings", "Roads", "Water")
HCOT_FIELDS = ("Count", "Location", "Feature", "Size", "Category", "Distribution", "Region", "Environment")


@dataclass
class KlipItem:
    """One image and its caption fragments (``fields[k]`` is the fragment's name, ``values[k]`` its text)."""

    id: str
    image: Path
    fields: list[str]
    values: list[str]
    label: str | None = None
    record: SampleRecord | None = field(default=None, repr=False)
    base: Path | None = None  # directory the record's relative paths start from

    def fragments(self) -> list[str]:
        return [render_fragment(k, v) for k, v in zip(self.fields, self.values)]

    def text(self, keep: Sequence[bool] | None = None, replace: dict[int, str] | None = None) -> str:
        """The full text; ``keep[k] = False`` leaves fragment k out, ``replace[k]`` swaps its value."""
        parts = []
        for k, (name, value) in enumerate(zip(self.fields, self.values)):
            if keep is not None and not keep[k]:
                continue
            parts.append(render_fragment(name, (replace or {}).get(k, value)))
        return " ".join(parts)


def render_fragment(name: str, value: str) -> str:
    value = value.strip().rstrip(".").strip()
    return f"{name}: {value}." if name else f"{value}."


def _ordered_fields(fields: dict[str, str]) -> list[tuple[str, str]]:
    for order in (GEOVL_FIELDS, HCOT_FIELDS):
        if any(k in fields for k in order):
            known = [(k, fields[k]) for k in order if k in fields]
            rest = sorted((k, v) for k, v in fields.items() if k not in order)
            return [(k, v) for k, v in known + rest if str(v).strip()]
    return [(k, v) for k, v in sorted(fields.items()) if str(v).strip()]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def item_from_record(
    rec: SampleRecord, base: Path, text_field: str = "structured", label_field: str | None = None
) -> KlipItem:
    """Pick the caption of style ``text_field`` and split it into fragments; errors name the record."""
    cap = next((c for c in rec.captions if c.style == text_field), None)
    if cap is None:
        styles = sorted({c.style for c in rec.captions}) or ["none"]
        raise InputError(
            f"record {rec.id!r}: no caption with style {text_field!r} (it has: {', '.join(styles)}); "
            "choose one with --text-field"
        )
    if cap.fields:
        pairs = _ordered_fields(cap.fields)
    else:
        pairs = [("", s) for s in _sentences(cap.text)]
    if not pairs:
        raise InputError(f"record {rec.id!r}: caption {text_field!r} is empty")
    label = record_value(rec, label_field) if label_field else None
    return KlipItem(
        id=rec.id,
        image=rec.image_path(base),
        fields=[k for k, _ in pairs],
        values=[str(v) for _, v in pairs],
        label=label,
        record=rec,
        base=base,
    )


def record_value(rec: SampleRecord, dotted: str) -> str:
    """``meta.kind`` -> ``rec.meta["kind"]``; errors name the record and the field."""
    node: object = rec.model_dump(mode="json")
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise InputError(f"record {rec.id!r}: no field {dotted!r}")
    if isinstance(node, (dict, list)) or node is None:
        raise InputError(f"record {rec.id!r}: field {dotted!r} is not a single value")
    return str(node)


def load_items(
    path: str | Path, text_field: str = "structured", label_field: str | None = None, limit: int | None = None
) -> list[KlipItem]:
    """All records of a JSONL file as :class:`KlipItem` (the file must exist and hold records)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    items = []
    for rec in read_samples(path):
        items.append(item_from_record(rec, path.parent, text_field, label_field))
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise InputError(f"{path}: no sample records")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"{path}: record id {dup!r} appears more than once")
    return items


def load_images(
    items: Sequence[KlipItem], image_size: int, num_channels: int, db_window: Sequence[float]
) -> torch.Tensor:
    """Every item's image as one ``(N, C, S, S)`` float32 tensor (read once; datasets here fit in memory)."""
    from sarvlm.foundation.transforms import load_sar_image

    window = (float(db_window[0]), float(db_window[1]))
    out = torch.empty(len(items), num_channels, image_size, image_size)
    for i, it in enumerate(track(items, description=f"reading {len(items)} images", total=len(items))):
        out[i] = load_sar_image(it.image, image_size, num_channels, window)
    return out
