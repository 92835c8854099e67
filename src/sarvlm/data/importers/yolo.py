"""YOLO labels (normalised ``class cx cy w h`` per line) -> sample records.

``SRC`` is a folder of ``.txt`` label files (one per image, same stem). Class names come from
``--classes FILE`` (``classes.txt``: one name per line; or a YOLO ``data.yaml`` with ``names`` as a
list or an ``{id: name}`` mapping); without it, ``classes.txt``, ``obj.names``, ``data.yaml`` are
looked for in ``SRC`` and its parent. Image sizes come from the images, so every image is opened.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from sarvlm.core.errors import InputError, NotFoundError
from sarvlm.core.record import SampleRecord
from sarvlm.data.importers.common import ImportContext

_CLASS_FILES = ("classes.txt", "obj.names", "data.yaml", "dataset.yaml")


def load_class_names(path: Path) -> list[str]:
    """Class names from classes.txt / obj.names (one per line) or a YOLO data.yaml."""
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: malformed YAML ({str(exc).splitlines()[0]})") from None
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict):
            try:
                return [str(names[k]) for k in sorted(names, key=int)]
            except ValueError:
                raise InputError(f"{path}: names: keys must be class numbers") from None
        if isinstance(names, list):
            return [str(n) for n in names]
        raise InputError(f"{path}: names: missing (expected a list or an id -> name mapping)")
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _find_classes(src: Path) -> Path:
    base = src if src.is_dir() else src.parent
    for folder in (base, base.parent):
        for name in _CLASS_FILES:
            if (folder / name).is_file():
                return folder / name
    raise InputError(f"{src}: no class list found (pass --classes classes.txt or data.yaml)")


def read_yolo(src: Path, ctx: ImportContext, classes: Path | None = None) -> Iterator[SampleRecord]:
    """Stream sample records from YOLO label files in name order."""
    names = load_class_names(classes or _find_classes(src))
    skip = {"classes.txt", "obj.names"}
    files = sorted(p for p in src.glob("*.txt") if p.name not in skip) if src.is_dir() else [src]
    if not files:
        raise InputError(f"{src}: no .txt label files")
    for path in files:
        where = str(path)
        image = ctx.find_image(path.stem, where)
        if image is None:
            continue
        info = ctx.image(str(image), where)
        if info is None:
            continue
        objs = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 5:
                raise InputError(f"{where}:{lineno}: expected 'class cx cy w h' (5 numbers), got {len(parts)} fields")
            try:
                cls = int(parts[0])
                cx, cy, w, h = (float(v) for v in parts[1:])
            except ValueError:
                raise InputError(f"{where}:{lineno}: expected an integer class and 4 numbers") from None
            if not 0 <= cls < len(names):
                raise InputError(f"{where}:{lineno}: class {cls} is not in the class list ({len(names)} classes)")
            if not all(math.isfinite(v) for v in (cx, cy, w, h)) or w < 0 or h < 0:
                raise InputError(f"{where}:{lineno}: box must be finite with non-negative size")
            W, H = info.width, info.height
            objs.append(
                {
                    "category": names[cls],
                    "bbox": [(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H],
                }
            )
        yield ctx.record(path.stem, info, where, objects=objs)
