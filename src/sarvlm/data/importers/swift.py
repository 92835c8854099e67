"""ms-swift / LLaMA-Factory ``messages`` JSONL -> sample records with dialogues.

Each line: ``{"messages": [{"role": "system"|"user"|"assistant", "content"}], "images": [...]}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sarvlm.core.errors import InputError, NotFoundError
from sarvlm.core.record import SampleRecord
from sarvlm.data.export import iter_rows
from sarvlm.data.importers.common import ImportContext
from sarvlm.data.importers.conversations import records_from_chats

_ROLES = ("system", "user", "assistant")


def _chats(src: Path) -> Iterator[tuple[str, list[str], list[dict]]]:
    for where, row in iter_rows(src):
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
            raise InputError(f"{where}: messages: missing (expected a list of {{role, content}})")
        images = row.get("images") or []
        images = [images] if isinstance(images, str) else [str(i) for i in images]
        turns = []
        for k, m in enumerate(row["messages"]):
            if not isinstance(m, dict) or m.get("role") not in _ROLES or not isinstance(m.get("content"), str):
                raise InputError(f"{where}: messages[{k}]: needs role (system/user/assistant) and a text content")
            turns.append({"role": m["role"], "content": m["content"]})
        yield where, images, turns


def read_swift(src: Path, ctx: ImportContext) -> Iterator[SampleRecord]:
    """Stream sample records from an ms-swift / LLaMA-Factory JSONL file."""
    if not src.is_file():
        raise NotFoundError(f"{src}: no such file")
    return records_from_chats(_chats(src), ctx)
