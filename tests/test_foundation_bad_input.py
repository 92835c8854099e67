"""Bad input to the FUSAR-KLIP verbs (issue #15): one line `sarvlm: error: ...`, exit 2, no traceback,
nothing left in (or taken from) the output directory. Cases already covered elsewhere (missing
named config, --classes twice, caption/finetune-caption errors, --resume without a checkpoint) are
not repeated here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _foundation_data import fields_for, make_world
from sarvlm.cli.main import main
from sarvlm.foundation.config import load_config
from sarvlm.foundation.model import build_model

torch.set_num_threads(1)

PRETRAIN_FAST = ["--steps", "2", "--set", "vision.image_size=32", "--set", "queue_size=64"]
PRETRAIN_FAST += ["--set", "train.batch_size=4", "--set", "train.warmup_steps=1"]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny checkpoint and copies of a 12-record world, each spoiled in one way."""
    root = tmp_path_factory.mktemp("klipbad")
    data = make_world(root / "w", n=12)
    torch.manual_seed(0)
    cfg = load_config("tiny-klip", {"vision.image_size": 32, "queue_size": 64})
    texts = ["\n".join(f"{k}: {v}." for k, v in fields_for(k).items()) for k in ("coast", "port", "rural", "urban")]
    (root / "model").mkdir()
    build_model(cfg, texts).save_pretrained(root / "model")
    rows = _rows(data)
    w = root / "w"
    (w / "images" / "bad.tif").write_bytes(b"not a tiff at all")
    (w / "masks" / "bad.png").write_bytes(b"not a png either")
    spoiled = {
        "nocap": {4: {"captions": []}},
        "badimg": {5: {"image": "images/bad.tif"}},
        "missimg": {5: {"image": "images/missing.tif"}},
        "nomask": {3: {"landcover": None}},
        "badmask": {2: {"landcover": {**rows[2]["landcover"], "mask": "masks/bad.png"}}},
        "missmask": {2: {"landcover": {**rows[2]["landcover"], "mask": "masks/missing.png"}}},
    }
    from sarvlm.io.raster import read_raster, write_raster

    odd = read_raster(w / rows[2]["landcover"]["mask"])[0].copy()
    odd[0, :5] = 9  # a value no class names
    write_raster(w / "masks" / "odd.png", odd)
    write_raster(w / "masks" / "float.tif", odd.astype("float32"))
    spoiled["oddmask"] = {2: {"landcover": {**rows[2]["landcover"], "mask": "masks/odd.png"}}}
    spoiled["floatmask"] = {2: {"landcover": {**rows[2]["landcover"], "mask": "masks/float.tif"}}}
    spoiled["otherclasses"] = {2: {"landcover": {**rows[2]["landcover"], "classes": {"0": "sea", "1": "town"}}}}
    spoiled["noclasses"] = {0: {"landcover": {**rows[0]["landcover"], "classes": {}}}}
    for name, changes in spoiled.items():
        out = [dict(r) for r in rows]
        for i, change in changes.items():
            out[i].update(change)
            out[i] = {k: v for k, v in out[i].items() if v is not None}
        _write(w / f"{name}.jsonl", out)
    _write(w / "one.jsonl", rows[:1])
    vit = root / "vit"  # a checkpoint of another architecture
    vit.mkdir()
    (vit / "config.json").write_text(json.dumps({"model_type": "vit"}))
    (vit / "model.safetensors").write_bytes(b"")
    (root / "bad_config.json").write_text(json.dumps({"vision": {"hidden_size": "wide"}}))
    return root


