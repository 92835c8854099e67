"""Streaming build: splits by image, byte-identical rebuilds, export formats round-trip, QC report,
bad input without tracebacks or half-written output."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sarvlm.cli.main import main as cli_main
from sarvlm.core.errors import SarvlmError
from sarvlm.core.example import InstructionExample, read_examples
from sarvlm.core.record import SampleRecord, read_samples, write_samples
from sarvlm.data.builder import BuildOptions, build_dataset
from sarvlm.data.export import read_export
from sarvlm.data.importers import import_dataset
from sarvlm.data.splits import SplitPlan

CATS = ("ship", "tank", "aircraft")


def _world(root: Path, n: int = 60, seed: int = 0, shared: bool = True) -> Path:
    """n annotated samples over n // 2 images (every image listed by two sources; n images unless
    ``shared``), with georef + date."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(root / "img" / "a.png")
    recs = []
    for i in range(n):
        img = f"img/im{i // 2 if shared else i}.png"
        if not (root / img).exists():
            Image.fromarray(rng.integers(0, 255, (60, 80), dtype=np.uint8)).save(root / img)
        objs = []
        for _ in range(int(rng.integers(1, 5))):
            x, y = float(rng.integers(0, 70)), float(rng.integers(0, 50))
            objs.append({"category": str(rng.choice(CATS)), "bbox": [x, y, x + 8, y + 6]})
        recs.append(
            SampleRecord(
                id=f"s{i}",
                image=img,
                width=80,
                height=60,
                date="2022-03-04",
                source="A" if i % 2 else "B",
                georef={"bbox_wgs84": [120.0, 30.0, 120.01, 30.01]},
                objects=objs,
            )
        )
    path = root / "samples.jsonl"
    write_samples(path, recs)
    return path


@pytest.fixture()
def world(tmp_path):
    return _world(tmp_path / "world")


def _all_rows(out: Path) -> list[dict]:
    rows = []
    for name in ("train", "val", "test"):
        if (out / f"{name}.jsonl").exists():
            rows += [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
    return rows


def test_build_end_to_end(world, tmp_path):
    out = tmp_path / "out"
    res = build_dataset(world, out, BuildOptions(tasks=["fusar-gpt", "sarlang", "caption"], seed=3))
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "quality.md",
        "test.jsonl",
        "train.jsonl",
        "val.jsonl",
    ]
    examples = [e for s in ("train", "val", "test") for e in read_examples(out / f"{s}.jsonl")]  # contract holds
    for s in ("train", "val", "test"):  # the fast writer is byte-identical to InstructionExample.to_json
        for line in (out / f"{s}.jsonl").read_text().splitlines():
            assert InstructionExample.model_validate_json(line).to_json() == line
    assert len(examples) == res.total > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["totals"] == {s: sum(1 for e in examples if e.split == s) for s in ("train", "val", "test")}
    assert manifest["seed"] == 3 and manifest["inputs"][0]["sha256"]
    per_task = Counter(e.task for e in examples)
    assert set(per_task) == {
        "count",
        "grid",
        "classify_box",
        "detect",
        "identify",
        "classify",
        "position",
        "refer",
        "caption",
    }
    assert sum(sum(v.values()) for v in manifest["counts"].values()) == len(examples)
    for e in examples:
        assert e.georef.bbox_wgs84 == [120.0, 30.0, 120.01, 30.01] and e.year == 2022
        assert (e.width, e.height) == (80, 60) and e.coords == "qwen2.5"
        assert (out / e.images[0]).resolve() == (world.parent / "img" / Path(e.images[0]).name).resolve()
        assert e.messages[0].content.startswith("<image>")
    # the same image never lands in two splits, even when listed by two sources
    split_of = {}
    for e in examples:
        assert split_of.setdefault(e.images[0], e.split) == e.split
    assert len({e.split for e in examples}) == 3


def test_rebuild_is_byte_identical_and_seed_matters(world, tmp_path):
    opts = dict(tasks=["all"], seed=7)
    build_dataset(world, tmp_path / "a", BuildOptions(**opts))
    build_dataset(world, tmp_path / "b", BuildOptions(**opts))
    build_dataset(world, tmp_path / "c", BuildOptions(tasks=["all"], seed=8))
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "manifest.json", "quality.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "train.jsonl").read_bytes() != (tmp_path / "c" / "train.jsonl").read_bytes()


