"""`sarvlm ablate`: the Table 9 / Table 6 grid maps to the right stages and trainable parts, and
runs.json indexes the run directories."""

from __future__ import annotations

import json

import pytest
import torch

from sarvlm.cli.main import main
from sarvlm.core.errors import SarvlmError
from sarvlm.training.ablation import ABLATION_RUNS, RUN_NAMES, read_runs, run_ablation
from sarvlm.training.recipe import load_recipe
from sarvlm.training.stages import plan_stage
from test_training_data import make_dataset, make_priors

torch.set_num_threads(1)
QUICK = {"stage2.tasks": "count,dialogue", "stage1.logging_steps": 1, "stage2.logging_steps": 1}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("abl")
    data = make_dataset(root / "ds", n_samples=6)
    return root, data, make_priors(data, root / "priors")


def test_grid_names_match_the_evaluation_report():
    assert RUN_NAMES == (
        "stage2-only",
        "stage1+stage2",
        "stage2+tlm",
        "full",
        "fusion-sum",
        "fusion-concat",
        "fusion-tlm",
    )


@pytest.mark.parametrize("run", ABLATION_RUNS, ids=lambda r: r.name)
def test_each_row_trains_what_the_paper_row_means(run):
    from sarvlm.models.loading import load_model

    recipe = load_recipe("fusar-gpt", dict(run.overrides))
    assert recipe.fusion == run.fusion
    stages = run.stages or tuple(s.name for s in recipe.stages)
    assert ("stage1" in stages) == run.sft1 and "stage2" in stages
    model = load_model("tiny-qwen2.5-vl", settings={"fusion": recipe.fusion}, seed=0)[0]
    plans = {name: plan_stage(model, recipe.stage(name), recipe.fusion) for name in stages}
    has_fusion = [any("geo_fusion" in m for m in p.full_modules) for p in plans.values()]
    if run.fusion == "none":
        assert not any(has_fusion)
    else:
        assert any(has_fusion)  # the fusion module always trains somewhere (it starts as an identity)
    if "stage1" in plans:
        assert bool(plans["stage1"].lora_targets) == (run.fusion == "none")  # no TLM → Fig. 2's stage-1 LoRA
    assert plans["stage2"].lora_targets


def test_ablation_runs_and_index(world):
    root, data, priors = world
    out = root / "grid"
    result = run_ablation(
        "tiny-qwen2.5-vl",
        data,
        out,
        priors=priors,
        runs=["stage2-only", "stage2+tlm", "fusion-tlm"],
        overrides=QUICK,
        max_steps=2,
        batch_size=2,
        log=lambda _: None,
    )
    assert list(result) == ["stage2-only", "stage2+tlm", "fusion-tlm"]
    assert result["fusion-tlm"] == [out / "full"]
    runs = read_runs(out)
    assert [r["name"] for r in runs] == ["stage2-only", "stage2+tlm", "fusion-tlm"]
    by_name = {r["name"]: r for r in runs}
    assert by_name["fusion-tlm"]["alias_of"] == "full" and by_name["stage2-only"]["fusion"] == "none"
    for r in runs:
        assert (json.loads((root / "grid" / r["run_dir"] / "final" / "training.json").read_text()))["stages"]
        assert r["model"].endswith("/final")
    assert not (out / "stage2-only" / "stage1").exists()
    s2 = json.loads((out / "stage2+tlm" / "stage2" / "result.json").read_text())
    assert set(s2["trainable_by_part"]) == {"fusion", "lora:language_model"}
    full1 = json.loads((out / "full" / "stage1" / "result.json").read_text())
    assert set(full1["trainable_by_part"]) == {"fusion"}


def test_cli_seeds_and_bad_run(world, capsys):
    root, data, priors = world
    out = root / "seeds"
    argv = [
        "ablate",
        "--model",
        "tiny-qwen2.5-vl",
        "--data",
        str(data),
        "--priors",
        str(priors),
        "--out",
        str(out),
        "--runs",
        "stage2-only",
        "--seeds",
        "2",
        "--max-steps",
        "1",
        "--batch-size",
        "2",
    ]
    argv += [x for k, v in QUICK.items() for x in ("--set", f"{k}={v}")]
    assert main(argv) == 0
    runs = read_runs(out)
    assert [(r["name"], r["seed"]) for r in runs] == [("stage2-only", 0), ("stage2-only", 1)]
    assert (out / "stage2-only-seed1" / "final" / "model.safetensors").is_file()
    capsys.readouterr()
    assert main(["ablate", "--model", "tiny-qwen2.5-vl", "--data", str(data), "--out", str(out), "--runs", "nope"]) == 2
    assert "unknown ablation run 'nope'" in capsys.readouterr().err
    with pytest.raises(SarvlmError, match="at least 1"):
        run_ablation("tiny-qwen2.5-vl", data, out, seeds=0)
