"""Retrieval metrics (hand-computed cases), ITC+ITM re-rank, zero-shot, probes, and their CLI verbs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _foundation_data import fields_for, make_world
from sarvlm.cli.main import main
from sarvlm.core.errors import InputError
from sarvlm.foundation.config import load_config
from sarvlm.foundation.model import build_model
from sarvlm.foundation.probe import knn_scores, linear_probe, probe
from sarvlm.foundation.retrieval import recall_at_k, retrieve
from sarvlm.foundation.zeroshot import parse_classes, topk_scores

torch.set_num_threads(1)


def test_recall_hand_computed_two_texts_per_image():
    # 3 images, 4 texts; image 0 owns texts 0 and 1, image 1 text 2, image 2 text 3.
    t2i = [0, 0, 1, 2]
    s = np.array(
        [
            [0.1, 0.8, 0.9, 0.0],  # image 0: best of its texts (text 1) ranks 2nd -> hit at 5, miss at 1
            [0.0, 0.0, 0.5, 0.4],  # image 1: its text 2 ranks 1st
            [0.3, 0.2, 0.9, 0.1],  # image 2: its text 3 ranks 4th (last)
        ]
    )
    m = recall_at_k(s, s.T, t2i, ks=(1, 2, 3))
    assert m["txt_r1"] == pytest.approx(100 / 3)  # image 1 only
    assert m["txt_r2"] == pytest.approx(200 / 3)  # images 0, 1
    assert m["txt_r3"] == pytest.approx(200 / 3)  # image 2's text ranks 4th
    # text -> image: text 0 -> image 2 scores 0.3 > 0.1 -> rank 2; text 1 rank 1; text 2: images 0 and 2 tie
    # at 0.9 -> image 1 (0.5) ranks 3rd; text 3 -> image 1 scores 0.4 > 0.1 -> rank 2.
    assert m["img_r1"] == pytest.approx(25.0)
    assert m["img_r2"] == pytest.approx(75.0)
    assert m["img_r3"] == pytest.approx(100.0)
    assert m["r_mean"] == pytest.approx((m["txt_r_mean"] + m["img_r_mean"]) / 2)
    assert m["image_to_text"]["R@1"] == m["txt_r1"] and m["text_to_image"]["R@1"] == m["img_r1"]


def test_recall_ties_count_against_truth_and_matches_eval_module():
    const = np.zeros((5, 5))
    assert recall_at_k(const, const, range(5), ks=(1,))["txt_r1"] == 0.0
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(20, 20))
    ours = recall_at_k(sim, sim.T, range(20))
    from sarvlm.metrics.retrieval import retrieval_scores

    theirs = retrieval_scores(sim, list(range(20)))
    for key in ("txt_r1", "txt_r5", "txt_r10", "img_r1", "img_r5", "img_r10", "r_mean"):
        assert ours[key] == pytest.approx(theirs[key]), key


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("klip")
    data = make_world(root / "w", n=12)
    torch.manual_seed(0)
    cfg = load_config("tiny-klip", {"vision.image_size": 32, "queue_size": 64})
    texts = [
        "\n".join(f"{k}: {v}." for k, v in fields_for(kind).items()) for kind in ("coast", "port", "rural", "urban")
    ]
    model = build_model(cfg, texts)
    (root / "model").mkdir()
    model.save_pretrained(root / "model")
    return root, data, model


def test_itm_rerank_with_all_candidates_equals_brute_force(tiny_run):
    root, data, model = tiny_run
    from sarvlm.foundation.data import load_images, load_items

    items = load_items(data)
    images = load_images(items, 32, 1, model.config.db_window)
    texts = [it.text() for it in items]
    n = len(items)
    res = retrieve(model.eval(), images, texts, list(range(n)), k=n, chunk=16, progress=False)
    assert res["itm_pairs"] == n * n
    with torch.no_grad():
        emb, _ = model.encode_image(images)
        ids, att = model.tokenize(texts)
        full = np.zeros((n, n))
        for i in range(n):
            logits = model.itm_logits(ids, att, emb[i : i + 1].expand(n, -1, -1))
            full[i] = (logits[:, 1] - logits[:, 0]).numpy()
    brute = recall_at_k(full, full.T, list(range(n)))
    for key in ("txt_r1", "txt_r5", "img_r1", "img_r5", "r_mean"):
        assert res["itc+itm"][key] == pytest.approx(brute[key]), key
    small = retrieve(model, images, texts, list(range(n)), k=2, chunk=16, progress=False)
    assert small["itm_pairs"] <= 2 * (n + n)


def test_topk_scores_and_class_parsing():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3], [0.5, 0.4, 0.1]])
    labels = np.array([0, 1, 1, 2])
    m = topk_scores(scores, labels, ["a", "b", "c"])
    assert m["top1"] == pytest.approx(50.0)  # rows 0 and 2
    assert m["top3"] == pytest.approx(100.0)
    assert m["confusion"]["matrix"] == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]
    assert m["per_class"][1] == {"class": "b", "support": 2, "recall": 0.5, "precision": 1.0}
    assert parse_classes("port, coast") == ["port", "coast"]
    for bad, msg in (("", "non-empty"), ("port,,coast", "non-empty"), ("port,Port", "twice"), ("port", "two")):
        with pytest.raises(InputError, match=msg):
            parse_classes(bad)


def test_probes_separate_separable_features():
    g = torch.Generator().manual_seed(0)
    y = np.repeat(np.arange(3), 20)
    x = torch.randn(60, 8, generator=g) * 0.3 + torch.eye(3, 8)[torch.as_tensor(y)] * 3
    tr, te = np.arange(0, 60, 2), np.arange(1, 60, 2)
    assert (linear_probe(x[tr], y[tr], x[te], 3).argmax(1) == y[te]).all()
    assert (knn_scores(x[tr], y[tr], x[te], 3, k=5).argmax(1) == y[te]).all()
    res = probe(x, [str(v) for v in y], [None] * 60)
    assert res["linear"]["top1"] == 100.0 and res["knn"]["top1"] == 100.0 and res["chance_top1"] < 50
    # labels that carry no information about the features stay near chance
    noise = probe(torch.randn(60, 8, generator=g), [str(v) for v in y], [None] * 60)
    assert noise["linear"]["top1"] < 70


def test_task_verbs_write_reports_and_refuse_bad_input(tiny_run, capsys):
    root, data, _ = tiny_run
    model = str(root / "model")
    assert main(["retrieve", "--model", model, "--data", str(data), "--out", str(root / "ret"), "--k", "4"]) == 0
    m = json.loads((root / "ret" / "metrics.json").read_text())
    assert np.load(root / "ret" / "similarity.npy").shape == (12, 12)
    assert {"itc", "itc+itm", "chance"} <= m.keys() and m["chance"]["img_r1"] == pytest.approx(100 / 12)
    args = ["--model", model, "--data", str(data), "--classes", "coast,port,rural,urban"]
    assert main(["zeroshot", *args, "--out", str(root / "zs")]) == 0
    zs = json.loads((root / "zs" / "metrics.json").read_text())
    assert zs["n"] == 12 and sum(map(sum, zs["confusion"]["matrix"])) == 12
    assert (root / "zs" / "confusion.png").stat().st_size > 1000 and (root / "zs" / "per_class.csv").is_file()
    assert main(["probe", "--model", model, "--data", str(data), "--out", str(root / "pr")]) == 0
    pr = json.loads((root / "pr" / "metrics.json").read_text())
    assert pr["train"] + pr["test"] == 12
    capsys.readouterr()

    def err(argv):
        assert main(argv) == 2
        e = capsys.readouterr().err
        assert e.startswith("sarvlm: error: ") and e.count("\n") == 1
        return e

    assert "not among --classes" in err(
        ["zeroshot", "--model", model, "--data", str(data), "--classes", "coast,port", "--out", str(root / "zs2")]
    )
    assert not (root / "zs2").exists()
    assert "twice" in err(["zeroshot", *args[:4], "--classes", "a,b,A", "--out", str(root / "zs3")])
    assert "not a KLIP checkpoint" in err(
        ["retrieve", "--model", str(root / "w"), "--data", str(data), "--out", str(root / "r2")]
    )
    assert "not empty" in err(["probe", "--model", model, "--data", str(data), "--out", str(root / "pr")])


def test_export_backbone_loads_as_plain_vit_and_segmentation_head_scores(tiny_run, capsys):
    from transformers import ViTModel

    root, data, model = tiny_run
    out = root / "backbone"
    argv = ["export-backbone", "--model", str(root / "model"), "--out", str(out), "--seg-data", str(data)]
    assert main([*argv, "--seg-steps", "60"]) == 0
    vit = ViTModel.from_pretrained(out, add_pooling_layer=False)
    px = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(
            vit(pixel_values=px).last_hidden_state, model.visual_encoder(pixel_values=px).last_hidden_state
        )
    hand = json.loads((out / "handoff.json").read_text())
    assert hand["output"]["patch_grid"] == [2, 2] and hand["output"]["last_hidden_state"] == [
        "B",
        5,
        model.config.vision.hidden_size,
    ]
    seg = json.loads((out / "segmentation.json").read_text())
    assert 0.0 <= seg["miou"] <= seg["oa"] <= 1.0 and seg["train"] + seg["test"] == 12
    assert set(seg["iou"]) == {"water", "urban", "grassland"}
    # the halves differ in class and backscatter: a linear head on patch tokens beats the majority class
    assert seg["oa"] > seg["majority_class_oa"]
    assert "OA" in capsys.readouterr().out