def test_split_ratios_and_keep(tmp_path):
    plan = SplitPlan.parse("8:1:1", seed=0)
    got = Counter(plan.assign(f"img/{i}.png", None, "r") for i in range(20000))
    assert abs(got["train"] / 20000 - 0.8) < 0.015 and abs(got["val"] / 20000 - 0.1) < 0.01
    assert SplitPlan.parse("7:3").names == ("train", "test") and SplitPlan.parse("4:1").bounds == (0.8, 1.0)
    keep = SplitPlan.parse("keep")
    assert keep.assign("x", "validation", "r") == "val"
    with pytest.raises(SarvlmError, match="r: split: the sample has no split"):
        keep.assign("x", None, "r")
    mixed = SplitPlan.parse("keep,7:3")
    assert mixed.assign("x", "Test", "r") == "test" and mixed.assign("x", None, "r") in ("train", "test")
    for bad in ("8:1:1:1", "abc", "0:1", "-1:2"):
        with pytest.raises(SarvlmError, match="--split"):
            SplitPlan.parse(bad)


def test_balanced_split_is_exact_per_source_and_keeps_images_together():
    plan = SplitPlan.parse("8:1:1", seed=5, method="balanced")
    got = {src: Counter(plan.assign(f"{src}/{i}.png", None, "r", src) for i in range(30)) for src in ("A", "B")}
    assert got == {"A": Counter(train=24, val=3, test=3), "B": Counter(train=24, val=3, test=3)}
    again = SplitPlan.parse("8:1:1", seed=5, method="balanced")
    assert [again.assign(f"A/{i}.png", None, "r", "A") for i in range(30)] == [
        plan.assign(f"A/{i}.png", None, "r", "A") for i in range(30)
    ]  # remembered, and seeded
    assert plan.assign("A/3.png", None, "r", "B") == plan.assign("A/3.png", None, "r", "A")
    assert SplitPlan.parse("0.7:0.3", method="balanced")._block().count("test") == 3
    with pytest.raises(SarvlmError, match="--split-method"):
        SplitPlan.parse("8:1:1", method="exact")


