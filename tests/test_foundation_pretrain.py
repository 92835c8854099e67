"""`sarvlm pretrain`: outputs, SCIO phases, resume after SIGKILL, bad input (tiny model, 32² images)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from _foundation_data import fields_for, make_world
from _processes import kill_when
from sarvlm.cli.main import main
from sarvlm.core.record import read_samples
from sarvlm.foundation.config import load_config

torch.set_num_threads(1)

FAST = ["--set", "vision.image_size=32", "--set", "queue_size=64", "--set", "train.warmup_steps=5"]


def _cfg(**extra):
    o = {"vision.image_size": 32, "queue_size": 64, "train.warmup_steps": 5}
    o.update(extra)
    return load_config("tiny-klip", o)


def _rows(run: Path) -> list[dict]:
    with open(run / "loss.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_pretrain_with_scio_writes_every_output(tmp_path, capsys):
    data = make_world(tmp_path / "w", n=16)
    run = tmp_path / "run"
    rc = main(["pretrain", "--data", str(data), "--out", str(run), "--steps", "12", "--scio", *FAST])
    assert rc == 0, capsys.readouterr().err
    rows = _rows(run)
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert [int(r["phase"]) for r in rows] == [1] * 4 + [2] * 4 + [3] * 4  # tiny-klip: the paper's three equal phases
    assert all(float(r["loss"]) > 0 for r in rows)
    assert (run / "loss.png").stat().st_size > 1000 and (run / "final" / "model.safetensors").is_file()
    assert not (run / "checkpoint").exists()
    lines = [json.loads(x) for x in (run / "scio" / "fragments.jsonl").read_text().splitlines()]
    assert len(lines) == 16 * 8
    assert {x["action"] for x in lines} <= {"kept", "dropped", "reconstructed"}
    for x in lines:
        assert {"id", "field", "itc", "itm", "delta_itc", "delta_itm", "original", "reconstructed"} <= x.keys()
        assert 0.0 <= x["itm"] <= 1.0 and -1.0 <= x["itc"] <= 1.0
        assert (x["reconstructed"] is None) == (x["action"] == "kept")
    summary = json.loads((run / "scio" / "summary.json").read_text())
    assert sum(summary["actions"].values()) == 128
    assert set(summary["per_field"]) == set(fields_for("coast"))
    refined = list(read_samples(run / "scio" / "refined.jsonl"))
    assert [r.id for r in refined] == [f"s{i:03d}" for i in range(16)]
    for r, x in zip(refined, [lines[i * 8 : i * 8 + 8] for i in range(16)]):
        assert r.image_path(run / "scio").is_file()  # paths rewritten relative to the new file
        cap = next(c for c in r.captions if c.style == "structured")
        expect = {f["field"] for f in x if f["action"] != "dropped"}
        assert set(cap.fields) == expect
        assert r.meta["scio_original_fields"] == fields_for(r.meta["kind"])
    assert (run / "scio" / "actions.png").is_file() and (run / "scio" / "screening.png").is_file()
    assert "SCIO kept" in capsys.readouterr().out


def test_planted_wrong_fragment_scores_lower_after_training(tmp_path):
    from sarvlm.foundation.data import load_images, load_items
    from sarvlm.foundation.model import KlipModel
    from sarvlm.foundation.pretrain import pretrain
    from sarvlm.foundation.scio import screen

    # one record of each kind (0-3) claims the other Water value; the 3 other records of its kind tell the truth
    kinds = ["coast", "port", "rural", "urban"]
    other = {"coast": "rural", "port": "urban", "rural": "coast", "urban": "port"}
    planted = {i: {"Water": fields_for(other[k])["Water"]} for i, k in enumerate(kinds)}
    assert all(planted[i]["Water"] != fields_for(k)["Water"] for i, k in enumerate(kinds))
    data = make_world(tmp_path / "w", n=16, planted=planted)
    # BLIP's [CLS] pooling, momentum 0.995 and lr 1e-3 here, not tiny-klip's defaults: with token-mean pooling
    # a fragment *alone* is out of distribution for the text tower (trained on 8-fragment texts), and at
    # lr 3e-3 a record's unique planted fragment is memorised (docs/bench/foundation.md); with
    # tiny-klip-fragments' fragment-level ITC and fragment-swap ITM negatives.
    cfg = load_config(
        "tiny-klip-fragments",
        {"vision.image_size": 32, "queue_size": 64, "train.warmup_steps": 5, "train.lr": 1e-3}
        | {"text_pooling": "cls", "image_pooling": "cls", "momentum": 0.995},
    )
    pretrain(cfg, data, tmp_path / "run", steps=240, seed=0, log=lambda *_: None)
    model = KlipModel.from_pretrained(tmp_path / "run" / "final").eval()
    items = load_items(data)
    images = load_images(items, 32, 1, model.config.db_window)
    decisions, keeps = screen(model, items, images, rule="alternatives", use_itm=False)
    assert len(decisions) == 16 and all(len(k) == 8 for k in keeps)
    with torch.no_grad():
        _, feats = model.encode_image(images[:4])
        for i, kind in enumerate(kinds):
            ids, att = model.tokenize(
                ["Water: " + fields_for(kind)["Water"] + ".", "Water: " + planted[i]["Water"] + "."]
            )
            itc = model.encode_text(ids, att) @ feats[i]
            # the fragment-alone ITC cosine -- what tiny-klip's screening compares -- ranks the truth first
            assert itc[0] > itc[1], (kind, itc)
            water = decisions[i][7]
            assert water.field == "Water" and water.original == planted[i]["Water"]
            # the screening statistic: another Water value (the truth) matches the image better
            assert water.alt_itc < 0 and water.alternative != planted[i]["Water"], (kind, water)
    # and the true Water claims of the other 12 records are not flagged (measured: 0 of 12 on seeds 0, 1, 2,
    # where every planted claim was caught)
    assert sum(decisions[i][7].alt_itc < 0 for i in range(4, 16)) <= 1


def _launch(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    return subprocess.Popen(
        [sys.executable, "-m", "sarvlm.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_resume_after_sigkill_continues_the_same_run(tmp_path):
    data = make_world(tmp_path / "w", n=16)
    common = ["--data", str(data), "--steps", "12", "--checkpoint-every", "3", "--scio", *FAST]
    ref = _launch(["pretrain", "--out", str(tmp_path / "ref"), *common])
    run = tmp_path / "run"
    victim = _launch(["pretrain", "--out", str(run), *common])
    state = run / "checkpoint" / "state.json"
    kill_when(
        victim, lambda: state.is_file() and json.loads(state.read_text())["step"] >= 6, "pretrain", "step-6 checkpoint"
    )
    assert not (run / "final").exists()
    # starting again without --resume is refused with a hint
    again = _launch(["pretrain", "--out", str(run), *common])
    _, err = again.communicate(timeout=120)
    assert again.returncode == 2 and "--resume" in err and err.count("\n") == 1
    resumed = _launch(["pretrain", "--out", str(run), "--resume", *common])
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resumed at step" in out
    ref.communicate(timeout=300)
    assert ref.returncode == 0
    a, b = _rows(tmp_path / "ref"), _rows(run)
    assert [r["step"] for r in b] == [str(i) for i in range(1, 13)]
    assert [(r["loss"], r["itc"], r["itm"], r["mlm"]) for r in a] == [
        (r["loss"], r["itc"], r["itm"], r["mlm"]) for r in b
    ]
    fa = (tmp_path / "ref" / "scio" / "fragments.jsonl").read_text()
    assert fa == (run / "scio" / "fragments.jsonl").read_text()


def test_bad_inputs_fail_with_one_line(tmp_path, capsys):
    data = make_world(tmp_path / "w", n=8)
    run = tmp_path / "run"

    def err(args):
        assert main(args) == 2
        e = capsys.readouterr().err
        assert e.count("\n") == 1 and e.startswith("sarvlm: error: ")
        return e

    assert "no such named config" in err(["pretrain", "--data", str(data), "--out", str(run), "--config", "nope"])
    assert "no caption with style 'concise'" in err(
        ["pretrain", "--data", str(data), "--out", str(run), "--text-field", "concise", *FAST]
    )
    assert "no checkpoint to resume" in err(["pretrain", "--data", str(data), "--out", str(run), "--resume", *FAST])
    (tmp_path / "w" / "images" / "s003.tif").write_bytes(b"not a tiff")
    e = err(["pretrain", "--data", str(data), "--out", str(tmp_path / "run2"), "--steps", "2", *FAST])
    assert "s003.tif" in e
    assert not (tmp_path / "run2" / "final").exists()
    assert "fewer than one batch" in err(
        [
            "pretrain",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "run3"),
            "--steps",
            "2",
            "--set",
            "train.batch_size=16",
            "--set",
            "queue_size=64",
            "--set",
            "vision.image_size=32",
        ]
    )
