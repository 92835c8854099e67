"""KLIP decoder fine-tuning: captioning and VQA (`sarvlm finetune-caption`, `sarvlm caption`)."""

from __future__ import annotations

import csv
import json
import re

import pytest
import torch

from _foundation_data import fields_for, make_world
from sarvlm.cli.main import main
from sarvlm.core.record import SampleRecord, write_samples
from sarvlm.data.builder import BuildOptions, build_dataset
from sarvlm.foundation.config import load_config
from sarvlm.foundation.decoder_model import KlipDecoderModel
from sarvlm.foundation.model import build_model

torch.set_num_threads(1)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("klipdec")
    samples = make_world(root / "w", n=8)
    opts = BuildOptions(tasks=["caption", "landform_main", "landform_all", "landform_region"], split="1:0")
    build_dataset(samples, root / "b", opts, progress=lambda it, **_: it)
    torch.manual_seed(0)
    cfg = load_config("tiny-klip", {"vision.image_size": 32, "queue_size": 64})
    texts = [
        "\n".join(f"{k}: {v}." for k, v in fields_for(kind).items()) for kind in ("coast", "port", "rural", "urban")
    ]
    model = build_model(cfg, [*texts, "water urban grassland"])
    (root / "klip").mkdir()
    model.save_pretrained(root / "klip")
    return root


def _losses(run) -> list[float]:
    with open(run / "loss.csv", encoding="utf-8") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


def test_caption_decoder_overfits_and_is_scored_by_the_caption_metrics(world, capsys):
    root = world
    run = root / "cap_run"
    argv = ["finetune-caption", "--model", str(root / "klip"), "--data", str(root / "b" / "train.jsonl")]
    assert main([*argv, "--out", str(run), "--steps", "150", "--lr", "2e-3", "--batch-size", "8"]) == 0
    assert "fine-tuned the caption decoder for 150 steps" in capsys.readouterr().out
    losses = _losses(run)
    assert len(losses) == 150 and sum(losses[-10:]) / 10 < 0.1 * sum(losses[:5]) / 5
    assert (run / "loss.png").stat().st_size > 0 and (run / "final" / "model.safetensors").is_file()
    assert not (run / "checkpoint").exists()
    assert json.loads((run / "run.json").read_text())["settings"]["max_tokens"] == 100  # Table 5 caption budget

    out = root / "cap_pred"
    assert main(["caption", "--model", str(run), "--data", str(root / "b" / "train.jsonl"), "--out", str(out)]) == 0
    assert "caption cider" in capsys.readouterr().out
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    refs = {
        json.loads(line)["id"]: json.loads(line)["answer"]
        for line in (root / "b" / "train.jsonl").read_text().splitlines()
        if json.loads(line)["task"] == "caption"
    }
    assert {p["id"] for p in preds} == set(refs) and all(p["task"] == "caption" for p in preds)
    # the overfitted decoder writes its training captions back (beam search, the default)
    assert all(_norm(p["prediction"]) == _norm(refs[p["id"]]) for p in preds), preds[:2]
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    cap = metrics["tasks"]["caption"]
    assert cap["n"] == 8 and cap["bleu_4"] > 0.95 and cap["cider"] > 1.0
    assert (out / "examples.jsonl").is_file()  # the landform examples of the file were not this model's task

    # greedy decoding and sample records as input (references = the records' captions)
    out2 = root / "cap_rec"
    samples = root / "w" / "samples.jsonl"
    assert (
        main(["caption", "--model", str(run / "final"), "--data", str(samples), "--out", str(out2), "--num-beams", "1"])
        == 0
    )
    m2 = json.loads((out2 / "eval" / "metrics.json").read_text())["tasks"]["caption"]
    assert m2["n"] == 8 and m2["bleu_4"] > 0.9

    # save/load round trip: the reloaded decoder gives the same loss
    model = KlipDecoderModel.from_pretrained(run / "final")
    again = KlipDecoderModel.from_pretrained(run / "final")
    px = torch.randn(2, 1, 32, 32)
    ids, mask = model.tokenize(["terrain: water.", "roads: none."], 20)
    with torch.no_grad():
        assert torch.equal(model(px, ids, mask), again(px, ids, mask))


