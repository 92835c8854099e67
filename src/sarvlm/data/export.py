"""Export formats for instruction examples, and reading them back.

- ``sarvlm`` (default): :class:`~sarvlm.core.example.InstructionExample` as JSONL: ``id``, ``sample_id``,
  ``task``, ``messages``, ``images``, ``answer``, ``params``, ``coords``, ``width``, ``height``,
  ``georef``, ``year``, ``split`` (fields that are null are left out; ``params`` values are kept even
  when null). See docs/dataset-format.md.
- ``swift``: ms-swift / LLaMA-Factory ``{"messages": [{"role", "content"}], "images": [...]}`` with
  ``<image>`` placeholders in the content.
- ``llava``: LLaVA / ShareGPT ``{"id", "image", "conversations": [{"from": "human"|"gpt"|"system",
  "value"}]}`` (``image`` is a string for one image, a list for several).
- ``geochat``: the ``llava`` rows in GeoChat's grounding syntax: boxes (``--coords geochat``, 0–100) as
  ``{<x1><y1><x2><y2>|<θ>}`` with θ = 0 (axis-aligned boxes), and GeoChat's task tokens in front of
  the question: ``[refer]`` for detect (locate a category), ``[identify]`` for classify_box (name
  the object in a box); other tasks are plain VQA and get no token.

What each tool reads (written by :func:`write_tool_files` next to the JSONL splits):

- LLaVA and GeoChat: ``json.load`` of one JSON array per split (``LazySupervisedDataset``) →
  ``{split}.json`` (``--data_path``); the ``image`` paths are absolute, so any ``--image_folder``
  works (``os.path.join(folder, absolute)`` is the absolute path).
- ms-swift: ``{split}.jsonl``; it opens relative image paths from the *working directory*, not
  from the file, so the export writes absolute paths.
- ms-swift grounding (``swift_objects``, ``--swift-objects``): detect rows carry ms-swift's
  ``objects`` field (``{"ref": [], "bbox": [[x1, y1, x2, y2], ...]}`` in original pixels) and
  ``<bbox>`` placeholders in the answer, so ms-swift renders boxes in the model's convention.
- LLaMA-Factory: ``dataset_info.json`` in the dataset directory with one entry per split
  (``sarvlm_train`` …: ``file_name``, ``formatting: sharegpt``, ``columns`` messages/images, ``tags``
  role/content/user/assistant/system); use ``dataset_dir: DATA`` and ``dataset: sarvlm_train``.

:func:`read_export` reads any of the three back into ``InstructionExample`` objects (swift and llava
rows carry no task or structured answer: ``task`` is ``"imported"``), so an export re-imports with the
same messages and images.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sarvlm.core.errors import InputError, NotFoundError, SarvlmError
from sarvlm.core.example import InstructionExample, Message

FORMATS = ("sarvlm", "swift", "llava", "geochat")
# GeoChat's task tokens (GeoChat, Kuckreja et al. 2024, §3: "[grounding]", "[refer]", "[identify]")
GEOCHAT_TASK_TOKENS = {"detect": "[refer]", "classify_box": "[identify]"}
_BOX4 = re.compile(
    r"\[\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\]"
)
_BOX_LIST = re.compile(r"^\[\s*((?:\{<[^}]*\}\s*,?\s*)+)\]$")
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


def example_row(example: dict[str, Any], fmt: str, swift_objects: bool = False) -> str:
    """One JSONL line (no newline) of an example given as a dict in ``InstructionExample`` field order.

    ``sarvlm`` rows are byte-identical to ``InstructionExample(**example).to_json()``. With
    ``swift_objects``, ``swift`` rows of ``detect`` examples use ms-swift's grounding field (see
    :func:`swift_grounding`).
    """
    if fmt == "sarvlm":
        return _ENCODE({k: v for k, v in example.items() if v is not None})
    if fmt == "swift":
        row = {"messages": example["messages"], "images": example["images"]}
        if swift_objects and example.get("task") == "detect" and example.get("answer"):
            row = swift_grounding(row, example["answer"])
        return _ENCODE(row)
    if fmt in ("llava", "geochat"):
        images = example["images"]
        row = {"id": example["id"]}
        if images:
            row["image"] = images[0] if len(images) == 1 else images
        row["conversations"] = [{"from": _LLAVA_ROLE[m["role"]], "value": m["content"]} for m in example["messages"]]
        if fmt == "geochat":
            row["conversations"] = _geochat_turns(row["conversations"], example.get("task"))
        return _ENCODE(row)
    raise InputError(f"--format: unknown export format {fmt!r} (expected one of {', '.join(FORMATS)})")


def swift_grounding(row: dict[str, Any], boxes: list[list[float]]) -> dict[str, Any]:
    """ms-swift's grounding form of a detect row: the answer becomes one ``<bbox>`` per box and
    ``objects = {"ref": [], "bbox": [[x1, y1, x2, y2] in original pixels]}``; ms-swift writes the
    boxes in the trained model's own convention (its ``bbox_type: real`` input)."""
    messages = [dict(m) for m in row["messages"]]
    messages[-1]["content"] = ", ".join("<bbox>" for _ in boxes)
    return {**row, "messages": messages, "objects": {"ref": [], "bbox": [[float(v) for v in b] for b in boxes]}}


