"""A persistent row index of an examples JSONL: training start-up without parsing every example.

A training start-up needs, per row, only what decides whether the row is trained on: its task, its
sample id (priors), whether it has an answer, whether its ``<image>`` placeholders match its images,
and its token length (:mod:`sarvlm.training.length_cache`). Parsing and validating every row as an
:class:`~sarvlm.core.example.InstructionExample` to find them cost ≈ 0.15 ms per row, twice
(preflight and dataset), at every start-up: 30 s at 100k rows. The index keeps those fields:

    DATA_DIR/.sarvlm-cache/index/<split>-<content digest>.npz
        offsets, sizes   int64   byte range of row i (non-empty lines, in file order)
        task             int32   code into ``tasks``
        sample_id        unicode
        has_answer, placeholders_ok   bool

It is built by one full parse (the same validation and one-line errors as reading the file) the
first time a file's content is seen, and read with numpy afterwards; examples are parsed one at a
time when the data loader asks for them (:meth:`ExampleIndex.example`).

The content digest (BLAKE2b of the file's bytes) is itself kept in ``.sarvlm-cache/digests.json``
with the file's size, modification time (ns) and inode, and recomputed whenever one of those
changes: a warm start-up reads no more of the JSONL than its ``stat``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from sarvlm.core.atomic import atomic_open, atomic_path
from sarvlm.core.errors import SarvlmError
from sarvlm.core.example import IMAGE_PLACEHOLDER, InstructionExample
from sarvlm.core.jsonl import parse_record

CACHE_DIR = ".sarvlm-cache"
INDEX_VERSION = 1
DIGESTS_FILE = "digests.json"


def _full_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def content_digest(path: str | Path, cache_dir: str | Path | None = None) -> str:
    """BLAKE2b-128 (hex) of the file's bytes, remembered in ``cache_dir/digests.json`` against the
    file's size, mtime (ns) and inode: hashed again only when one of them changes."""
    path = Path(path)
    st = path.stat()
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
    memo_path = Path(cache_dir) / DIGESTS_FILE if cache_dir is not None else path.parent / CACHE_DIR / DIGESTS_FILE
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(path.name) if isinstance(memo, dict) else None
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("digest"), str):
        return entry["digest"]
    digest = _full_digest(path)
    memo = memo if isinstance(memo, dict) else {}
    memo[path.name] = {"stamp": stamp, "digest": digest}
    try:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(memo_path) as fh:
            json.dump(memo, fh, sort_keys=True)
    except (OSError, SarvlmError):
        pass  # a read-only dataset directory: hashed again next time
    return digest


class ExampleIndex:
    """Per-row fields of one examples JSONL (see the module docstring)."""

    def __init__(self, path: Path, digest: str, arrays: dict[str, np.ndarray], tasks: list[str]) -> None:
        self.path = path
        self.digest = digest
        self.offsets = arrays["offsets"]
        self.sizes = arrays["sizes"]
        self.task_codes = arrays["task"]
        self.sample_ids = arrays["sample_id"]
        self.has_answer = arrays["has_answer"]
        self.placeholders_ok = arrays["placeholders_ok"]
        self.tasks = tasks
        self.loaded = False  # read from disk (True) or built by parsing the file (False)

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    def example(self, row: int) -> InstructionExample:
        """Row ``row`` parsed and validated (one read of its bytes)."""
        with open(self.path, "rb") as fh:
            fh.seek(int(self.offsets[row]))
            line = fh.read(int(self.sizes[row]))
        return parse_record(line.decode("utf-8"), InstructionExample, where=f"{self.path}: row {row + 1}")

    @classmethod
    def load(cls, jsonl: str | Path, cache_dir: str | Path | None = None) -> ExampleIndex:
        """The index of ``jsonl``: read from ``cache_dir`` (default ``DATA_DIR/.sarvlm-cache``) when one
        exists for its content, otherwise built by parsing the file and stored (atomic write; kept
        in memory only when the directory is not writable)."""
        path = Path(jsonl)
        base = Path(cache_dir) if cache_dir is not None else path.parent / CACHE_DIR
        digest = content_digest(path, base)
        stored = base / "index" / f"{path.stem}-{digest[:16]}.npz"
        if stored.is_file():
            try:
                with np.load(stored, allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
                meta = json.loads(str(arrays.pop("meta")))
                if meta.get("version") == INDEX_VERSION and meta.get("digest") == digest:
                    index = cls(path, digest, arrays, list(meta["tasks"]))
                    index.loaded = True
                    return index
            except (OSError, ValueError, KeyError, TypeError):
                pass  # damaged: rebuilt below
        index = cls.build(path, digest)
        try:
            stored.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(stored, suffix=".npz") as tmp:
                meta = json.dumps({"version": INDEX_VERSION, "digest": digest, "tasks": index.tasks})
                np.savez(
                    tmp,
                    offsets=index.offsets,
                    sizes=index.sizes,
                    task=index.task_codes,
                    sample_id=index.sample_ids,
                    has_answer=index.has_answer,
                    placeholders_ok=index.placeholders_ok,
                    meta=np.array(meta),
                )
        except (OSError, SarvlmError):
            pass  # read-only dataset directory: the index lives in memory for this process
        return index

    @classmethod
    def build(cls, path: str | Path, digest: str = "") -> ExampleIndex:
        """The index of ``path`` by parsing every row (nothing read from or written to a cache)."""
        path = Path(path)
        offsets: list[int] = []
        sizes: list[int] = []
        codes: list[int] = []
        sample_ids: list[str] = []
        has_answer: list[bool] = []
        placeholders_ok: list[bool] = []
        tasks: dict[str, int] = {}
        offset = 0
        lineno = 0
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                size = len(raw)
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise SarvlmError(f"{path}:{lineno}: not UTF-8 text") from None
                if line.strip():
                    ex = parse_record(line, InstructionExample, where=f"{path}:{lineno}")
                    offsets.append(offset)
                    sizes.append(size)
                    codes.append(tasks.setdefault(ex.task, len(tasks)))
                    sample_ids.append(ex.sample_id)
                    has_answer.append(ex.reference is not None)
                    n = sum(m.content.count(IMAGE_PLACEHOLDER) for m in ex.messages)
                    placeholders_ok.append(n == len(ex.images))
                offset += size
        arrays: dict[str, Any] = {
            "offsets": np.asarray(offsets, dtype=np.int64),
            "sizes": np.asarray(sizes, dtype=np.int64),
            "task": np.asarray(codes, dtype=np.int32),
            "sample_id": np.asarray(sample_ids, dtype=str) if sample_ids else np.zeros(0, dtype="<U1"),
            "has_answer": np.asarray(has_answer, dtype=bool),
            "placeholders_ok": np.asarray(placeholders_ok, dtype=bool),
        }
        return cls(path, digest, arrays, list(tasks))

    def rows(self) -> list[tuple[str, str, bool]]:
        """``(task, sample_id, has_answer)`` of every row, in file order."""
        names = self.tasks
        return [
            (names[c], s, a)
            for c, s, a in zip(self.task_codes.tolist(), self.sample_ids.tolist(), self.has_answer.tolist())
        ]

    def task_counts(self) -> list[tuple[str, str, bool, int]]:
        """``(task, "", has_answer, rows)`` per task and answer state (array operations only)."""
        out = []
        n_tasks = len(self.tasks)
        for answered in (True, False):
            counts = np.bincount(self.task_codes[self.has_answer == answered], minlength=n_tasks)
            out += [(self.tasks[c], "", answered, int(counts[c])) for c in range(n_tasks) if counts[c]]
        return out
