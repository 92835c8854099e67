"""A killed demo resumes: in-place steps keep their work only for the same parameters, and a demo
ablation job SIGKILLed mid-stage does not redo finished training and ends with the weights of an
uninterrupted job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from _processes import kill_when
from sarvlm.demo.config import FULL, GPU, QUICK
from sarvlm.demo.pipeline import _ablation_job
from sarvlm.demo.steps import StepRunner
from test_training_data import make_dataset, make_priors


def _runner(root: Path) -> StepRunner:
    return StepRunner(root, Console(file=open(os.devnull, "w")))


def test_an_interrupted_in_place_step_resumes_only_with_the_same_parameters(tmp_path):
    def interrupted(d: Path) -> None:
        (d / "checkpoint").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _runner(tmp_path).run("train", {"steps": 10}, interrupted, title="t", in_place=True)
    seen = []
    _runner(tmp_path).run(
        "train", {"steps": 10}, lambda d: seen.append(sorted(os.listdir(d))), title="t", in_place=True
    )
    assert seen == [["checkpoint"]]  # same parameters: the partial work is there to resume from
    with pytest.raises(KeyboardInterrupt):
        _runner(tmp_path).run("other", {"steps": 10}, interrupted, title="o", in_place=True)
    _runner(tmp_path).run(
        "other", {"steps": 20}, lambda d: seen.append(sorted(os.listdir(d))), title="o", in_place=True
    )
    assert seen[-1] == []  # other parameters: started clean, nothing of the old run is resumed


def test_every_preset_checkpoints_its_training_jobs():
    for cfg in (QUICK, FULL, GPU):
        over, base = cfg.recipe_overrides(), cfg.base_overrides()
        for key in ("stage1.save_steps", "stage2.save_steps"):
            assert over[key] == cfg.checkpoint_steps
        assert base["pretrain.save_steps"] == cfg.checkpoint_steps
        # at least one checkpoint inside every stage, so a kill mid-stage never restarts it from zero
        assert cfg.checkpoint_steps < min(cfg.stage1_steps, cfg.stage2_steps, cfg.base_steps)


_CHILD = """
import sys, json
from sarvlm.demo.pipeline import _ablation_job
_ablation_job(tuple(json.loads(sys.argv[1])))
"""


@pytest.mark.slow
def test_a_killed_demo_job_resumes_without_redoing_finished_training(tmp_path):
    torch.set_num_threads(1)
    data = make_dataset(tmp_path / "ds")
    priors = make_priors(data, tmp_path / "priors")
    cfg = replace(QUICK, stage1_steps=2, stage2_steps=12, checkpoint_steps=3, batch_size=2)
    overrides = {
        **cfg.recipe_overrides(),
        "stage2.tasks": ["count"],
        "stage1.logging_steps": 1,
        "stage2.logging_steps": 1,
    }

    def job(out: Path) -> tuple:
        return ("tiny-qwen2.5-vl", str(data), str(out), str(priors), "full", 0, overrides)

    ref = tmp_path / "ref"
    _ablation_job(job(ref))

    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", SARVLM_NO_PROGRESS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(job(run))],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    stage2 = run / "full" / "stage2"
    kill_when(
        proc,
        lambda: any((c / "trainer_state.json").exists() for c in (stage2 / "checkpoints").glob("checkpoint-*")),
        "the job",
        "stage-2 checkpoint",
    )
    assert proc.returncode == -signal.SIGKILL
    assert not (stage2 / "result.json").exists()
    stage1_result = run / "full" / "stage1" / "result.json"
    finished_at = stage1_result.stat().st_mtime_ns

    _ablation_job(job(run))  # the demo re-runs the same job into the same directory
    log = (run / "train.log").read_text()
    assert "[stage1] already complete" in log  # finished training is not redone
    assert "[stage2] resuming from" in log and "checkpoint-" in log
    assert stage1_result.stat().st_mtime_ns == finished_at
    a = load_file(str(ref / "full" / "final" / "model.safetensors"))
    b = load_file(str(run / "full" / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (ref / "full" / "stage2" / "log.csv").read_text() == (stage2 / "log.csv").read_text()
