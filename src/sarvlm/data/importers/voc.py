"""Pascal VOC XML annotations (SSDD, HRSID and many SAR ship sets ship these) -> sample records.

``SRC`` is a folder of ``.xml`` files (or one file): ``filename``, ``size/width``, ``size/height`` and
``object`` elements with ``name``, ``difficult`` and ``bndbox`` (``xmin ymin xmax ymax``; rotated
``robndbox`` boxes of RSDD-style files are read as their enclosing box). The image is looked up by
``filename`` in ``--images`` (falling back to the XML's stem) and its size must match ``size``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sarvlm.core.errors import InputError
from sarvlm.core.record import SampleRecord
from sarvlm.data.importers.common import ImportContext


def _num(el: ET.Element | None, tag: str, where: str) -> float:
    node = el.find(tag) if el is not None else None
    try:
        value = float(node.text)  # type: ignore[union-attr, arg-type]
    except (AttributeError, TypeError, ValueError):
        raise InputError(f"{where}: {tag}: missing or not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: {tag}: not finite")
    return value


def _robndbox(rb: ET.Element, where: str) -> tuple[list[float], list[float]]:
    cx, cy, w, h = (_num(rb, t, where) for t in ("cx", "cy", "w", "h"))
    angle = _num(rb, "angle", where)
    c, s = math.cos(angle), math.sin(angle)
    corners = [
        (cx + dx * c - dy * s, cy + dx * s + dy * c)
        for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))
    ]
    poly = [v for p in corners for v in p]
    xs, ys = poly[0::2], poly[1::2]
    return [min(xs), min(ys), max(xs), max(ys)], poly


def read_voc(src: Path, ctx: ImportContext) -> Iterator[SampleRecord]:
    """Stream sample records from VOC XML files in name order."""
    files = sorted(src.glob("*.xml")) if src.is_dir() else [src]
    if not files:
        raise InputError(f"{src}: no .xml annotation files")
    for path in files:
        where = str(path)
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise InputError(f"{where}: malformed XML ({exc})") from None
        size = root.find("size")
        width, height = (int(_num(size, t, where)) for t in ("width", "height")) if size is not None else (None, None)
        name_el = root.find("filename")
        fname = name_el.text.strip() if name_el is not None and name_el.text else None
        image = None
        if fname and (ctx.images_dir / fname).exists():
            image = ctx.images_dir / fname
        else:
            image = ctx.find_image(Path(fname).stem if fname else path.stem, where)
        if image is None:
            continue
        info = ctx.image(str(image), where, width or None, height or None)
        if info is None:
            continue
        objs = []
        for k, obj in enumerate(root.iter("object")):
            owhere = f"{where}: object {k}"
            name = (obj.findtext("name") or "").strip()
            if not name:
                raise InputError(f"{owhere}: name: empty")
            bnd, rb = obj.find("bndbox"), obj.find("robndbox")
            poly = None
            if bnd is not None:
                box = [_num(bnd, t, owhere) for t in ("xmin", "ymin", "xmax", "ymax")]
            elif rb is not None:
                box, poly = _robndbox(rb, owhere)
            else:
                raise InputError(f"{owhere}: no bndbox")
            if box[2] < box[0] or box[3] < box[1]:
                raise InputError(f"{owhere}: bndbox: negative size (xmax < xmin or ymax < ymin)")
            o: dict[str, Any] = {"category": name, "bbox": box}
            if poly:
                o["polygon"] = poly
            if (obj.findtext("difficult") or "0").strip() not in ("0", ""):
                o["difficult"] = True
            objs.append(o)
        stem = Path(fname).stem if fname else path.stem
        yield ctx.record(stem, info, where, objects=objs)