def _err(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sarvlm: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# (name, verb argv with {M} model, {W} world dir, {R} root; expected text in the error)
CASES = [
    (
        "retrieve-nocap",
        ["retrieve", "--model", "{M}", "--data", "{W}/nocap.jsonl"],
        "record 's004': no caption with style 'structured'",
    ),
    ("zeroshot-nocap", ["zeroshot", "--model", "{M}", "--data", "{W}/nocap.jsonl", "--classes", "coast,port"], "s004"),
    ("probe-nocap", ["probe", "--model", "{M}", "--data", "{W}/nocap.jsonl"], "--text-field"),
    ("retrieve-badimg", ["retrieve", "--model", "{M}", "--data", "{W}/badimg.jsonl"], "bad.tif: not a readable"),
    ("zeroshot-missimg", ["zeroshot", "--model", "{M}", "--data", "{W}/missimg.jsonl", "--classes", "a,b"], "missing"),
    ("probe-badimg", ["probe", "--model", "{M}", "--data", "{W}/badimg.jsonl"], "bad.tif"),
    ("zeroshot-vit", ["zeroshot", "--model", "{R}/vit", "--data", "{W}/samples.jsonl", "--classes", "a,b"], "'vit'"),
    ("probe-vit", ["probe", "--model", "{R}/vit", "--data", "{W}/samples.jsonl"], "wrong architecture 'vit'"),
    ("export-vit", ["export-backbone", "--model", "{R}/vit"], "wrong architecture 'vit'"),
    ("zeroshot-empty", ["zeroshot", "--model", "{M}", "--data", "{W}/samples.jsonl", "--classes", ""], "--classes"),
    (
        "zeroshot-commas",
        ["zeroshot", "--model", "{M}", "--data", "{W}/samples.jsonl", "--classes", " , ,"],
        "non-empty",
    ),
    (
        "zeroshot-templates",
        ["zeroshot", "--model", "{M}", "--data", "{W}/samples.jsonl", "--classes", "a,b", "--templates", "{R}/no.yaml"],
        "no such templates file",
    ),
    ("pretrain-config-file", ["pretrain", "--config", "{R}/bad_config.json", "--data", "{W}/samples.jsonl"], "hidden"),
    ("pretrain-config-missing", ["pretrain", "--config", "{R}/nope.yaml", "--data", "{W}/samples.jsonl"], "nope.yaml"),
    ("pretrain-badimg", ["pretrain", "--config", "tiny-klip", "--data", "{W}/badimg.jsonl", *PRETRAIN_FAST], "bad.tif"),
    (
        "pretrain-missimg",
        ["pretrain", "--config", "tiny-klip", "--data", "{W}/missimg.jsonl", *PRETRAIN_FAST],
        "missing",
    ),
    (
        "finetune-badimg",
        ["finetune-caption", "--model", "{M}", "--data", "{W}/badimg.jsonl", "--steps", "2"],
        "bad.tif",
    ),
    (
        "finetune-nocap",
        ["finetune-caption", "--model", "{M}", "--data", "{W}/nocap.jsonl"],
        "record 's004': no caption (caption",
    ),
    ("export-seg-nofile", ["export-backbone", "--model", "{M}", "--seg-data", "{W}/none.jsonl"], "none.jsonl: no such"),
    ("export-seg-nomask", ["export-backbone", "--model", "{M}", "--seg-data", "{W}/nomask.jsonl"], "'s003': no land"),
    ("export-seg-badmask", ["export-backbone", "--model", "{M}", "--seg-data", "{W}/badmask.jsonl"], "bad.png"),
    ("export-seg-missmask", ["export-backbone", "--model", "{M}", "--seg-data", "{W}/missmask.jsonl"], "missing.png"),
    ("export-seg-badimg", ["export-backbone", "--model", "{M}", "--seg-data", "{W}/badimg.jsonl"], "bad.tif"),
    ("export-seg-nocap", ["export-backbone", "--model", "{M}", "--seg-data", "{W}/nocap.jsonl"], "'s004'"),
    (
        "export-seg-oddmask",
        ["export-backbone", "--model", "{M}", "--seg-data", "{W}/oddmask.jsonl"],
        "values [9] outside",
    ),
    (
        "export-seg-floatmask",
        ["export-backbone", "--model", "{M}", "--seg-data", "{W}/floatmask.jsonl"],
        "float32 pixels",
    ),
    (
        "export-seg-otherclasses",
        ["export-backbone", "--model", "{M}", "--seg-data", "{W}/otherclasses.jsonl"],
        "record 's002': land-cover classes",
    ),
    ("export-seg-noclasses", ["export-backbone", "--model", "{M}", "--seg-data", "{W}/noclasses.jsonl"], "is empty"),
    ("export-seg-one", ["export-backbone", "--model", "{M}", "--seg-data", "{W}/one.jsonl"], "at least 2"),
    (
        "export-seg-steps",
        ["export-backbone", "--model", "{M}", "--seg-data", "{W}/samples.jsonl", "--seg-steps", "0"],
        "steps",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_no_output(world, case, tmp_path, capsys):
    _, argv, expected = case
    out = tmp_path / "parent" / "out"  # neither the directory nor its parent exists yet
    argv = [a.format(M=world / "model", W=world / "w", R=world) for a in argv] + ["--out", str(out)]
    assert expected in _err(capsys, argv)
    assert not (tmp_path / "parent").exists()  # nothing written, no empty directory made
    assert not list(tmp_path.glob("**/.*tmp-*"))


@pytest.mark.parametrize("data", ["badmask", "samples"])
def test_export_backbone_never_changes_a_users_directory(world, data, tmp_path, capsys):
    model = str(world / "model")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    argv = ["export-backbone", "--model", model, "--out", str(mine), "--seg-data", str(world / "w" / f"{data}.jsonl")]
    # without --overwrite: refused before any work; with it, a failure still leaves the directory as it was
    assert "not empty (use --overwrite)" in _err(capsys, [*argv, "--seg-steps", "2"])
    if data == "badmask":
        assert "bad.png" in _err(capsys, [*argv, "--seg-steps", "2", "--overwrite"])
        assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    else:
        assert main([*argv, "--seg-steps", "2", "--overwrite"]) == 0
        names = {p.name for p in mine.iterdir()}
        assert {"model.safetensors", "handoff.json", "seg_head.safetensors", "segmentation.json"} <= names
        assert "notes.txt" not in names  # replaced whole, as --overwrite says
    # the model directory itself (or one holding it) is never the output
    assert "would replace the model directory" in _err(
        capsys, ["export-backbone", "--model", model, "--out", str(world), "--overwrite"]
    )
    assert (world / "model" / "model.safetensors").is_file()


def test_pretrain_failure_keeps_an_existing_run_directory(world, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()  # the user's (empty) directory stays, even though the run failed before writing
    argv = ["pretrain", "--config", "tiny-klip", "--data", str(world / "w" / "badimg.jsonl"), "--out", str(run)]
    assert "bad.tif" in _err(capsys, [*argv, *PRETRAIN_FAST])
    assert run.is_dir() and not any(run.iterdir())


@pytest.mark.parametrize("verb", ["pretrain", "finetune-caption"])
def test_interrupted_run_restarted_without_resume_is_told_to_resume(world, verb, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)  # what a killed run leaves (its last checkpoint)
    (run / "checkpoint" / "state.json").write_text("{}")
    first = ["--config", "tiny-klip"] if verb == "pretrain" else ["--model", str(world / "model")]
    argv = [verb, *first, "--data", str(world / "w" / "samples.jsonl"), "--out", str(run)]
    assert "an interrupted run: add --resume to continue it" in _err(capsys, argv)
    assert (run / "checkpoint" / "state.json").read_text() == "{}"
    (run / "final").mkdir()
    assert "already finished" in _err(capsys, [*argv, "--resume"])


def test_pretrain_overwrite_with_a_bad_image_keeps_the_old_run(world, tmp_path, capsys):
    run = tmp_path / "run"
    for name in ("checkpoint", "final", "scio"):
        (run / name).mkdir(parents=True)
        (run / name / "kept.txt").write_text(name)
    argv = ["pretrain", "--config", "tiny-klip", "--data", str(world / "w" / "badimg.jsonl"), "--out", str(run)]
    assert "bad.tif" in _err(capsys, [*argv, *PRETRAIN_FAST, "--overwrite"])
    for name in ("checkpoint", "final", "scio"):
        assert (run / name / "kept.txt").read_text() == name


def test_init_from_a_damaged_or_klip_checkpoint_is_one_line(world, tmp_path, capsys):
    damaged = tmp_path / "vit"
    damaged.mkdir()
    (damaged / "config.json").write_text(json.dumps({"model_type": "vit"}))
    (damaged / "model.safetensors").write_bytes(b"\x00" * 20)
    base = ["pretrain", "--config", "tiny-klip", "--data", str(world / "w" / "samples.jsonl"), *PRETRAIN_FAST]
    for init, expected in [
        (damaged, "model.safetensors: cannot load"),
        (world / "model", "wrong architecture 'sarvlm-klip'"),
    ]:
        out = tmp_path / "out"
        err = _err(capsys, [*base, "--set", f"vision.init_from={init}", "--out", str(out)])
        assert expected in err and not out.exists()
