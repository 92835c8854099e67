"""The reply cache of annotation runs: one JSON file per request, kept for audit, reused on every rerun.

Key = sha256 of (prompt id + version, endpoint kind, model, image hashes, digest of the facts the
prompt uses, generation parameters). A changed prompt version, model, image or annotation is asked
again; anything else is answered from the cache, so a rerun costs nothing and an interrupted run
resumes where it stopped. Each entry keeps the raw reply text exactly as received, the token usage,
the finish reason, when and how long it took, and the request's text messages (images replaced by
their hashes), so every caption can be traced back to what the model was asked and what it said.
Entries are written atomically as each reply arrives; a damaged entry is ignored (asked again).
Only successful replies are cached: failures are asked again on the next run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sarvlm.core.atomic import atomic_open


def cache_key(parts: dict[str, Any]) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ReplyCache:
    """Replies on disk under ``root/<key[:2]>/<key>.json`` (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        p = self.path(key)
        try:
            entry = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and isinstance(entry.get("reply"), str) else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        with atomic_open(self.path(key)) as fh:
            json.dump(entry, fh, ensure_ascii=False, sort_keys=True, indent=1)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0
