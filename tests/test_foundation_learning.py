"""KLIP learns (not just runs): pooling, ITC below its chance value, the task registry entries,
the one-matrix retrieval, the ratio bootstrap and the foundation demo's numbers and report."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from _foundation_data import make_world
from sarvlm.foundation.config import load_config
from sarvlm.foundation.model import build_model, pool_tokens

torch.set_num_threads(1)

TEXTS = [
    "Terrain: The terrain is classified as mainly water with grassland. Water: Open water covers the scene.",
    "Terrain: The terrain is classified as mainly urban with grassland. Water: There is no open water.",
    "Terrain: The terrain is classified as mainly farmland with forest. Buildings: There are no buildings.",
]


def test_mean_pooling_separates_texts_that_cls_does_not_at_init():
    # the measured cause of the collapse: a from-scratch text tower gives every text the same [CLS] output
    torch.manual_seed(0)
    cls_model = build_model(load_config("tiny-klip", {"text_pooling": "cls"}), TEXTS * 4).eval()
    torch.manual_seed(0)
    mean_model = build_model(load_config("tiny-klip", {"text_pooling": "mean"}), TEXTS * 4).eval()
    with torch.no_grad():
        ids, att = cls_model.tokenize(TEXTS)
        f_cls = cls_model.encode_text(ids, att)
        f_mean = mean_model.encode_text(ids, att)
    off = ~torch.eye(3, dtype=torch.bool)
    assert float((f_cls @ f_cls.T)[off].min()) > 0.999
    assert float((f_mean @ f_mean.T)[off].max()) < 0.99


def test_pool_tokens_ignores_padding():
    h = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]])
    att = torch.tensor([[1, 1, 0]])
    assert torch.equal(pool_tokens(h, att, "mean"), torch.tensor([[2.0, 1.0]]))
    assert torch.equal(pool_tokens(h, att, "cls"), torch.tensor([[1.0, 0.0]]))


def test_itc_loss_falls_below_its_chance_value_within_a_few_dozen_steps(tmp_path):
    from sarvlm.foundation.pretrain import pretrain

    data = make_world(tmp_path / "w", n=16)
    cfg = load_config("tiny-klip", {"vision.image_size": 32, "queue_size": 64})
    pretrain(cfg, data, tmp_path / "run", steps=40, seed=0, log=lambda *_: None)
    with open(tmp_path / "run" / "loss.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    chance = math.log(cfg.train.batch_size + cfg.queue_size)  # uniform over batch + queue: ln 72 = 4.28
    first = float(np.mean([float(r["itc"]) for r in rows[10:15]]))  # right after warm-up, queue filled
    last = float(np.mean([float(r["itc"]) for r in rows[-8:]]))
    assert first > chance - 0.3  # starts at chance ...
    assert last < chance - 0.5  # ... and learns (measured 3.5 after 40 steps; 4 kinds among 72 entries allow ~2.9)


# ---- task registry ----------------------------------------------------------------------------
def test_retrieval_and_zeroshot_are_registered_tasks_with_named_metrics():
    from sarvlm.core.example import InstructionExample
    from sarvlm.tasks.registry import TASKS, parse_prediction, task_problems
    from sarvlm.tasks.spec import Scored, ScoreOptions

    for name in ("retrieval", "zeroshot"):
        assert name in TASKS and not task_problems(TASKS[name]) and TASKS[name].generator is None
    assert {"txt_r1", "img_r10", "r_mean"} <= set(TASKS["retrieval"].metrics)
    assert parse_prediction("retrieval", "t3, t1\nt7, t3") == ["t3", "t1", "t7"]

    def ex(task, answer, direction=None):
        params = {"direction": direction} if direction else {}
        return InstructionExample(
            id=f"e{answer}{direction}", sample_id="s", images=[], task=task, messages=[], answer=answer, params=params
        )

    rows = [
        Scored(ex("retrieval", "a", "i2t"), None, ["a", "b"]),  # rank 0
        Scored(ex("retrieval", "b", "i2t"), None, ["a", "c", "d", "e", "f", "b"]),  # rank 5: R@10 only
        Scored(ex("retrieval", "x", "t2i"), None, ["y", "x"]),  # rank 1
        Scored(ex("retrieval", "z", "t2i"), None, None),  # no answer: miss
    ]
    m = TASKS["retrieval"].scorer(rows, ScoreOptions()).metrics
    assert (m["txt_r1"], m["txt_r5"], m["txt_r10"]) == (50.0, 50.0, 100.0)
    assert (m["img_r1"], m["img_r5"], m["img_r10"]) == (0.0, 50.0, 50.0)
    assert m["r_mean"] == pytest.approx(((50 + 50 + 100) / 3 + (0 + 50 + 50) / 3) / 2)
    z = [
        Scored(ex("zeroshot", "port"), None, ["Port", "coast"]),
        Scored(ex("zeroshot", "river"), None, ["coast", "rural", "river"]),
        Scored(ex("zeroshot", "rural"), None, ["coast", "port", "airport", "rural"]),
    ]
    zm = TASKS["zeroshot"].scorer(z, ScoreOptions()).metrics
    assert zm == {"n": 3, "top1": pytest.approx(1 / 3), "top3": pytest.approx(2 / 3)}


# ---- retrieval keeps one matrix ---------------------------------------------------------------
def test_reranked_recall_from_overrides_equals_dense_reranked_matrices():
    from sarvlm.foundation.retrieval import ScoreRows, recall_at_k

    rng = np.random.default_rng(0)
    n_img, n_txt, k = 7, 14, 3
    sim = rng.normal(size=(n_img, n_txt)).astype(np.float32)
    t2i = np.repeat(np.arange(n_img), 2)
    cand_i = np.argsort(-sim, axis=1)[:, :k]
    cand_t = np.argsort(-sim.T, axis=1)[:, :k]
    s_i = (100 + rng.normal(size=(n_img, k))).astype(np.float32)
    s_t = (100 + rng.normal(size=(n_txt, k))).astype(np.float32)
    dense_i, dense_t = sim.copy(), sim.T.copy()
    np.put_along_axis(dense_i, cand_i, s_i, axis=1)
    np.put_along_axis(dense_t, cand_t, s_t, axis=1)
    want = recall_at_k(dense_i, dense_t, t2i)
    got = recall_at_k(ScoreRows(sim, cand_i, s_i), ScoreRows(sim.T, cand_t, s_t), t2i, chunk=3)
    assert got == want
    assert recall_at_k(sim, sim.T, t2i, chunk=2) == recall_at_k(sim.copy(), sim.T.copy(), t2i)


def test_itc_matrix_writes_into_a_memmap(tmp_path):
    from sarvlm.foundation.retrieval import itc_matrix

    a = torch.nn.functional.normalize(torch.randn(9, 4), dim=1)
    b = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    mm = np.lib.format.open_memmap(tmp_path / "s.npy", mode="w+", dtype=np.float32, shape=(9, 5))
    out = itc_matrix(a, b, chunk=4, out=mm)
    assert out is mm
    mm.flush()
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), (a @ b.T).numpy(), rtol=1e-6, atol=1e-6)


# ---- intervals ----------------------------------------------------------------------------------
def test_bootstrap_ratio_value_interval_and_determinism():
    from sarvlm.demo.decision import bootstrap_ratio

    num = [[1, 0, 1, 0], [1, 1, 0, 0]]
    den = [[1, 1, 1, 0], [1, 1, 1, 1]]
    r = bootstrap_ratio(num, den, resamples=2000)
    assert r.diff == pytest.approx((2 / 3 + 2 / 4) / 2)
    assert 0.0 <= r.low <= r.diff <= r.high <= 1.0
    assert bootstrap_ratio(num, den, resamples=2000) == r
    same = bootstrap_ratio([[1, 1, 1]] * 3, [[1, 1, 1]] * 3, resamples=500)
    assert (same.low, same.diff, same.high) == (1.0, 1.0, 1.0)


# ---- the foundation demo ----------------------------------------------------------------------
def _fake_runs(n_test: int, seeds, better: bool):
    rng = np.random.default_rng(1)
    out = {}
    for s in seeds:
        p = 0.6 if better else 0.2
        hits = {k: (rng.random(2 * n_test) < p).tolist() for k in ("r1", "r5", "r10")}
        out[s] = {
            "retrieval": {k: 10.0 for k in ("txt_r1", "txt_r5", "txt_r10", "img_r1", "img_r5", "img_r10", "r_mean")},
            "retrieval_itc": {"txt_r1": 1.0, "txt_r5": 1.0, "txt_r10": 1.0, "r_mean": 1.0},
            "retrieval_hits": hits,
            "retrieval_itc_hits": hits,
            "zeroshot_hits": (rng.random(n_test) < p).tolist(),
            "zeroshot_names_hits": (rng.random(n_test) < 0.2).tolist(),
            "zeroshot_landcover_hits": (rng.random(n_test) < p).tolist(),
            "probe_hits": (rng.random(n_test) < p).tolist(),
            "final_itc": 2.0,
        }
    return out


def test_foundation_summary_report_and_plot_from_raw_hits(tmp_path):
    from types import SimpleNamespace

    from sarvlm.demo.foundation import FoundationDemoConfig, foundation_report_section, plot_foundation, summarise

    cfg = FoundationDemoConfig(seeds=(0, 1, 2))
    water = SimpleNamespace(meta={"landcover_fractions": {"water": 0.7, "urban": 0.3}})
    urban = SimpleNamespace(meta={"landcover_fractions": {"water": 0.2, "urban": 0.8}})
    kinds = ("port", "port", "coast", "river", "rural", "airport")
    test_items = [SimpleNamespace(label=k, record=water if k in ("coast", "river") else urban) for k in kinds] * 5
    train_items = [SimpleNamespace(label="port")] * 10 + [SimpleNamespace(label="coast")] * 5
    per_run = {"plain": _fake_runs(30, cfg.seeds, False), "scio": _fake_runs(30, cfg.seeds, True)}
    screening = {
        s: {
            "flagged": [True, True, False, False] * 10,
            "corrupted": [True, False, False, False] * 10,
            "itc_evidence": [3.0, 2.0, 1.0, 0.0] * 10,  # corrupted fragments always rank first: AUC 1
            "itm_evidence": [0.0, 0.0, 0.0, 0.0] * 10,  # all tied: AUC 0.5
            "alt_itc_evidence": [0.0, 1.0, 1.0, 1.0] * 10,  # corrupted always ranks last: AUC 0
            "alt_itm_evidence": [2.0, 1.0, 1.0, 1.0] * 10,
        }
        for s in cfg.seeds
    }
    res = summarise(cfg, per_run, screening, test_items, train_items, load_config("tiny-klip-fragments"))
    assert res["chance"]["r1"] == pytest.approx(100 / 30) and res["chance"]["probe_majority"] == pytest.approx(100 / 3)
    assert res["chance"]["itc_loss"] == pytest.approx(math.log(64 + 8))
    assert res["chance"]["landcover_majority"] == pytest.approx(100 * 4 / 6)
    assert res["screening"]["precision"]["mean"] == pytest.approx(0.5)
    assert res["screening"]["recall"]["mean"] == pytest.approx(1.0)
    assert res["screening"]["chance_precision"] == pytest.approx(0.25)
    assert res["screening"]["auc_itc"] == [1.0] * 3 and res["screening"]["auc_itm"] == [0.5] * 3
    assert res["screening"]["auc_alt_itc"] == [0.0] * 3 and res["screening"]["auc_alt_itm"] == [1.0] * 3
    assert res["screening"]["screened_at_step"] == round(cfg.steps * load_config("tiny-klip-fragments").scio.phases[0])
    assert res["scio_vs_plain"]["zeroshot_top1"]["verdict"] == "gain"
    md = foundation_report_section(res)
    assert (
        "| zero-shot scene top-1 (prompts in the captions' words) |" in md
        and "| zero-shot scene top-1 (bare class names, default templates) |" in md
        and "| zero-shot dominant land cover top-1 |" in md
        and "precision 50.0" in md
        and "(gain)" in md
    )
    plot_foundation(res, tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_foundation_demo_end_to_end_tiny(tmp_path):
    from sarvlm.demo.foundation import FoundationDemoConfig, run_foundation_demo

    cfg = FoundationDemoConfig(
        name="test",
        train_scenes=16,
        test_scenes=10,
        scene_size=64,
        steps=9,
        seeds=(0, 1),
        retrieval_k=4,
        overrides={"vision.image_size": 32},
    )
    res = run_foundation_demo(tmp_path / "d", cfg, log=lambda *_: None)
    out = Path(tmp_path / "d")
    for name in ("foundation.json", "foundation.md", "foundation.png"):
        assert (out / name).is_file()
    assert (out / "runs" / "scio_s1" / "scio" / "fragments.jsonl").is_file()
    assert res["screening"]["fragments_per_seed"] == 16 * 8
    assert 0 < res["screening"]["chance_precision"] < 1  # the training world's captions carry recorded corruptions
    assert set(res["arms"]) == {"plain", "scio"} and res["test_images"] == 10


def test_demo_foundation_flag_refuses_a_single_seed(tmp_path, capsys):
    from sarvlm.cli.main import main

    assert main(["demo", "--foundation", "--seeds", "1", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "--seeds >= 2" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()