def test_vqa_decoder_learns_and_answers_are_scored_by_the_vqa_scorer(world, capsys):
    root = world
    run = root / "vqa_run"
    data = root / "b" / "train.jsonl"
    argv = ["finetune-caption", "--model", str(root / "klip"), "--data", str(data), "--out", str(run), "--task", "vqa"]
    assert main([*argv, "--steps", "100", "--lr", "2e-3", "--batch-size", "8"]) == 0
    losses = _losses(run)
    assert sum(losses[-10:]) / 10 < 0.3 * sum(losses[:5]) / 5
    model = KlipDecoderModel.from_pretrained(run / "final")
    assert model.task == "vqa" and model.settings["max_tokens"] == 35  # Table 5 VQA budget
    capsys.readouterr()

    out = root / "vqa_pred"
    assert main(["caption", "--model", str(run), "--data", str(data), "--out", str(out), "--num-beams", "1"]) == 0
    assert "landform_main top1" in capsys.readouterr().out
    preds = {json.loads(line)["id"]: json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()}
    examples = [json.loads(line) for line in data.read_text().splitlines()]
    vqa = [e for e in examples if e["task"].startswith("landform")]
    assert set(preds) == {e["id"] for e in vqa}
    tasks = json.loads((out / "eval" / "metrics.json").read_text())["tasks"]
    assert set(tasks) == {"landform_main", "landform_all", "landform_region"}  # caption examples left out
    # the registry's scorer counted exactly the answers that equal the reference
    main_rows = [e for e in vqa if e["task"] == "landform_main"]
    hits = sum(_norm(preds[e["id"]]["prediction"]) == _norm(e["answer"]) for e in main_rows)
    assert tasks["landform_main"]["top1"] == pytest.approx(hits / len(main_rows))
    assert tasks["landform_main"]["top1"] >= 0.75  # trained on these questions


def test_resume_after_interruption_continues_the_same_run(world, monkeypatch):
    from sarvlm.foundation.finetune_decoder import default_settings, finetune_decoder

    root = world
    data = root / "b" / "train.jsonl"
    s = default_settings("caption", lr=1e-3, batch_size=4, checkpoint_every=3)
    full = finetune_decoder(root / "klip", data, root / "r_full", steps=6, settings=s, log=lambda *_: None)

    calls = {"n": 0}
    real_step = torch.optim.AdamW.step

    def dying_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # killed during step 5: the checkpoint of step 3 is on disk
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        finetune_decoder(root / "klip", data, root / "r_cut", steps=6, settings=s)
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    assert (root / "r_cut" / "checkpoint" / "state.json").is_file() and not (root / "r_cut" / "final").exists()
    assert (
        main(["finetune-caption", "--model", str(root / "klip"), "--data", str(data), "--out", str(root / "r_cut")])
        == 2
    )
    resumed = finetune_decoder(root / "klip", data, root / "r_cut", steps=6, settings=s, resume=True)
    assert resumed.resumed_from == 3
    assert _losses(root / "r_cut") == _losses(full.run_dir)