def geochat_boxes(text: str) -> str:
    """``[x1, y1, x2, y2]`` boxes (0–100) → GeoChat's ``{<x1><y1><x2><y2>|<0>}``; a list of boxes
    ``[[..], [..]]`` becomes the boxes side by side, as GeoChat writes several objects."""
    out = _BOX4.sub(lambda m: "{" + "".join(f"<{g}>" for g in m.groups()) + "|<0>}", text)
    return _BOX_LIST.sub(lambda m: re.sub(r"\}\s*,\s*\{", "}{", m.group(1).strip().rstrip(",")), out)


def _geochat_turns(turns: list[dict[str, str]], task: str | None) -> list[dict[str, str]]:
    out = [{"from": t["from"], "value": geochat_boxes(t["value"])} for t in turns]
    token = GEOCHAT_TASK_TOKENS.get(task or "")
    if token:
        for t in out:
            if t["from"] == "human":
                head, sep, rest = t["value"].rpartition("<image>\n")
                t["value"] = f"{head}{sep}{token} {rest}" if sep else f"{token} {t['value']}"
                break
    return out


def write_tool_files(out_dir: Path, fmt: str, splits: list[str]) -> list[str]:
    """Write what the named tool reads beside the ``{split}.jsonl`` files (see module docs);
    returns the file names written."""
    written = []
    if fmt in ("llava", "geochat"):
        for split in splits:
            src = out_dir / f"{split}.jsonl"
            with open(src, encoding="utf-8") as fh, open(out_dir / f"{split}.json", "w", encoding="utf-8") as out:
                out.write("[\n")
                first = True
                for line in fh:
                    if line.strip():
                        out.write(("" if first else ",\n") + line.rstrip("\n"))
                        first = False
                out.write("\n]\n")
            written.append(f"{split}.json")
    if fmt == "swift":
        info = {
            f"sarvlm_{split}": {
                "file_name": f"{split}.jsonl",
                "formatting": "sharegpt",
                "columns": {"messages": "messages", "images": "images"},
                "tags": {
                    "role_tag": "role",
                    "content_tag": "content",
                    "user_tag": "user",
                    "assistant_tag": "assistant",
                    "system_tag": "system",
                },
            }
            for split in splits
        }
        with open(out_dir / "dataset_info.json", "w", encoding="utf-8", newline="\n") as fh:
            json.dump(info, fh, indent=2)
            fh.write("\n")
        written.append("dataset_info.json")
    return written


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
        return "llava"  # geochat rows are llava rows
    raise InputError("row has none of the keys of a known format (task+sample_id, messages, conversations)")


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
                raise InputError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
            for i, row in enumerate(data):
                yield f"{path}: item {i}", row
            return
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None


def row_to_example(row: Any, where: str, fmt: str | None = None, index: int = 0) -> InstructionExample:
    """Parse one row of any export format into an ``InstructionExample``."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object")
    try:
        fmt = fmt or detect_format(row)
    except SarvlmError as exc:
        raise InputError(f"{where}: {exc}") from None
    try:
        if fmt == "sarvlm":
            return InstructionExample.model_validate(row)
        if fmt == "swift":
            images = row.get("images") or []
            images = [images] if isinstance(images, str) else list(images)
            rid = str(row.get("id", f"row{index}"))
            return InstructionExample(id=rid, sample_id=rid, task="imported", messages=row["messages"], images=images)
        conv = row["conversations"]
        msgs: list[Message] = []
        for turn in conv:
            role = ROLE_FROM_LLAVA.get(str(turn.get("from", "")).lower())
            if role is None:
                raise InputError(f"{where}: conversations: unknown speaker {turn.get('from')!r}")
            msgs.append(Message(role=role, content=turn.get("value", "")))
        image = row.get("image", row.get("images"))
        images = [] if image is None else [image] if isinstance(image, str) else list(image)
        rid = str(row.get("id", f"row{index}"))
        return InstructionExample(id=rid, sample_id=rid, task="imported", messages=msgs, images=images)
    except SarvlmError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: not a valid {fmt} row ({str(exc).splitlines()[0]})") from None


def read_export(path: str | Path, fmt: str | None = None) -> Iterator[InstructionExample]:
    """Read an exported file (any of :data:`FORMATS`, detected per row when ``fmt`` is None)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    for i, (where, row) in enumerate(iter_rows(path)):
        yield row_to_example(row, where, fmt, i)
