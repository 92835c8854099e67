"""The persistent row index: a warm start-up parses no example and hashes no JSONL; an edited file is
indexed again; the examples and errors are those of reading the file."""

from __future__ import annotations

import json
import os

import pytest

import sarvlm.training.example_index as example_index
from sarvlm.core.errors import SarvlmError
from sarvlm.core.example import read_examples
from sarvlm.models.loading import build_tiny
from sarvlm.training.dataset import SftDataset
from sarvlm.training.example_index import ExampleIndex, content_digest
from test_training_data import make_dataset


@pytest.fixture(scope="module")
def processor():
    return build_tiny("tiny-qwen2.5-vl")[1]


def _spy(monkeypatch, name):
    calls: list[object] = []
    original = getattr(example_index, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(example_index, name, spy)
    return calls


def test_index_matches_the_file_and_warm_start_parses_nothing(processor, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "ds")
    path = root / "train.jsonl"
    parsed = list(read_examples(path))
    cold = SftDataset(path, processor)
    assert not cold.index.loaded and len(cold.index) == len(parsed)
    assert [(e.task, e.sample_id, e.reference is not None) for e in parsed] == cold.index.rows()
    assert [e.model_dump() for e in cold.examples] == [e.model_dump() for e in parsed if e.reference is not None]

    first_item = cold[0]["input_ids"].tolist()
    hashed = _spy(monkeypatch, "_full_digest")
    rows = _spy(monkeypatch, "parse_record")
    warm = SftDataset(path, processor)
    assert warm.index.loaded and hashed == [] and rows == []  # no hash of the JSONL, no row parsed
    assert warm.report.to_dict() == cold.report.to_dict() and warm.lengths == cold.lengths
    assert warm[0]["input_ids"].tolist() == first_item
    assert len(rows) == 1  # the data loader's item: one row parsed on demand


def test_edited_file_is_hashed_and_indexed_again(tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "ds")
    path = root / "train.jsonl"
    first = ExampleIndex.load(path)
    hashed = _spy(monkeypatch, "_full_digest")
    assert content_digest(path) == first.digest and hashed == []
    lines = path.read_text().splitlines()
    row = json.loads(lines[0])
    row["task"] = "count"
    lines[0] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n\n")  # and a blank line (skipped, as when reading)
    again = ExampleIndex.load(path)
    assert len(hashed) == 1 and again.digest != first.digest and not again.loaded
    assert again.rows()[0][0] == "count" and len(again) == len(first)
    # touched with the same bytes: hashed again (new mtime), same digest, the stored index is reused
    os.utime(path, ns=(1, 1))
    third = ExampleIndex.load(path)
    assert len(hashed) == 2 and third.digest == again.digest and third.loaded


def test_bad_rows_fail_as_reading_the_file_does(processor, tmp_path):
    root = make_dataset(tmp_path / "ds")
    path = root / "train.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], "{not json", *lines[2:]]) + "\n")
    with pytest.raises(SarvlmError, match=r"train.jsonl:3: malformed JSON"):
        SftDataset(path, processor)
    row = json.loads(lines[1])
    row["messages"][0]["content"] = row["messages"][0]["content"].replace("<image>", "")
    path.write_text("\n".join([lines[0], json.dumps(row), *lines[2:]]) + "\n")
    with pytest.raises(SarvlmError, match=rf"example {row['id']!r}: images: .* placeholder"):
        SftDataset(path, processor)


def test_array_path_equals_row_by_row_path(processor, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "ds", long_text=True)
    path = root / "train.jsonl"
    for tasks, max_length in ((["caption", "count"], 400), (["*"], 2048)):
        fast = SftDataset(path, processor, tasks=tasks, max_length=max_length, length_cache=False)
        with monkeypatch.context() as m:
            wanted = None if "*" in tasks else set(tasks)
            m.setattr(
                SftDataset,
                "_select_fast",
                lambda self, _w, _c, known, ml, wanted=wanted: self._select_rows(wanted, known, ml, False),
            )
            slow = SftDataset(path, processor, tasks=tasks, max_length=max_length, length_cache=False)
        assert fast.report.to_dict() == slow.report.to_dict() and fast.report.tasks == slow.report.tasks
        assert fast.rows == slow.rows and fast.lengths == slow.lengths
        if max_length == 400:  # something filtered each way
            assert fast.report.other_task > 0 and fast.report.too_long == 1 and fast.report.kept > 0
