"""SARLANG-1M text files -> sample records with captions or QA pairs.

``SRC`` is one file or a folder of them (``*.csv`` and ``*.json``), e.g. ``Caption-training.csv``,
``Caption_test.csv`` (complex captions), ``Caption_test1.csv`` (concise captions),
``SARVQA1_train.csv`` ... The dataset ships each file as CSV and JSON; both are read.

Columns are found by name when the first row is a header (case-insensitive: image ``image``,
``image_name``, ``image_id``, ``filename``, ``img``; caption ``caption``, ``text``, ``description``;
question ``question``; answer ``answer``, ``gt``, ``ground_truth``; type ``type``, ``question_type``),
otherwise by position: captions ``image, caption``; VQA ``image, question, answer[, type]``. A file is
a VQA file when it has a question column (or 3+ columns without header and "vqa" in its name).

Caption style: ``Caption_test1`` files are concise, ``Caption_test`` files complex; in the mixed
training file a caption of one sentence and at most 30 words is taken as concise, any other as
complex (the dataset does not label them). Split: ``train`` or ``test`` from the file name unless
``--split`` is given. Rows of the same image (across files) become one record.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from sarvlm.core.errors import InputError, NotFoundError
from sarvlm.core.record import SampleRecord, parse_sample
from sarvlm.data.importers.common import ImportContext, load_json, record_id

_COLUMNS = {
    "image": ("image", "image_name", "image_id", "imagename", "filename", "file_name", "img", "image_path"),
    "caption": ("caption", "captions", "text", "description", "sentence"),
    "question": ("question", "query"),
    "answer": ("answer", "gt", "ground_truth", "label"),
    "type": ("type", "question_type", "qtype", "category"),
}
_SENTENCE_END = re.compile(r"[.!?](\s|$)")


def caption_style(text: str, file_name: str) -> str:
    """concise or complex, from the file name or (training file) the caption's shape."""
    low = file_name.lower()
    if "test1" in low:
        return "concise"
    if "test" in low:
        return "complex"
    one_sentence = len(_SENTENCE_END.findall(text.strip())) <= 1
    return "concise" if one_sentence and len(text.split()) <= 30 else "complex"


def split_from_name(file_name: str) -> str | None:
    low = file_name.lower()
    if "train" in low:
        return "train"
    if "test" in low:
        return "test"
    if "val" in low:
        return "val"
    return None


def _header_map(row: list[str]) -> dict[str, int] | None:
    low = [c.strip().lower() for c in row]
    found = {}
    for field, names in _COLUMNS.items():
        for i, c in enumerate(low):
            if c in names and field not in found:
                found[field] = i
    return found if "image" in found and ("caption" in found or "question" in found) else None


def _rows(path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(where, {image, caption | question, answer[, type]}) for one CSV or JSON file."""
    vqa_name = "vqa" in path.name.lower()
    if path.suffix.lower() == ".json":
        data = load_json(path)
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                raise InputError(f"{path}: item {i}: expected an object")
            item_hdr = _header_map(list(item))
            if item_hdr is None:
                raise InputError(f"{path}: item {i}: needs an image field and a caption or question field")
            keys = list(item)
            yield f"{path}: item {i}", {f: str(item[keys[j]]) for f, j in item_hdr.items() if item[keys[j]] is not None}
        return
    try:
        fh = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    with fh:
        reader = csv.reader(fh)
        hdr = None
        for lineno, row in enumerate(reader, 1):
            if not row or not any(c.strip() for c in row):
                continue
            if lineno == 1:
                hdr = _header_map(row)
                if hdr is not None:
                    continue
                n = len(row)
                hdr = (
                    {"image": 0, "question": 1, "answer": 2, **({"type": 3} if n > 3 else {})}
                    if vqa_name or n >= 3
                    else {"image": 0, "caption": 1}
                )
            assert hdr is not None  # set from the first non-empty row
            if max(hdr.values()) >= len(row):
                raise InputError(f"{path}:{lineno}: expected at least {max(hdr.values()) + 1} columns, got {len(row)}")
            yield f"{path}:{lineno}", {f: row[j] for f, j in hdr.items()}


def read_sarlang(src: Path, ctx: ImportContext) -> Iterator[SampleRecord]:
    """Sample records (one per image, first-seen order) from SARLANG-1M caption/VQA files."""
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".csv", ".json"))
        if not files:
            raise InputError(f"{src}: no .csv or .json files")
    elif src.is_file():
        files = [src]
    else:
        raise NotFoundError(f"{src}: no such file or folder")
    records: dict[str, dict] = {}
    source = ctx.source or "SARLANG-1M"
    for path in files:
        split = ctx.split or split_from_name(path.name)
        for where, row in _rows(path):
            name = row.get("image", "").strip()
            if not name:
                raise InputError(f"{where}: image: empty")
            rec = records.get(name)
            if rec is None:
                info = ctx.image(name, where)
                if info is None:
                    continue
                rec = {
                    "id": record_id(None, name),
                    "image": info.rel,
                    "width": info.width,
                    "height": info.height,
                    "captions": [],
                    "qa": [],
                    "split": split,
                    "source": source,
                }
                if info.georef is not None:
                    rec["georef"] = info.georef.model_dump(mode="json", exclude_none=True)
                records[name] = rec
            elif split and rec["split"] and rec["split"] != split:
                raise InputError(f"{where}: image {name} is in both the {rec['split']} and {split} files")
            if "question" in row:
                q, a = row.get("question", "").strip(), row.get("answer", "").strip()
                if not q or not a:
                    ctx.counts["empty_qa_skipped"] += 1
                    continue
                qa = {"question": q, "answer": a}
                if row.get("type", "").strip():
                    qa["type"] = row["type"].strip()
                rec["qa"].append(qa)
            else:
                text = row.get("caption", "").strip()
                if not text:
                    ctx.counts["empty_caption_skipped"] += 1
                    continue
                rec["captions"].append({"text": text, "style": caption_style(text, path.name), "source": path.name})
    for name, rec in records.items():
        ctx.counts["records"] += 1
        ctx.counts["captions"] += len(rec["captions"])
        ctx.counts["qa"] += len(rec["qa"])
        yield parse_sample({k: v for k, v in rec.items() if v is not None}, name)
