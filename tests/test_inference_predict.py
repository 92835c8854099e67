"""predict (batched, resumable, atomic, deterministic, priors per sample) and ask, on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sarvlm.cli.main import main as cli_main
from sarvlm.core.errors import SarvlmError
from sarvlm.core.example import InstructionExample, Message, read_predictions, write_jsonl
from sarvlm.inference.ask import ask
from sarvlm.inference.generate import GenerationOptions, Query, generate_batch
from sarvlm.inference.predict import PARTIAL_SUFFIX, predict
from sarvlm.models.loading import fusion_module, load_model, save_model
from sarvlm.priors.prior_grid import PriorGrid

TASKS = ["count", "grid", "count", "detect", "caption", "count", "grid"]


def _grid(seed: int, s: int = 16, valid: bool = True) -> PriorGrid:
    rng = np.random.default_rng(seed)
    return PriorGrid(
        lon=np.zeros(s),
        lat=np.zeros(s),
        x=np.zeros(s),
        y=np.zeros(s),
        positions=rng.random((s, 2)).astype(np.float32),
        vectors=rng.normal(size=(s, 64)).astype(np.float32),
        valid=np.full(s, valid),
        year=2021,
    )


class FakeCache:
    """Duck-typed PriorCache: ``in`` and ``get`` (None = explicit no prior)."""

    def __init__(self, grids):
        self.grids = grids

    def __contains__(self, sample_id):
        return sample_id in self.grids

    def get(self, sample_id):
        return self.grids[sample_id]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "images").mkdir()
    examples = []
    for i, task in enumerate(TASKS):
        size = (112, 112) if i % 2 else (84, 140)
        Image.fromarray((np.random.default_rng(i).random(size) * 255).astype(np.uint8)).save(
            root / "images" / f"s{i}.png"
        )
        examples.append(
            InstructionExample(
                id=f"ex{i}",
                sample_id=f"s{i}",
                task=task,
                images=[f"images/s{i}.png"],
                width=size[1],
                height=size[0],
                coords="qwen2.5",
                params={"category": "ship"},
                messages=[
                    Message(role="user", content=f"<image>\nQuestion {i} about ships?"),
                    Message(role="assistant", content="2"),
                ],
            )
        )
    write_jsonl(root / "test.jsonl", examples)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model whose TLM is not the identity, so priors change answers."""
    model, processor = load_model("tiny-qwen2.5-vl")
    with torch.no_grad():
        for p in fusion_module(model).parameters():
            p.normal_(0, 1.0, generator=torch.Generator().manual_seed(p.numel()))
    out = tmp_path_factory.mktemp("model") / "tlm"
    save_model(model, processor, out)
    return out, (model, processor)


def test_predict_writes_rows_in_order_and_is_deterministic(dataset, trained, tmp_path):
    path, loaded = trained
    first = predict(path, dataset / "test.jsonl", tmp_path / "a.jsonl", batch_size=3, max_new_tokens=4)
    assert (first.total, first.generated, first.skipped) == (7, 7, 0)
    rows = list(read_predictions(tmp_path / "a.jsonl"))
    assert [r.id for r in rows] == [f"ex{i}" for i in range(7)]
    assert [r.task for r in rows] == TASKS
    assert all(isinstance(r.prediction, str) for r in rows)
    assert not (tmp_path / ("a.jsonl" + PARTIAL_SUFFIX)).exists()
    predict(loaded, dataset / "test.jsonl", tmp_path / "b.jsonl", batch_size=2, max_new_tokens=4)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    line = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])
    assert list(line) == ["id", "task", "prediction", "parsed", "prior"]


def test_batched_generation_equals_one_by_one(dataset, trained):
    _, (model, processor) = trained
    queries = []
    for i in range(3):
        img = processor.load_image(dataset / "images" / f"s{i}.png")
        queries.append(
            Query(
                messages=[{"role": "user", "content": f"<image>\nQuestion {i}" + "?" * i}],
                images=[img],
                prior=_grid(i) if i != 1 else None,
            )
        )
    together = generate_batch(model, processor, queries, 5)
    alone = [generate_batch(model, processor, [q], 5)[0] for q in queries]
    assert together == alone


def test_predict_resumes_and_skips_done_ids(dataset, trained, tmp_path, monkeypatch):
    path, loaded = trained
    out = tmp_path / "p.jsonl"
    predict(loaded, dataset / "test.jsonl", out, limit=3, max_new_tokens=3)
    assert len(list(read_predictions(out))) == 3
    # Simulate a crash after one more batch: a journal with one complete row and a torn line.
    calls = []
    import sarvlm.inference.predict as mod

    real = mod.generate_batch

    def counting(model, processor, queries, budget, options):
        calls.append(len(queries))
        return real(model, processor, queries, budget, options)

    monkeypatch.setattr(mod, "generate_batch", counting)
    journal = out.with_name(out.name + PARTIAL_SUFFIX)
    journal.write_text(
        '{"id": "ex3", "task": "detect", "prediction": "from the journal", "parsed": null}\n{"id": "ex4", "ta'
    )
    summary = predict(loaded, dataset / "test.jsonl", out, max_new_tokens=3)
    assert (summary.generated, summary.skipped) == (3, 4) and sum(calls) == 3
    rows = {r.id: r for r in read_predictions(out)}
    assert list(rows) == [f"ex{i}" for i in range(7)] and rows["ex3"].prediction == "from the journal"
    assert not journal.exists()
    calls.clear()
    assert predict(loaded, dataset / "test.jsonl", out).generated == 0 and not calls  # nothing left, no model needed


