"""The token-length cache: a second start-up encodes nothing, and a change of the data or of the
processor settings invalidates the stored lengths (the over-long policy stays exact)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sarvlm.models.loading import load_model
from sarvlm.training.dataset import SftDataset
from sarvlm.training.length_cache import CACHE_DIR, LengthCache, processor_fingerprint
from test_training_data import make_dataset


@pytest.fixture(scope="module")
def processor():
    return load_model("tiny-qwen2.5-vl")[1]


def _count_encodes(monkeypatch, ds_cls=SftDataset) -> list[int]:
    calls: list[int] = []
    original = ds_cls._encode_text

    def counting(self, ex):
        calls.append(1)
        return original(self, ex)

    monkeypatch.setattr(ds_cls, "_encode_text", counting)
    return calls


def test_second_startup_reads_lengths_instead_of_encoding(processor, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "ds", long_text=True)
    calls = _count_encodes(monkeypatch)
    first = SftDataset(root / "train.jsonl", processor, tasks=["caption"], max_length=400)
    assert len(calls) == first.report.total - first.report.other_task > 0
    files = list((root / CACHE_DIR / "lengths").glob("train-*.npy"))
    assert len(files) == 1
    stored = np.load(files[0])
    assert stored.shape == (first.report.total,)
    assert (stored >= 0).sum() == len(calls)  # only caption rows were measured; the rest stay unknown

    calls.clear()
    second = SftDataset(root / "train.jsonl", processor, tasks=["caption"], max_length=400)
    assert calls == []  # nothing encoded at start-up
    assert second.length_cache.loaded == len(first.lengths) + first.report.too_long
    # exactly the same drop-and-count outcome as the run that measured
    assert second.report.to_dict() == first.report.to_dict()
    assert second.lengths == first.lengths and second.report.too_long == 1

    # a stage over other tasks fills the missing rows and keeps the known ones
    third = SftDataset(root / "train.jsonl", processor, tasks=["caption", "count"], max_length=400)
    assert len(calls) == third.report.kept + third.report.too_long - len(first.lengths) - 1
    assert third.length_cache.computed == len(calls)
    assert (np.load(files[0]) >= 0).sum() == third.report.total - third.report.other_task


def test_changed_data_invalidates(processor, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "ds")
    SftDataset(root / "train.jsonl", processor, tasks=["caption"])
    calls = _count_encodes(monkeypatch)
    # same size, different content: one answer edited in place (a length key by size/mtime could miss it)
    path = root / "train.jsonl"
    lines = path.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if json.loads(line)["task"] == "caption")
    data = json.loads(lines[row])
    data["messages"][-1]["content"] = data["messages"][-1]["content"] + " " + "long " * 60
    lines[row] = json.dumps(data)
    path.write_text("\n".join(lines) + "\n")
    ds = SftDataset(path, processor, tasks=["caption"])
    assert len(calls) == ds.report.kept + ds.report.too_long  # all measured again
    edited = ds.examples.index(next(e for e in ds.examples if e.id == data["id"]))
    assert ds.lengths[edited] > 60
    assert len(list((root / CACHE_DIR / "lengths").glob("train-*.npy"))) == 2


def test_changed_processor_settings_invalidate(processor, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "ds")
    base = SftDataset(root / "train.jsonl", processor, tasks=["count"])
    # fewer pixels per image → fewer image tokens: the stored lengths must not be reused
    small = load_model("tiny-qwen2.5-vl", settings={"max_pixels": 56 * 56})[1]
    assert processor_fingerprint(small) != processor_fingerprint(processor)
    calls = _count_encodes(monkeypatch)
    ds = SftDataset(root / "train.jsonl", small, tasks=["count"])
    assert len(calls) == ds.report.kept
    assert sum(ds.lengths) < sum(base.lengths)
    # a different fusion (concat reserves prior tokens) is a different key too
    concat = load_model("tiny-qwen2.5-vl", settings={"fusion": "concat"})[1]
    assert processor_fingerprint(concat) != processor_fingerprint(processor)


def test_read_only_directory_keeps_lengths_in_memory(processor, tmp_path):
    root = make_dataset(tmp_path / "ds")
    cache = LengthCache(root / "train.jsonl", processor, 3, cache_dir=root / "train.jsonl")  # a file, not a dir
    cache.put(0, 5)
    assert cache.save() is False and not cache.persistent
    assert "memory only" in cache.describe()
    ds = SftDataset(root / "train.jsonl", processor, tasks=["count"], length_cache=False, image_cache=False)
    assert ds.length_cache is None and not (root / CACHE_DIR).exists()
