"""End to end on a tiny model: both FUSAR-GPT stages run and the loss falls, only the intended
parameters change at each stage boundary, runs are deterministic, the run directory is guarded,
and the final model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sarvlm.cli.main import main
from sarvlm.core.errors import SarvlmError
from sarvlm.training.recipe import apply_common_overrides, load_recipe
from sarvlm.training.run_dir import prepare_run_dir
from sarvlm.training.stages import module_part
from sarvlm.training.trainer import apply_stage_result, train
from test_training_data import make_dataset, make_priors

torch.set_num_threads(1)

MODEL = "tiny-qwen2.5-vl"
STEPS = 6


def fusar_recipe(steps: int = STEPS):
    recipe = load_recipe(
        "fusar-gpt",
        {
            "stage1.logging_steps": 1,
            "stage2.logging_steps": 1,
            "stage1.lr": 1e-2,
            "stage2.lr": 1e-2,
            "stage2.warmup_ratio": 0.0,
            "stage1.warmup_ratio": 0.0,
            "stage2.tasks": "count,dialogue",  # the tiny dataset's instruction tasks
        },
    )
    return apply_common_overrides(recipe, max_steps=steps, batch_size=4)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = make_dataset(root / "ds")
    priors = make_priors(data, root / "priors")
    return root, data, priors


@pytest.fixture(scope="module")
def two_runs(world):
    root, data, priors = world
    runs = [
        train(fusar_recipe(), model=MODEL, data=data, priors=priors, out=root / f"run{k}", log=lambda _: None)
        for k in range(2)
    ]
    return runs


def _load(path_or_name, **kw):
    from sarvlm.models.loading import load_model

    return load_model(str(path_or_name), **kw)[0]


def _changed(a: dict, b: dict) -> set[str]:
    assert a.keys() == b.keys()
    return {k for k in a if not torch.equal(a[k], b[k])}


def _losses(stage_dir: Path) -> list[float]:
    from sarvlm.training.training_log import read_log_csv

    return [r["loss"] for r in read_log_csv(stage_dir / "log.csv") if r["loss"] is not None]


def test_both_stages_run_and_the_loss_falls(two_runs):
    run = two_runs[0]
    for stage in ("stage1", "stage2"):
        d = run.stage_dirs[stage]
        result = json.loads((d / "result.json").read_text())
        assert result["global_steps"] == STEPS
        losses = _losses(d)
        assert len(losses) == STEPS
        assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2, (stage, losses)
        assert (d / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (d / "config.yaml").is_file() and (d / "data.json").is_file()
    s1 = json.loads((run.stage_dirs["stage1"] / "result.json").read_text())
    s2 = json.loads((run.stage_dirs["stage2"] / "result.json").read_text())
    assert set(s1["trainable_by_part"]) == {"fusion"}
    assert set(s2["trainable_by_part"]) == {"lora:language_model"} and s2["starts_from"] == ["stage1"]


def test_only_intended_parameters_change_between_stages(two_runs):
    run = two_runs[0]
    base = _load(MODEL, settings={"fusion": "tlm"}, seed=0)
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    after1 = apply_stage_result(base, run.stage_dirs["stage1"])
    state1 = {k: v.clone() for k, v in after1.state_dict().items()}
    changed1 = _changed(base_state, state1)
    assert changed1 and all(module_part(k) == "fusion" for k in changed1)  # θ_ae only (Eq. 13)
    after2 = apply_stage_result(after1, run.stage_dirs["stage2"])
    state2 = after2.state_dict()
    changed2 = _changed(state1, state2)
    # Eq. 15: LoRA on the LLM's linear layers only; TLM, vision tower, embeddings, lm_head untouched
    assert changed2 and all(module_part(k) == "language_model" and k.endswith("proj.weight") for k in changed2)
    final = _load(run.final).state_dict()
    assert not _changed({k: v for k, v in state2.items()}, final)
    assert json.loads((run.final / "training.json").read_text())["stages"] == ["stage1", "stage2"]


def test_same_seed_gives_identical_runs(two_runs):
    a, b = two_runs
    for stage in ("stage1", "stage2"):
        assert (a.stage_dirs[stage] / "log.csv").read_bytes() == (b.stage_dirs[stage] / "log.csv").read_bytes()
    assert (a.final / "model.safetensors").read_bytes() == (b.final / "model.safetensors").read_bytes()


def test_completed_run_is_reused_and_a_different_run_refused(two_runs, world):
    root, data, priors = world
    run = two_runs[0]
    before = (run.final / "model.safetensors").stat().st_mtime_ns
    train(fusar_recipe(), model=MODEL, data=data, priors=priors, out=run.run_dir, log=lambda _: None)
    assert (run.final / "model.safetensors").stat().st_mtime_ns == before  # nothing retrained
    with pytest.raises(SarvlmError, match="holds a different run"):
        train(fusar_recipe(steps=STEPS + 1), model=MODEL, data=data, priors=priors, out=run.run_dir)


def test_run_dir_rules(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(SarvlmError, match="holds no sarvlm run"):
        prepare_run_dir(other, {"a": 1}, overwrite=False)
    assert (other / "notes.txt").read_text() == "mine"
    prepare_run_dir(other, {"a": 1}, overwrite=True)
    assert not (other / "notes.txt").exists() and (other / "run.yaml").is_file()


def test_cli_bad_input_is_one_line(world, tmp_path, capsys):
    root, data, priors = world
    cases = [
        (["--recipe", "fusar-gpt", "--model", MODEL, "--data", str(data), "--out", str(tmp_path / "a")], "--priors"),
        (
            [
                "--recipe",
                "fusar-gpt",
                "--model",
                MODEL,
                "--data",
                str(tmp_path),
                "--priors",
                str(priors),
                "--out",
                str(tmp_path / "b"),
            ],
            "no train.jsonl",
        ),
        (
            [
                "--recipe",
                "lunaros",
                "--model",
                str(tmp_path / "nomodel"),
                "--data",
                str(data),
                "--out",
                str(tmp_path / "c"),
            ],
            "no such model directory",
        ),
        (
            ["--recipe", "lunaros", "--model", str(data), "--data", str(data), "--out", str(tmp_path / "d")],
            "no config.json",
        ),
        (
            [
                "--recipe",
                "fusar-gpt",
                "--model",
                MODEL,
                "--data",
                str(data),
                "--priors",
                str(tmp_path),
                "--out",
                str(tmp_path / "e"),
            ],
            "not a prior cache",
        ),
        (
            [
                "--recipe",
                "fusar-gpt",
                "--model",
                MODEL,
                "--data",
                str(data),
                "--priors",
                str(priors),
                "--out",
                str(tmp_path / "f"),
                "--deepspeed",
                "nope.json",
            ],
            "no such config",
        ),
    ]
    for argv, message in cases:
        assert main(["train", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not any((tmp_path / name).exists() for name in "abcdef")  # nothing written on bad input


def test_one_stage_alone_lunaros_with_eval_merge_and_checkpointing(world, tmp_path):
    root, data, priors = world
    recipe = apply_common_overrides(
        load_recipe("lunaros", {"stage2.eval": True, "stage2.logging_steps": 1}),
        max_steps=2,
        batch_size=2,
        gradient_checkpointing=True,
    )
    run = train(
        recipe,
        model="tiny-qwen3-vl",
        data=data,
        out=tmp_path / "lun",
        stages=["stage2"],
        merge=True,
        log=lambda _: None,
    )
    assert not (tmp_path / "lun" / "stage1").exists()
    d = run.stage_dirs["stage2"]
    result = json.loads((d / "result.json").read_text())
    assert result["starts_from"] == [] and set(result["trainable_by_part"]) == {"lora:merger", "lora:language_model"}
    assert (d / "adapter" / "adapter_config.json").is_file()
    from sarvlm.training.training_log import read_log_csv

    assert any(r["eval_loss"] is not None for r in read_log_csv(d / "log.csv"))  # val.jsonl evaluated
    config = (d / "config.yaml").read_text()
    assert "activation_checkpointing: true" in config
    merged = _load(d / "merged").state_dict()
    final = _load(run.final)
    assert final.config.model_type == "qwen3_vl" and not _changed(merged, final.state_dict())


def test_concat_fusion_follows_the_cache_grid(world, tmp_path):
    root, data, _ = world
    priors = make_priors(data, tmp_path / "priors3", grid=(3, 3))  # the tiny model defaults to 4x4
    recipe = apply_common_overrides(load_recipe("fusar-gpt", {"fusion": "concat"}), max_steps=1, batch_size=2)
    run = train(
        recipe, model=MODEL, data=data, priors=priors, out=tmp_path / "cat", stages=["stage1"], log=lambda _: None
    )
    assert json.loads((run.final / "config.json").read_text())["sarvlm"]["prior_grid"] == [3, 3]
    assert set(json.loads((run.stage_dirs["stage1"] / "result.json").read_text())["trainable_by_part"]) == {"fusion"}


def test_stages_in_separate_invocations(world, tmp_path, capsys):
    root, data, priors = world
    argv = [
        "train",
        "--recipe",
        "fusar-gpt",
        "--model",
        MODEL,
        "--data",
        str(data),
        "--priors",
        str(priors),
        "--out",
        str(tmp_path / "split"),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--set",
        "stage2.tasks=count",
    ]
    assert main([*argv, "--stage", "1"]) == 0
    assert json.loads((tmp_path / "split" / "final" / "training.json").read_text())["stages"] == ["stage1"]
    assert main([*argv, "--stage", "2"]) == 0
    assert "starts from the result of stage1" in capsys.readouterr().out
    assert json.loads((tmp_path / "split" / "final" / "training.json").read_text())["stages"] == ["stage1", "stage2"]
    # an unfinished earlier stage is not silently skipped
    (tmp_path / "split" / "stage1" / "result.json").unlink()
    (tmp_path / "split" / "stage2" / "result.json").unlink()
    capsys.readouterr()
    assert main([*argv, "--stage", "2", "--resume"]) == 2
    assert "stage stage1 did not finish" in capsys.readouterr().err
