"""Export formats for instruction examples, and reading them back.

- ``sarvlm`` (default): :class:`~sarvlm.data.example.InstructionExample` as JSONL: ``id``, ``sample_id``,
  ``task``, ``messages``, ``images``, ``answer``, ``params``, ``coords``, ``width``, ``height``,
  ``georef``, ``year``, ``split`` (fields that are null are left out; ``params`` values are kept even
  when null). See docs/dataset-format.md.
- ``swift``: ms-swift / LLaMA-Factory ``{"messages": [{"role", "content"}], "images": [...]}`` with
  ``<image>`` placeholders in the content.
- ``llava``: LLaVA / ShareGPT ``{"id", "image", "conversations": [{"from": "human"|"gpt"|"system",
  "value"}]}`` (``image`` is a string for one image, a list for several).

:func:`read_export` reads any of the three back into ``InstructionExample`` objects (swift and llava
rows carry no task or structured answer: ``task`` is ``"imported"``), so an export re-imports with the
same messages and images.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sarvlm.data.example import InstructionExample
from sarvlm.errors import SarvlmError

FORMATS = ("sarvlm", "swift", "llava")
_LLAVA_ROLE = {"user": "human", "assistant": "gpt", "system": "system"}
ROLE_FROM_LLAVA = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "bot": "assistant",
                    "model": "assistant", "system": "system"}


def example_row(example: dict[str, Any], fmt: str) -> str:
    """One JSONL line (no newline) of an example given as a dict in ``InstructionExample`` field order."""
    if fmt == "sarvlm":
        return json.dumps({k: v for k, v in example.items() if v is not None}, ensure_ascii=False)
    if fmt == "swift":
        return json.dumps({"messages": example["messages"], "images": example["images"]}, ensure_ascii=False)
    if fmt == "llava":
        images = example["images"]
        row: dict[str, Any] = {"id": example["id"]}
        if images:
            row["image"] = images[0] if len(images) == 1 else images
        row["conversations"] = [{"from": _LLAVA_ROLE[m["role"]], "value": m["content"]} for m in example["messages"]]
        return json.dumps(row, ensure_ascii=False)
    raise SarvlmError(f"--format: unknown export format {fmt!r} (expected one of {', '.join(FORMATS)})")


def detect_format(row: dict[str, Any]) -> str:
    """Which export format a parsed row is in."""
    if "task" in row and "sample_id" in row:
        return "sarvlm"
    if "messages" in row:
        return "swift"
    if "conversations" in row:
        return "llava"
    raise SarvlmError("row has none of the keys of a known format (task+sample_id, messages, conversations)")


def iter_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) for a JSONL file or a JSON array file."""
    with open(path, encoding="utf-8") as fh:
        head = fh.read(1)
        while head and head.isspace():
            head = fh.read(1)
        fh.seek(0)
        if head == "[":
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise SarvlmError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
            for i, row in enumerate(data):
                yield f"{path}: item {i}", row
            return
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise SarvlmError(f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None


def row_to_example(row: Any, where: str, fmt: str | None = None, index: int = 0) -> InstructionExample:
    """Parse one row of any export format into an ``InstructionExample``."""
    if not isinstance(row, dict):
        raise SarvlmError(f"{where}: expected a JSON object")
    try:
        fmt = fmt or detect_format(row)
    except SarvlmError as exc:
        raise SarvlmError(f"{where}: {exc}") from None
    try:
        if fmt == "sarvlm":
            return InstructionExample.model_validate(row)
        if fmt == "swift":
            images = row.get("images") or []
            images = [images] if isinstance(images, str) else list(images)
            rid = str(row.get("id", f"row{index}"))
            return InstructionExample(id=rid, sample_id=rid, task="imported", messages=row["messages"], images=images)
        conv = row["conversations"]
        msgs = []
        for turn in conv:
            role = ROLE_FROM_LLAVA.get(str(turn.get("from", "")).lower())
            if role is None:
                raise SarvlmError(f"{where}: conversations: unknown speaker {turn.get('from')!r}")
            msgs.append({"role": role, "content": turn.get("value", "")})
        image = row.get("image", row.get("images"))
        images = [] if image is None else [image] if isinstance(image, str) else list(image)
        rid = str(row.get("id", f"row{index}"))
        return InstructionExample(id=rid, sample_id=rid, task="imported", messages=msgs, images=images)
    except SarvlmError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise SarvlmError(f"{where}: not a valid {fmt} row ({str(exc).splitlines()[0]})") from None


def read_export(path: str | Path, fmt: str | None = None) -> Iterator[InstructionExample]:
    """Read an exported file (any of :data:`FORMATS`, detected per row when ``fmt`` is None)."""
    path = Path(path)
    if not path.is_file():
        raise SarvlmError(f"{path}: no such file")
    for i, (where, row) in enumerate(iter_rows(path)):
        yield row_to_example(row, where, fmt, i)
