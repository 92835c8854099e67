"""Persistent token-length cache: a training start-up reads lengths instead of encoding every example.

:class:`SftDataset` drops examples longer than ``max_length`` tokens (image tokens included). Finding
them means running the processor (tokenizer + image patchifier) over every example — about 30 s for
8,500 examples, hours at SARLANG-1M scale, once per process, stage and ablation run. The lengths
depend only on the examples file and on the processor, so they are computed once and stored:

    DATA_DIR/.sarvlm-cache/lengths/<split>-<key>.npy     int32, one entry per row of <split>.jsonl

``key`` is a digest of the JSONL's **content** (BLAKE2b over its bytes, so a rebuilt or edited file
never reuses stale lengths, while a copied or touched one does) and of the **processor settings**
(sarvlm settings, image processor configuration, tokenizer class, vocabulary size and chat
template). Entry ``i`` is the token count of row ``i``, or ``-1`` when that row was never encoded
(rows of tasks no stage trained yet); later runs fill the missing entries and rewrite the file
atomically. Images are assumed unchanged while the JSONL is unchanged (``sarvlm build`` writes new
JSONL when its images change); delete ``.sarvlm-cache`` after editing images in place.

A start-up then costs no processor call, and with the row index of
:mod:`sarvlm.training.example_index` no parse of the JSONL either (its content digest is remembered
against the file's size, mtime and inode): O(1) in dataset size apart from loading two numpy arrays. When the dataset directory is not
writable the cache lives only in memory for that dataset object.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from sarvlm.core.atomic import atomic_path
from sarvlm.core.errors import SarvlmError

CACHE_DIR = ".sarvlm-cache"
UNKNOWN = -1


def file_digest(path: str | Path, chunk: int = 1 << 22) -> str:
    """BLAKE2b-128 of a file's bytes (hex)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def processor_fingerprint(processor: Any) -> str:
    """A digest of everything in ``processor`` that changes token counts (hex)."""
    settings = getattr(processor, "settings", None)
    image_processor = getattr(processor, "image_processor", None)
    tokenizer = getattr(processor, "tokenizer", None)
    image_cfg: Any = None
    if image_processor is not None and hasattr(image_processor, "to_dict"):
        image_cfg = {
            k: v
            for k, v in image_processor.to_dict().items()
            if k not in ("processor_class", "image_processor_type", "_processor_class")
        }
    parts = {
        "processor": type(processor).__qualname__,
        "settings": settings.to_json() if hasattr(settings, "to_json") else repr(settings),
        "image_processor": [type(image_processor).__qualname__, image_cfg],
        "tokenizer": [
            type(tokenizer).__qualname__,
            len(tokenizer) if tokenizer is not None else None,
            getattr(tokenizer, "chat_template", None),
        ],
    }
    blob = json.dumps(parts, sort_keys=True, default=repr).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


class LengthCache:
    """Token lengths of the rows of one examples JSONL under one processor.

    ``lengths[i]`` is the token count of row ``i`` (non-empty lines, in file order) or
    :data:`UNKNOWN`. :meth:`save` writes the array when new entries were filled.
    """

    def __init__(
        self,
        jsonl: str | Path,
        processor: Any,
        n_rows: int,
        cache_dir: str | Path | None = None,
        digest: str | None = None,
    ) -> None:
        self.jsonl = Path(jsonl)
        # ``digest``: the JSONL's content digest when the caller already has it (the example index)
        digest = digest or file_digest(self.jsonl)
        self.key = f"{digest[:16]}-{processor_fingerprint(processor)[:16]}"
        base = Path(cache_dir) if cache_dir is not None else self.jsonl.parent / CACHE_DIR / "lengths"
        self.path = base / f"{self.jsonl.stem}-{self.key}.npy"
        self.lengths = np.full(n_rows, UNKNOWN, dtype=np.int32)
        self.loaded = 0  # entries read from disk
        self.computed = 0  # entries filled in this process
        self._unsaved = False
        self.persistent = True
        if self.path.is_file():
            try:
                stored = np.load(self.path, allow_pickle=False)
            except (OSError, ValueError):
                stored = None  # a damaged cache file is recomputed
            if stored is not None and stored.shape == (n_rows,):
                self.lengths = stored.astype(np.int32, copy=True)
                self.loaded = int((self.lengths != UNKNOWN).sum())

    def get(self, row: int) -> int | None:
        value = int(self.lengths[row])
        return None if value == UNKNOWN else value

    def put(self, row: int, length: int) -> None:
        self.lengths[row] = length
        self.computed += 1
        self._unsaved = True

    def save(self) -> bool:
        """Write the cache if this process filled entries; False when the directory is not writable."""
        if not self._unsaved or not self.persistent:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path, suffix=".npy") as tmp:
                np.save(tmp, self.lengths, allow_pickle=False)
        except (OSError, SarvlmError):  # a read-only dataset directory: keep the lengths in memory
            self.persistent = False
            return False
        self._unsaved = False
        return True

    def describe(self) -> str:
        where = str(self.path) if self.persistent else "memory only (dataset directory not writable)"
        return f"length cache {where}: {self.loaded} read, {self.computed} computed"
