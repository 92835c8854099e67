"""Importers: annotation formats -> sample records (one module per format, one registry).

=========  =====================================================================================
format     what SRC is
=========  =====================================================================================
coco       COCO detection JSON (SARDet-100k, SSDD, HRSID, SAR-AIRcraft)
dota       folder of DOTA ``labelTxt`` files (rotated boxes)
voc        folder of Pascal VOC XML files
yolo       folder of YOLO ``.txt`` labels (+ classes.txt / data.yaml)
sarlang    SARLANG-1M caption / VQA CSV or JSON files (a file or a folder)
geovl      FUSAR-GEOVL-1M 8-field caption JSON
llava      LLaVA / ShareGPT ``conversations`` JSON or JSONL
swift      ms-swift / LLaMA-Factory ``messages`` JSONL
=========  =====================================================================================
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarvlm.core.errors import InputError, NotFoundError, SarvlmError
from sarvlm.core.record import SampleRecord, write_samples
from sarvlm.data.importers.coco import read_coco
from sarvlm.data.importers.common import ImportContext
from sarvlm.data.importers.dota import read_dota
from sarvlm.data.importers.geovl import read_geovl
from sarvlm.data.importers.llava import read_llava
from sarvlm.data.importers.sarlang import read_sarlang
from sarvlm.data.importers.swift import read_swift
from sarvlm.data.importers.voc import read_voc
from sarvlm.data.importers.yolo import read_yolo

Reader = Callable[..., Iterator[SampleRecord]]
IMPORTERS: dict[str, Reader] = {
    "coco": read_coco,
    "dota": read_dota,
    "voc": read_voc,
    "yolo": read_yolo,
    "sarlang": read_sarlang,
    "geovl": read_geovl,
    "llava": read_llava,
    "swift": read_swift,
}


@dataclass
class ImportResult:
    out: Path
    records: int
    counts: Counter


def import_dataset(
    fmt: str,
    src: str | Path,
    out: str | Path,
    images: str | Path | None = None,
    source: str | None = None,
    split: str | None = None,
    skip_missing: bool = False,
    check_images: bool = True,
    allow_outside_root: bool = False,
    progress: Callable[..., Any] | None = None,
    *,
    date: str | int | None = None,
    sensor: str | None = None,
    polarizations: str | list[str] | None = None,
    meta: str | Path | None = None,
    **options: Any,
) -> ImportResult:
    """Import ``src`` in format ``fmt`` into a samples JSONL at ``out`` (written atomically).

    ``images`` is the folder the annotation file names are relative to (default: the folder of
    ``src``). Format-specific options: ``fine_from_supercategory`` (coco), ``classes`` (yolo).
    Acquisition facts (see :mod:`sarvlm.data.importers.common`): ``meta`` a sidecar CSV with one
    row per image; ``date`` (``YYYY[-MM[-DD]]`` or a year), ``sensor`` and ``polarizations``
    (``"VV+VH"`` or a list, one per band) fill what neither the sidecar nor the format gives. The images folder is the
    dataset root: names leaving it (absolute, ``../``) are refused unless ``allow_outside_root``.
    """
    from sarvlm.core.progress import track
    from sarvlm.data.importers.common import parse_date, parse_polarizations, read_sidecar

    reader = IMPORTERS.get(fmt)
    if reader is None:
        raise InputError(f"unknown import format {fmt!r} (expected one of {', '.join(IMPORTERS)})")
    src = Path(src)
    if not src.exists():
        raise NotFoundError(f"{src}: no such file or folder")
    images_dir = Path(images) if images is not None else (src if src.is_dir() else src.parent)
    if not images_dir.is_dir():
        raise NotFoundError(f"{images_dir}: image folder does not exist")
    if split is not None:
        from sarvlm.data.splits import normalise_split_name

        if normalise_split_name(split) is None:
            raise InputError(f"--split: unknown split name {split!r} (use train, val or test)")
        split = normalise_split_name(split)
    root = None
    if src.is_file() and (src.parent / "manifest.json").is_file():
        # a sarvlm build export (swift/llava): its images live under the build's recorded image root
        from sarvlm.data.example_root import example_image_root

        root, allow_outside_root = example_image_root(src, allow_outside_root)
    ctx = ImportContext(
        images_dir=images_dir,
        out_path=Path(out),
        source=source,
        split=split,
        skip_missing=skip_missing,
        check_images=check_images,
        date=parse_date(date, "--date") if date is not None else None,
        sensor=sensor,
        polarizations=(
            parse_polarizations("+".join(polarizations) if isinstance(polarizations, list) else polarizations, "--pol")
            if polarizations
            else None
        ),
        sidecar=read_sidecar(meta) if meta is not None else {},
        allow_outside_root=allow_outside_root,
        root=root,
    )
    kwargs = {k: v for k, v in options.items() if v is not None}
    wrap = progress or track
    try:
        n = write_samples(out, _nonempty(wrap(reader(src, ctx, **kwargs), description=f"importing {fmt}"), src, ctx))
    except UnicodeDecodeError:
        raise SarvlmError(f"{src}: not UTF-8 text") from None
    return ImportResult(Path(out), n, ctx.counts)


def _nonempty(records: Iterator[SampleRecord], src: Path, ctx: ImportContext) -> Iterator[SampleRecord]:
    """Pass records through; fail (inside the atomic write, so nothing is written) when there are none."""
    n = 0
    for rec in records:
        n += 1
        yield rec
    if n == 0:
        skipped = ctx.counts["missing_image"]
        extra = f" ({skipped} skipped for missing images)" if skipped else ""
        raise SarvlmError(f"{src}: no samples to import{extra}")


__all__ = ["IMPORTERS", "ImportContext", "ImportResult", "import_dataset"]
