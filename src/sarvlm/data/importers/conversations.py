"""Shared by the LLaVA and ms-swift importers: chat rows grouped by image into sample records.

Rows that show the same image(s) become one record holding one ``Dialogue`` per row, in file order.
The ``<image>`` placeholders are removed from the stored turns (the builder puts one back in the
first user turn). A second image is kept as the record's ``optical`` image (paired SAR + optical, as in
LunarOS-Mini); rows with more images are rejected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sarvlm.core.errors import InputError
from sarvlm.core.example import IMAGE_PLACEHOLDER
from sarvlm.core.record import SampleRecord, parse_sample
from sarvlm.data.importers.common import ImportContext, record_id


def strip_placeholder(text: str) -> str:
    return text.replace(IMAGE_PLACEHOLDER + "\n", "").replace(IMAGE_PLACEHOLDER, "").strip()


def records_from_chats(rows: Iterable[tuple[str, list[str], list[dict]]], ctx: ImportContext) -> Iterator[SampleRecord]:
    """``(where, images, turns)`` rows -> records, one per distinct image list, in first-seen order."""
    groups: dict[tuple[str, ...], dict] = {}
    for where, images, turns in rows:
        if not images:
            ctx.counts["rows_without_image"] += 1
            continue
        if len(images) > 2:
            raise InputError(
                f"{where}: images: {len(images)} images; sarvlm records hold one SAR image (+ one optical image)"
            )
        key = tuple(images)
        if key not in groups:
            info = ctx.image(images[0], where)
            if info is None:
                continue
            rec: dict[str, Any] = {
                "id": record_id(ctx.source, images[0]),
                "image": info.rel,
                "width": info.width,
                "height": info.height,
                "dialogues": [],
                "split": ctx.split,
                "source": ctx.source,
            }
            if len(images) == 2:
                opt = ctx.image(images[1], where)
                if opt is None:
                    continue
                rec["optical"] = opt.rel
            if info.georef is not None:
                rec["georef"] = info.georef.model_dump(mode="json", exclude_none=True)
            groups[key] = rec
        clean = [
            {"role": t["role"], "content": strip_placeholder(t["content"]) if t["role"] == "user" else t["content"]}
            for t in turns
        ]
        if not any(t["role"] == "assistant" for t in clean):
            raise InputError(f"{where}: conversation has no assistant turn")
        groups[key]["dialogues"].append({"turns": clean})
    for rec in groups.values():
        ctx.counts["records"] += 1
        ctx.counts["dialogues"] += len(rec["dialogues"])
        yield parse_sample({k: v for k, v in rec.items() if v is not None}, rec["id"])