def test_bad_input_fails_with_one_line(world, tmp_path, capsys):
    root = world
    klip = str(root / "klip")

    def err(argv: list[str]) -> str:
        assert main(argv) == 2
        e = capsys.readouterr().err.strip()
        assert e.startswith("sarvlm: error:") and "\n" not in e and "Traceback" not in e
        return e

    # sample records without captions
    bare = tmp_path / "bare.jsonl"
    write_samples(bare, [SampleRecord(id="nocap", image="x.tif", width=32, height=32)])
    assert "record 'nocap': no caption" in err(
        ["finetune-caption", "--model", klip, "--data", str(bare), "--out", str(tmp_path / "r1")]
    )
    # VQA examples without an answer
    rows = [json.loads(line) for line in (root / "b" / "train.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["task"] == "landform_main")
    row["messages"] = row["messages"][:1]
    row["images"] = ["w/images/s000.tif"]
    noans = root / "noans.jsonl"
    noans.write_text(json.dumps(row) + "\n")
    e = err(["finetune-caption", "--model", klip, "--data", str(noans), "--out", str(tmp_path / "r2"), "--task", "vqa"])
    assert "no answer" in e and row["id"] in e
    # wrong checkpoint architectures, both ways
    vit = tmp_path / "vit"
    vit.mkdir()
    (vit / "config.json").write_text(json.dumps({"model_type": "vit"}))
    (vit / "model.safetensors").write_bytes(b"")
    assert "wrong architecture 'vit'" in err(
        [
            "finetune-caption",
            "--model",
            str(vit),
            "--data",
            str(root / "b" / "train.jsonl"),
            "--out",
            str(tmp_path / "r3"),
        ]
    )
    e = err(["caption", "--model", klip, "--data", str(root / "b" / "train.jsonl"), "--out", str(tmp_path / "p1")])
    assert "wrong architecture 'sarvlm-klip'" in e and "finetune-caption" in e
    assert not (tmp_path / "p1").exists()  # nothing half-written
    assert "wrong architecture 'vit'" in err(
        ["caption", "--model", str(vit), "--data", str(root / "b" / "train.jsonl"), "--out", str(tmp_path / "p2")]
    )
    # sample records cannot train VQA; unknown VQA task list leaves nothing to train on
    e = err(
        [
            "finetune-caption",
            "--model",
            klip,
            "--data",
            str(root / "w" / "samples.jsonl"),
            "--out",
            str(tmp_path / "r4"),
            "--task",
            "vqa",
        ]
    )
    assert "carry no questions" in e
    e = err(
        [
            "finetune-caption",
            "--model",
            klip,
            "--data",
            str(root / "b" / "train.jsonl"),
            "--out",
            str(tmp_path / "r5"),
            "--task",
            "vqa",
            "--tasks",
            "count",
        ]
    )
    assert "no vqa examples" in e and "landform_main" in e
    e = err(["caption", "--model", klip, "--data", str(root / "b" / "train.jsonl"), "--out", str(tmp_path / "p3")])
    e = err(
        ["finetune-caption", "--model", klip, "--data", str(root / "b" / "train.jsonl"), "--out", str(tmp_path / "r7")]
        + ["--text-field", "concise"]
    )
    assert "no caption examples" in e and "style structured" in e
    assert "--lr must be positive" in err(
        ["finetune-caption", "--model", klip, "--data", str(bare), "--out", str(tmp_path / "r6"), "--lr", "0"]
    )
    for name in ("r1", "r2", "r3", "r4", "r5", "r6", "r7", "p3"):
        assert not (tmp_path / name).exists()


def test_characters_missing_from_the_pretrained_vocabulary_are_added(world, capsys):
    from sarvlm.core.record import Caption
    from sarvlm.foundation.model import KlipModel

    root = world
    klip = KlipModel.from_pretrained(root / "klip")
    unk = klip.tokenizer.unk_token_id
    # the from-scratch vocabulary comes from captions that spell numbers out: no digits
    assert unk in klip.tokenizer("17 ships", add_special_tokens=False)["input_ids"]
    rec = SampleRecord(
        id="odd", image="w/images/s000.tif", width=32, height=32, captions=[Caption(text="17 ships near pier ※3.")]
    )
    write_samples(root / "odd.jsonl", [rec])
    argv = ["finetune-caption", "--model", str(root / "klip"), "--data", str(root / "odd.jsonl")]
    assert main([*argv, "--out", str(root / "odd_run"), "--steps", "2", "--batch-size", "2"]) == 0
    assert "added 4 characters the pretrained vocabulary lacks: 1 3 7 ※" in capsys.readouterr().out
    run = json.loads((root / "odd_run" / "run.json").read_text())
    assert run["added_characters"] == ["1", "3", "7", "※"] and run["targets_with_unknown_tokens"] == 0
    dec = KlipDecoderModel.from_pretrained(root / "odd_run" / "final")
    ids = dec.tokenizer("17 ships", add_special_tokens=False)["input_ids"]
    assert dec.tokenizer.unk_token_id not in ids and dec.tokenizer.decode(ids) == "17 ships"
    # the pretrained rows moved with their tokens: the old words keep their embeddings
    old_emb = klip.text.bert.embeddings.word_embeddings.weight
    new_emb = dec.text_decoder.bert.embeddings.word_embeddings.weight
    for word in ("ships", "[DEC]", "[SEP]"):
        o, n = klip.tokenizer.convert_tokens_to_ids(word), dec.tokenizer.convert_tokens_to_ids(word)
        if word == "ships":  # trained for 2 steps: close, not equal
            assert torch.allclose(old_emb[o], new_emb[n], atol=0.05)
        else:
            assert n == dec.ids[word.strip("[]").lower()]