def test_predict_uses_priors_per_sample(dataset, trained, tmp_path, monkeypatch):
    _, loaded = trained
    import sarvlm.inference.predict as mod

    grids = {f"s{i}": _grid(i) for i in range(7)}
    grids["s2"] = None  # explicit "no prior" entry
    monkeypatch.setattr(mod, "_open_priors", lambda d: FakeCache(grids) if d else None)
    predict(loaded, dataset / "test.jsonl", tmp_path / "with.jsonl", priors_dir="cache", max_new_tokens=6)
    predict(loaded, dataset / "test.jsonl", tmp_path / "without.jsonl", max_new_tokens=6)
    with_p = {r.id: r.prediction for r in read_predictions(tmp_path / "with.jsonl")}
    without = {r.id: r.prediction for r in read_predictions(tmp_path / "without.jsonl")}
    assert with_p["ex2"] == without["ex2"]  # no prior: same answer
    assert sum(with_p[k] != without[k] for k in with_p) >= 3  # the prior changes answers
    del grids["s5"]
    with pytest.raises(SarvlmError, match="'s5' is not in the prior cache"):
        predict(loaded, dataset / "test.jsonl", tmp_path / "missing.jsonl", priors_dir="cache", max_new_tokens=2)
    summary = predict(
        loaded,
        dataset / "test.jsonl",
        tmp_path / "allowed.jsonl",
        priors_dir="cache",
        max_new_tokens=2,
        allow_missing_priors=True,
    )
    assert summary.generated == 7


def test_predict_parses_answers(dataset, trained, tmp_path, monkeypatch):
    _, loaded = trained
    import sarvlm.inference.generate as gen
    import sarvlm.inference.predict as mod

    monkeypatch.setattr(
        mod, "generate_batch", lambda m, p, queries, budget, options: ["There are 3 ships."] * len(queries)
    )
    predict(loaded, dataset / "test.jsonl", tmp_path / "parsed.jsonl")
    rows = {r.id: r for r in read_predictions(tmp_path / "parsed.jsonl")}
    assert rows["ex0"].parsed == 3
    assert gen.GenerationOptions().budget("detect") > gen.GenerationOptions().budget("count")
    assert GenerationOptions(max_new_tokens={"count": 2}).budget("count") == 2


def test_predict_bad_input(dataset, tmp_path):
    (tmp_path / "dup.jsonl").write_text(
        (dataset / "test.jsonl").read_text().splitlines()[0]
        + "\n"
        + (dataset / "test.jsonl").read_text().splitlines()[0]
        + "\n"
    )
    with pytest.raises(SarvlmError, match="'ex0' appears twice"):
        predict("tiny-qwen2.5-vl", tmp_path / "dup.jsonl", tmp_path / "o.jsonl")
    line = json.loads((dataset / "test.jsonl").read_text().splitlines()[0])
    line["images"] = ["images/nope.png"]
    (tmp_path / "noimg.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(SarvlmError, match="no such file"):
        predict("tiny-qwen2.5-vl", tmp_path / "noimg.jsonl", tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()
    with pytest.raises(SarvlmError, match="no such file"):
        predict("tiny-qwen2.5-vl", tmp_path / "absent.jsonl", tmp_path / "o.jsonl")


def test_cli_predict_and_ask(dataset, trained, tmp_path, capsys):
    path, _ = trained
    out = tmp_path / "cli.jsonl"
    assert (
        cli_main(
            [
                "predict",
                "--model",
                str(path),
                "--data",
                str(dataset / "test.jsonl"),
                "--out",
                str(out),
                "--limit",
                "2",
                "--max-new-tokens",
                "3",
            ]
        )
        == 0
    )
    assert len(out.read_text().splitlines()) == 2
    image = dataset / "images" / "s0.png"
    assert (
        cli_main(
            [
                "ask",
                "--model",
                str(path),
                str(image),
                "How many ships?",
                "--no-prior",
                "--json",
                "--task",
                "count",
                "--max-new-tokens",
                "3",
            ]
        )
        == 0
    )
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(shown) == {"answer", "task", "parsed", "prior", "preprocessed"} and shown["prior"]["valid_nodes"] == 0
    assert shown["prior"]["used"] is False and shown["prior"]["reason"]
    assert cli_main(["ask", "--model", str(path), str(image), "How many?", "--bbox", "1,2,3"]) == 2
    assert "--bbox must be 4 comma-separated numbers" in capsys.readouterr().err
    assert cli_main(["ask", "--model", str(tmp_path / "nomodel"), str(image), "How many?"]) == 2
    assert cli_main(["ask", "--model", str(path), str(image), "How many?", "--bbox", "1,2,3,4", "--year", "2021"]) == 2
    assert "no prior source" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "ask",
                "--model",
                str(path),
                str(image),
                "How many?",
                "--bbox",
                "1,2,3,4",
                "--prior-source",
                "aef-cog:/nowhere",
            ]
        )
        == 2
    )
    assert "--bbox needs --year" in capsys.readouterr().err


def test_ask_with_optical_and_prior(dataset, trained, monkeypatch):
    _, loaded = trained
    import sarvlm.inference.ask as mod

    monkeypatch.setattr(mod, "sample_prior", lambda *a, **k: _grid(3))
    sar, optical = dataset / "images" / "s0.png", dataset / "images" / "s1.png"
    opts = GenerationOptions(max_new_tokens=5)
    with_prior = ask(loaded, sar, "How many ships?", optical=optical, bbox=[1, 2, 3, 4], year=2021, options=opts)
    without = ask(loaded, sar, "How many ships?", optical=optical, no_prior=True, options=opts)
    assert with_prior.prior_valid == 16 and with_prior.prior_year == 2021 and without.prior_valid == 0
    assert with_prior.answer != without.answer
