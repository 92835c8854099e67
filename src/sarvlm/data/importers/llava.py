"""LLaVA / ShareGPT conversation files -> sample records with dialogues.

A JSON array (or JSONL) of ``{"id", "image": str | [str, ...], "conversations": [{"from", "value"}]}``;
speakers ``human``/``user`` -> user, ``gpt``/``assistant`` -> assistant, ``system`` -> system.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sarvlm.core.errors import InputError, NotFoundError
from sarvlm.core.record import SampleRecord
from sarvlm.data.export import ROLE_FROM_LLAVA, iter_rows
from sarvlm.data.importers.common import ImportContext
from sarvlm.data.importers.conversations import records_from_chats


def _chats(src: Path) -> Iterator[tuple[str, list[str], list[dict]]]:
    for where, row in iter_rows(src):
        if not isinstance(row, dict) or not isinstance(row.get("conversations"), list):
            raise InputError(f"{where}: conversations: missing (expected a list of {{from, value}})")
        image = row.get("image", row.get("images"))
        images = [] if image is None else [image] if isinstance(image, str) else [str(i) for i in image]
        turns = []
        for k, t in enumerate(row["conversations"]):
            role = ROLE_FROM_LLAVA.get(str(t.get("from", "")).lower()) if isinstance(t, dict) else None
            if role is None or not isinstance(t.get("value"), str):
                raise InputError(f"{where}: conversations[{k}]: needs 'from' (human/gpt/system) and a text 'value'")
            turns.append({"role": role, "content": t["value"]})
        yield where, images, turns


def read_llava(src: Path, ctx: ImportContext) -> Iterator[SampleRecord]:
    """Stream sample records from a LLaVA/ShareGPT file."""
    if not src.is_file():
        raise NotFoundError(f"{src}: no such file")
    return records_from_chats(_chats(src), ctx)
