"""Decoded-and-resized image cache: each training image is decoded and resized once per processor setting.

Every epoch, the data loader used to open each image again (PNG decode, or a GeoTIFF read with a
2–98 percentile stretch), convert it to RGB and resize it with the PIL image processor
(``smart_resize`` + bicubic) before rescaling, normalising and patchifying it. The resized pixels
depend only on the image file and on the processor's resize settings, so they are kept:

    DATA_DIR/.sarvlm-cache/images/<settings digest>/<ab>/<content digest>.npy    uint8 (3, H', W')

- keyed by the image file's **content** (BLAKE2b of its bytes; hashed once per file and process,
  again when its size or modification time changes) and by the **settings** that shape the resized
  pixels (image processor class and configuration, sarvlm's image loading rule): an edited image or
  a changed ``min_pixels``/``max_pixels``/patch size never reuses a stale array;
- the cached array is what the processor produces right before rescaling
  (:meth:`SarvlmProcessor.resize_image`); :meth:`SarvlmProcessor.image_inputs` then rescales,
  normalises and patchifies it with the same image processor (``do_resize=False``), so
  ``pixel_values`` and ``image_grid_thw`` are identical to the uncached path (tested);
- written atomically (temp + rename), so data-loader workers may fill it concurrently; a damaged
  entry is recomputed; a read-only dataset directory simply runs uncached.

Cost: 3 bytes per resized pixel on disk (a 448 × 448 image: 602 KB; 224 × 224: 151 KB), no memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sarvlm.core.atomic import atomic_path
from sarvlm.core.errors import SarvlmError

CACHE_DIR = ".sarvlm-cache"
# bump when sarvlm's image loading (sarvlm.models.processor.load_image) changes its pixels
LOADING_VERSION = 1


def resize_fingerprint(processor: Any) -> str:
    """A digest of everything that shapes the resized pixels of ``processor`` (hex)."""
    from sarvlm.models.processor import STRETCH_PERCENTILES

    ip = processor.image_processor
    config = {
        k: v
        for k, v in ip.to_dict().items()
        if k not in ("processor_class", "image_processor_type", "_processor_class")
    }
    parts = {
        "image_processor": [type(ip).__qualname__, config],
        "loading": [LOADING_VERSION, list(STRETCH_PERCENTILES)],
    }
    blob = json.dumps(parts, sort_keys=True, default=repr).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


class ImageArrayCache:
    """Resized uint8 arrays of image files for one processor (see the module docstring)."""

    def __init__(self, root: str | Path, processor: Any) -> None:
        self.processor = processor
        self.settings = resize_fingerprint(processor)[:16]
        self.root = Path(root) / self.settings
        self.factor = int(processor.image_processor.patch_size) * int(processor.image_processor.merge_size)
        self.hits = 0  # arrays read from disk in this process
        self.misses = 0  # arrays decoded and resized in this process
        self.persistent = True
        self._digests: dict[tuple[str, int, int], str] = {}

    @classmethod
    def for_dataset(cls, jsonl: str | Path, processor: Any) -> ImageArrayCache:
        """The cache of a dataset directory: ``DATA_DIR/.sarvlm-cache/images``."""
        return cls(Path(jsonl).parent / CACHE_DIR / "images", processor)

    def _digest(self, path: Path) -> str:
        st = path.stat()
        stamp = (str(path), st.st_size, st.st_mtime_ns)
        digest = self._digests.get(stamp)
        if digest is None:
            h = hashlib.blake2b(digest_size=16)
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
            digest = self._digests[stamp] = h.hexdigest()
        return digest

    def entry(self, path: str | Path) -> Path:
        """Where the array of the image file ``path`` is (or will be) stored."""
        digest = self._digest(Path(path))
        return self.root / digest[:2] / f"{digest}.npy"

    def resized(self, path: str | Path) -> np.ndarray:
        """``(3, H', W')`` uint8: the image at ``path`` decoded and resized by the processor."""
        path = Path(path)
        entry = self.entry(path)
        if entry.is_file():
            try:
                array = np.load(entry, allow_pickle=False)
            except (OSError, ValueError):
                array = None  # damaged: recomputed below
            if array is not None and self._valid(array):
                self.hits += 1
                return array
        array = self.processor.resize_image(self.processor.load_image(path))
        self.misses += 1
        if self.persistent:
            try:
                entry.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(entry, suffix=".npy") as tmp:
                    np.save(tmp, array, allow_pickle=False)
            except (OSError, SarvlmError):  # read-only dataset directory: run uncached
                self.persistent = False
        return array

    def _valid(self, array: np.ndarray) -> bool:
        return (
            array.dtype == np.uint8
            and array.ndim == 3
            and array.shape[0] == 3
            and array.shape[1] % self.factor == 0
            and array.shape[2] % self.factor == 0
        )

    def describe(self) -> str:
        where = str(self.root) if self.persistent else "off (dataset directory not writable)"
        return f"image cache {where}: {self.hits} read, {self.misses} decoded and resized"


def cache_size_bytes(root: str | Path) -> int:
    """Bytes held by an image cache directory (for reports and benchmarks)."""
    total = 0
    for dirpath, _, files in os.walk(root):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total
