"""What every importer shares: locating and checking images, naming records, counting skips."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import GeoRef, SampleRecord, parse_sample

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass
class ImageInfo:
    """An image found on disk: its path relative to the output JSONL, size and georeference."""

    rel: str
    width: int
    height: int
    georef: GeoRef | None


@dataclass
class ImportContext:
    """Options and running counts of one import."""

    images_dir: Path
    out_path: Path  # the samples JSONL being written (image paths are relative to its directory)
    source: str | None = None
    split: str | None = None  # split given on the command line (overrides what the format says)
    skip_missing: bool = False
    check_images: bool = True  # open every image (readable, size matches); off: existence only
    counts: Counter = field(default_factory=Counter)
    _size_cache: dict[str, ImageInfo | None] = field(default_factory=dict)

    def image(self, name: str, who: str, width: int | None = None, height: int | None = None) -> ImageInfo | None:
        """Find and check an image named by an annotation file.

        Returns None when the image is missing and ``skip_missing`` is set (counted as
        ``missing_image``); raises :class:`SarvlmError` naming ``who`` otherwise. Sizes given by the
        annotations must match the file.
        """
        path = Path(name)
        full = path if path.is_absolute() else self.images_dir / path
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
            raise SarvlmError(
                f"{who}: image {full} is {info.width}x{info.height} but the annotations say {int(width)}x{int(height)}"
            )
        return info

    def _probe(self, full: Path, who: str) -> ImageInfo | None:
        if not full.exists():
            if self.skip_missing:
                self.counts["missing_image"] += 1
                return None
            raise SarvlmError(f"{who}: image {full}: no such file (use --skip-missing to skip it)")
        rel = os.path.relpath(full.resolve(), self.out_path.resolve().parent).replace(os.sep, "/")
        if not self.check_images:
            width, height = _header_size(full)
            return ImageInfo(rel, width, height, None)
        from sarvlm.io.raster import raster_info

        try:
            info = raster_info(full)
        except SarvlmError as exc:
            raise SarvlmError(f"{who}: {exc}") from None
        return ImageInfo(rel, info.width, info.height, info.georef)

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
        self.counts["records"] += 1
        if "objects" in fields:
            self.counts["objects"] += len(fields["objects"])
        return parse_sample({k: v for k, v in rec.items() if v is not None}, who)

    def find_image(self, stem: str, who: str) -> Path | None:
        """An image in ``images_dir`` with this stem and a usual suffix (for DOTA/YOLO/VOC layouts)."""
        for suffix in IMAGE_SUFFIXES:
            for cand in (self.images_dir / f"{stem}{suffix}", self.images_dir / f"{stem}{suffix.upper()}"):
                if cand.exists():
                    return cand
        if self.skip_missing:
            self.counts["missing_image"] += 1
            return None
        raise SarvlmError(
            f"{who}: no image named {stem}.* ({', '.join(IMAGE_SUFFIXES)}) in {self.images_dir} "
            f"(use --skip-missing to skip it)"
        )


def _header_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise SarvlmError(f"{path}: unreadable image ({exc})") from None


def load_json(path: Path) -> Any:
    """A JSON file, with errors naming the file and line."""
    if not path.is_file():
        raise SarvlmError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise SarvlmError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    except UnicodeDecodeError:
        raise SarvlmError(f"{path}: not UTF-8 text") from None


def record_id(prefix: str | None, name: str) -> str:
    """A record id from an image name (``prefix/stem``), stable across runs."""
    stem = Path(name).with_suffix("").as_posix()
    return f"{prefix}/{stem}" if prefix else stem
