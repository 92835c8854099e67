"""DOTA-style rotated-box labels -> sample records.

``SRC`` is a folder of ``labelTxt`` files, one per image (same stem). Each object line is
``x1 y1 x2 y2 x3 y3 x4 y4 category difficult`` (the difficult flag may be missing); header lines such
as ``imagesource:...`` and ``gsd:...`` are read (``gsd`` becomes ``resolution_m``). The four corners
are kept as ``polygon`` and their enclosing axis-aligned box as ``bbox``. Records come in file-name
order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sarvlm.core.errors import InputError
from sarvlm.core.record import SampleRecord
from sarvlm.data.importers.common import ImportContext


def parse_dota_lines(lines: list[str], where: str) -> tuple[list[dict], float | None]:
    """Objects and the ground sampling distance of one DOTA label file."""
    objs: list[dict] = []
    gsd = None
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        low = line.lower()
        if low.startswith("gsd:"):
            try:
                value = float(line.split(":", 1)[1])
                gsd = value if math.isfinite(value) and value > 0 else None
            except ValueError:
                gsd = None  # DOTA writes "gsd:null" for unknown
            continue
        if low.startswith("imagesource:") or ":" in line.split()[0]:
            continue
        parts = line.split()
        if len(parts) < 9:
            raise InputError(f"{where}:{lineno}: expected 8 corner coordinates, a category and a difficult flag")
        try:
            coords = [float(v) for v in parts[:8]]
        except ValueError:
            raise InputError(f"{where}:{lineno}: corner coordinates must be numbers") from None
        if not all(math.isfinite(v) for v in coords):
            raise InputError(f"{where}:{lineno}: non-finite corner coordinate")
        xs, ys = coords[0::2], coords[1::2]
        obj: dict[str, Any] = {"category": parts[8], "bbox": [min(xs), min(ys), max(xs), max(ys)], "polygon": coords}
        if len(parts) > 9 and parts[9] not in ("0", ""):
            obj["difficult"] = True
        objs.append(obj)
    return objs, gsd


def read_dota(src: Path, ctx: ImportContext) -> Iterator[SampleRecord]:
    """Stream sample records from a folder of DOTA label files (or one file)."""
    files = sorted(src.glob("*.txt")) if src.is_dir() else [src]
    if not files:
        raise InputError(f"{src}: no .txt label files")
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None
        objs, gsd = parse_dota_lines(lines, str(path))
        image = ctx.find_image(path.stem, str(path))
        if image is None:
            continue
        info = ctx.image(str(image), str(path))
        if info is None:
            continue
        yield ctx.record(path.stem, info, str(path), resolution_m=gsd, objects=objs)
