"""Export formats for instruction examples, and reading them back.

- ``sarvlm`` (default): :class:`~sarvlm.core.example.InstructionExample` as JSONL: ``id``, ``sample_id``,
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

from sarvlm.core.errors import SarvlmError
from sarvlm.core.example import InstructionExample

FORMATS = ("sarvlm", "swift", "llava")
_LLAVA_ROLE = {"user": "human", "assistant": "gpt", "system": "system"}
ROLE_FROM_LLAVA = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "system": "system",
}


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, reused (json.dumps builds one per call)
_STR = json.encoder.encode_basestring  # a str as JSON with ensure_ascii=False (C speed)


def example_row(example: dict[str, Any], fmt: str) -> str:
    """One JSONL line (no newline) of an example given as a dict in ``InstructionExample`` field order.

    ``sarvlm`` rows are byte-identical to ``InstructionExample(**example).to_json()``.
    """
    if fmt == "sarvlm":
        return _ENCODE({k: v for k, v in example.items() if v is not None})
    if fmt == "swift":
        return _ENCODE({"messages": example["messages"], "images": example["images"]})
    if fmt == "llava":
        images = example["images"]
        row: dict[str, Any] = {"id": example["id"]}
        if images:
            row["image"] = images[0] if len(images) == 1 else images
        row["conversations"] = [{"from": _LLAVA_ROLE[m["role"]], "value": m["content"]} for m in example["messages"]]
        return _ENCODE(row)
    raise SarvlmError(f"--format: unknown export format {fmt!r} (expected one of {', '.join(FORMATS)})")


class SarvlmRowWriter:
    """Fast ``sarvlm`` rows for the builder: the fields shared by all examples of a sample (images,
    coords, size, georef, year, split) are encoded once per sample. Output is byte-identical to
    :func:`example_row` (and so to ``InstructionExample.to_json``)."""

    def __init__(self) -> None:
        self._images = ""
        self._tail = ""

    def set_sample(
        self,
        images: list[str],
        coords: str | None,
        width: int | None,
        height: int | None,
        georef: Any,
        year: int | None,
        split: str | None,
    ) -> None:
        self._images = _ENCODE(images)
        tail = {"coords": coords, "width": width, "height": height, "georef": georef, "year": year, "split": split}
        self._tail = "".join(f", {_ENCODE(k)}: {_ENCODE(v)}" for k, v in tail.items() if v is not None)

    def row(
        self, eid: str, sample_id: str, task: str, messages: list[tuple[str, str]], answer: Any, params: dict[str, Any]
    ) -> str:
        """One line; ``messages`` as (role, content) pairs."""
        msgs = ", ".join(f'{{"role": {_STR(r)}, "content": {_STR(c)}}}' for r, c in messages)
        head = (
            f'{{"id": {_STR(eid)}, "sample_id": {_STR(sample_id)}, "task": {_STR(task)}, '
            f'"messages": [{msgs}], "images": {self._images}'
        )
        ans = "" if answer is None else f', "answer": {_ENCODE(answer)}'
        return f'{head}{ans}, "params": {_ENCODE(params)}{self._tail}}}'


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
