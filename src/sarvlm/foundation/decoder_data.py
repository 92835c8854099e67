"""Training / test items for the KLIP decoder tasks: captioning and VQA (paper 004, Table 5, Fig. 13).

Two kinds of input file are read (the kind is told by the rows):

- instruction examples written by ``sarvlm build`` (``InstructionExample`` rows: ``messages``,
  ``images``): ``caption`` examples for captioning; for VQA the six FUSAR-KLIP question types
  :data:`KLIP_VQA_TASKS` (Target Count, Target Rec, Target Pos, Main / All / Regional Land) or the
  tasks named by ``tasks``. The question is the last user turn without ``<image>``; the answer the
  last assistant turn. Image paths are resolved and confined like training does
  (:func:`sarvlm.data.example_root.example_image_root`).
- sample records (captioning only): the caption of style ``text_field`` (default: each record's
  first caption) is the target; the record id is the item id.

For captions, ``text_field`` also selects caption examples by their ``params.style`` (``structured``,
``template``, ``concise``, ...): the decoder is not told which style a prompt asks for, so one style per
run keeps the target unambiguous.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sarvlm.core.errors import InputError, NotFoundError

TASKS = ("caption", "vqa")
# FUSAR-KLIP's six VQA types (Table 6 columns) as sarvlm registry tasks, in the paper's column order.
KLIP_VQA_TASKS = ("count", "classify_box", "position", "landform_main", "landform_all", "landform_region")


@dataclass
class DecoderItem:
    """One image with its question (VQA; ``None`` for captions) and target text (``None`` when unknown)."""

    id: str
    task: str  # the registry task of the row (``caption``, ``count``, ...)
    image: Path
    question: str | None
    answer: str | None


def _first_row(path: Path) -> dict | None:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}: first row is not JSON ({exc.msg})") from None
                return row if isinstance(row, dict) else None
    return None


def _from_examples(
    path: Path, task: str, tasks: tuple[str, ...], need_answer: bool, style: str | None = None
) -> list[DecoderItem]:
    from sarvlm.core.example import IMAGE_PLACEHOLDER, read_examples
    from sarvlm.core.paths import resolve_in_root
    from sarvlm.data.example_root import example_image_root

    root, allow_outside = example_image_root(path)
    items, other = [], set()
    for ex in read_examples(path):
        if ex.task not in tasks:
            other.add(ex.task)
            continue
        if style is not None and ex.params.get("style") != style:
            other.add(f"{ex.task} (style {ex.params.get('style')})")
            continue
        where = f"{path}: {ex.id}"
        if len(ex.images) != 1:
            raise InputError(f"{where}: images: the KLIP decoder takes one image per example, got {len(ex.images)}")
        image = resolve_in_root(
            root, ex.images[0], allow_outside=allow_outside, what=f"{where}: images", base=path.parent
        )
        user = [m.content for m in ex.prompt_messages if m.role == "user"]
        question = user[-1].replace(IMAGE_PLACEHOLDER, "").strip() if user else ""
        if task == "vqa" and not question:
            raise InputError(f"{where}: messages: no question (a user turn) for VQA")
        answer = ex.reference
        if need_answer and not (answer or "").strip():
            raise InputError(f"{where}: messages: no answer (a final assistant turn) to train on")
        items.append(DecoderItem(ex.id, ex.task, image, question if task == "vqa" else None, answer))
    if not items:
        seen = ", ".join(sorted(other)) or "none"
        raise InputError(
            f"{path}: no {task} examples (tasks {', '.join(tasks)}; the file has: {seen}); "
            f"build them with `sarvlm build --tasks {','.join(tasks)}`"
        )
    return items


def _from_records(path: Path, text_field: str | None, need_answer: bool) -> list[DecoderItem]:
    from sarvlm.core.record import read_samples

    items = []
    for rec in read_samples(path):
        caps = [c for c in rec.captions if text_field is None or c.style == text_field]
        if not caps and need_answer:
            styles = sorted({c.style for c in rec.captions})
            if not styles:
                raise InputError(f"record {rec.id!r}: no caption (caption fine-tuning needs one on every record)")
            raise InputError(
                f"record {rec.id!r}: no caption with style {text_field!r} (it has: {', '.join(styles)}); "
                "choose one with --text-field"
            )
        answer = caps[0].text if caps else None
        items.append(DecoderItem(rec.id, "caption", rec.image_path(path.parent), None, answer))
    return items


def load_decoder_items(
    path: str | Path,
    task: str,
    *,
    tasks: list[str] | None = None,
    text_field: str | None = None,
    need_answer: bool = True,
) -> list[DecoderItem]:
    """Items of ``task`` (``caption`` or ``vqa``) from instruction examples or (captions) sample records."""
    path = Path(path)
    if task not in TASKS:
        raise InputError(f"--task: unknown decoder task {task!r} (expected caption or vqa)")
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    first = _first_row(path)
    if first is None:
        raise InputError(f"{path}: no rows (empty file)")
    if "messages" in first:
        wanted = tuple(tasks) if tasks else (("caption",) if task == "caption" else KLIP_VQA_TASKS)
        items = _from_examples(path, task, wanted, need_answer, text_field if task == "caption" else None)
    elif "captions" in first or "image" in first:
        if task != "caption":
            raise InputError(
                f"{path}: sample records carry no questions; build VQA examples with "
                f"`sarvlm build --tasks {','.join(KLIP_VQA_TASKS)}` and train on those"
            )
        items = _from_records(path, text_field, need_answer)
    else:
        raise InputError(f"{path}: rows are neither instruction examples (messages) nor sample records (image)")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"{path}: id {dup!r} appears more than once")
    for it in items:
        if not it.image.is_file():
            raise NotFoundError(f"{path}: {it.id}: image {it.image}: no such file")
    return items