def test_split_keep_in_build(world, tmp_path):
    recs = list(read_samples(world))
    for i, r in enumerate(recs):
        r.split = ("train", "val", "test")[(i // 2) % 3]
    write_samples(world, recs)
    build_dataset(world, tmp_path / "o", BuildOptions(tasks=["count"], split="keep"))
    for e in read_examples(tmp_path / "o" / "val.jsonl"):
        assert (int(e.sample_id[1:]) // 2) % 3 == 1


@pytest.mark.parametrize("fmt", ["swift", "llava"])
def test_export_formats_round_trip(tmp_path, fmt):
    world = _world(tmp_path / "w", n=30, shared=False)  # one record per image: conversations regroup 1:1
    build_dataset(world, tmp_path / "ref", BuildOptions(tasks=["count", "detect"], seed=1, absolute_images=True))
    build_dataset(world, tmp_path / "ex", BuildOptions(tasks=["count", "detect"], seed=1, format=fmt))
    ref = list(read_examples(tmp_path / "ref" / "train.jsonl"))
    back = list(read_export(tmp_path / "ex" / "train.jsonl"))
    assert [(e.messages, e.images) for e in back] == [(e.messages, e.images) for e in ref]
    first = json.loads((tmp_path / "ex" / "train.jsonl").read_text().splitlines()[0])
    assert set(first) == ({"messages", "images"} if fmt == "swift" else {"id", "image", "conversations"})
    # re-import as sample records and rebuild the conversations: same messages again
    samples = tmp_path / "ex" / "back.jsonl"
    import_dataset(fmt, tmp_path / "ex" / "train.jsonl", samples, images=tmp_path / "ex")
    # back.jsonl sits in ex/ while its images stay in w/: outside its folder, so allowed explicitly
    build_dataset(samples, tmp_path / "again", BuildOptions(tasks=["dialogue"], split="1:0", allow_outside_root=True))
    again = list(read_examples(tmp_path / "again" / "train.jsonl"))
    assert sorted(m.model_dump_json() for e in again for m in e.messages) == sorted(
        m.model_dump_json() for e in ref for m in e.messages
    )


def test_quality_control_report(tmp_path):
    Image.fromarray(np.zeros((50, 100), np.uint8)).save(tmp_path / "a.png")
    rec = {
        "id": "q1",
        "image": "a.png",
        "width": 100,
        "height": 50,
        "objects": [
            {"category": "vessel", "bbox": [90, 10, 120, 20]},  # mapped + clipped
            {"category": "ship", "bbox": [200, 10, 220, 20]},  # entirely outside
            {"category": "ship", "bbox": [5, 5, 5, 9]},  # zero area
            {"category": "tank", "bbox": [10, 10, 20, 20]},
        ],
        "captions": [
            {"text": "A red roof near 2 tanks.", "style": "concise"},
            {"text": "One ship on the right and one tank.", "style": "concise"},
            {"text": "One ship on the right and one tank.", "style": "concise"},
        ],
    }
    (tmp_path / "s.jsonl").write_text(json.dumps(rec) + "\n")
    res = build_dataset(tmp_path / "s.jsonl", tmp_path / "o", BuildOptions(tasks=["count", "caption"], split="1:0"))
    q = res.quality.counts
    assert (q["category_mapped"], q["box_clipped"], q["box_outside"], q["zero_area_box"]) == (1, 1, 1, 1)
    assert (q["colour_word"], q["count_mismatch"], q["duplicate_question"]) == (1, 1, 1)
    rows = _all_rows(tmp_path / "o")
    captions = [r["answer"] for r in rows if r["task"] == "caption"]
    assert captions == ["One ship on the right and one tank."]
    counts = {r["params"]["category"]: r["answer"] for r in rows if r["task"] == "count"}
    assert counts["ship"] == 1 and counts["tank"] == 1
    assert "colour_word" in (tmp_path / "o" / "quality.md").read_text()
    res = build_dataset(
        tmp_path / "s.jsonl", tmp_path / "f", BuildOptions(tasks=["caption"], split="1:0", qc="flag", boxes="drop")
    )
    assert res.quality.counts["box_partly_outside_dropped"] == 1
    assert len([r for r in _all_rows(tmp_path / "f") if r["task"] == "caption"]) == 2  # flagged, kept
    res = build_dataset(
        tmp_path / "s.jsonl",
        tmp_path / "v",
        BuildOptions(tasks=["count"], split="1:0", categories=["ship", "aircraft"]),
    )
    assert res.quality.counts["unknown_category"] == 1  # the tank


def test_with_optical(tmp_path):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "sar.png")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "opt.png")
    rec = {
        "id": "p",
        "image": "sar.png",
        "optical": "opt.png",
        "width": 30,
        "height": 20,
        "captions": [{"text": "Craters. A smooth floor. Bright rims on the left.", "style": "complex"}],
    }
    (tmp_path / "s.jsonl").write_text(json.dumps(rec) + "\n")
    build_dataset(
        tmp_path / "s.jsonl",
        tmp_path / "o",
        BuildOptions(tasks=["caption", "dialogue"], split="1:0", with_optical=True),
    )
    for e in read_examples(tmp_path / "o" / "train.jsonl"):
        assert e.images == ["../sar.png", "../opt.png"]
        assert e.messages[0].content.startswith("<image>\n<image>\n") and e.messages[0].content.count("<image>") == 2
        assert sum(m.content.count("<image>") for m in e.messages) == 2


def test_bad_input(world, tmp_path):
    lines = world.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines[:3] + ['{"id": "x", "image": '] + lines[3:]) + "\n")
    out = tmp_path / "out"
    with pytest.raises(SarvlmError, match=r"bad.jsonl:4: malformed JSON"):
        build_dataset(bad, out, BuildOptions())
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # no half-written directory
    missing = tmp_path / "w2" / "samples.jsonl"
    missing.parent.mkdir()
    missing.write_text(
        lines[0].replace("img/im0.png", "img/nope.png")
        + "\n"
        + lines[2].replace("img/im1.png", "../world/img/im1.png")
        + "\n"
    )
    with pytest.raises(SarvlmError, match=r"samples.jsonl:1: record 's0': image: .*nope.png: no such file"):
        build_dataset(missing, out, BuildOptions())
    with pytest.raises(SarvlmError, match=r"record 's2': image: path '../world/img/im1.png' lies outside"):
        build_dataset(missing, out, BuildOptions(skip_missing=True, check_images=True))
    res = build_dataset(missing, out, BuildOptions(skip_missing=True, check_images=True, allow_outside_root=True))
    assert res.quality.counts["missing_image"] == 1
    assert res.manifest["options"]["allow_outside_root"] is True
    with pytest.raises(SarvlmError, match="exists and is not empty"):
        build_dataset(world, out, BuildOptions())
    neg = tmp_path / "neg.jsonl"
    neg.write_text(lines[0].replace('"bbox": [', '"bbox": [100, 100, ').replace("]}", "]}", 1) + "\n")
    with pytest.raises(SarvlmError, match="neg.jsonl:1: record 's0': field 'objects.0.bbox'"):
        build_dataset(neg, tmp_path / "n", BuildOptions())
    for kw, msg in [({"coords": "xyz"}, "--coords"), ({"format": "csv"}, "--format"), ({"tasks": ["nope"]}, "--tasks")]:
        with pytest.raises(SarvlmError, match=msg):
            build_dataset(world, tmp_path / "z", BuildOptions(**kw))


def test_cli_build(world, tmp_path, capsys):
    out = tmp_path / "o"
    assert (
        cli_main(
            [
                "build",
                str(world),
                str(out),
                "--tasks",
                "count,grid",
                "--seed",
                "2",
                "--coords",
                "qwen3",
                "--split",
                "7:3",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["test.jsonl", "train.jsonl"]
    e = next(read_examples(out / "train.jsonl"))
    assert e.coords == "qwen3"
    assert cli_main(["build", str(world), str(out)]) == 2
    err = capsys.readouterr().err
    assert "sarvlm: error:" in err and "Traceback" not in err
