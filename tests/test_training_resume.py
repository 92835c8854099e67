"""Crash and resume: a `sarvlm train` process SIGKILLed mid-stage and resumed with --resume ends with
exactly the weights and log of an uninterrupted run (CPU, same seed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _processes import kill_when
from sarvlm.cli.main import main
from test_training_data import make_dataset, make_priors

torch.set_num_threads(1)


def _argv(data: Path, priors: Path, out: Path) -> list[str]:
    return [
        "train",
        "--recipe",
        "fusar-gpt",
        "--model",
        "tiny-qwen2.5-vl",
        "--data",
        str(data),
        "--priors",
        str(priors),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--lr",
        "1e-2",
        "--set",
        "stage1.max_steps=2",
        "--set",
        "stage2.max_steps=12",
        "--set",
        "stage2.save_steps=3",
        "--set",
        "stage2.logging_steps=1",
        "--set",
        "stage2.tasks=count,dialogue",
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", SARVLM_NO_PROGRESS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.slow
def test_killed_run_resumes_to_identical_weights(tmp_path, capsys):
    data = make_dataset(tmp_path / "ds")
    priors = make_priors(data, tmp_path / "priors")

    # reference: uninterrupted
    ref = tmp_path / "ref"
    assert main(_argv(data, priors, ref)) == 0

    # crash: SIGKILL once stage 2 has written its second checkpoint
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sarvlm.cli.main", *_argv(data, priors, run)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    marker = run / "stage2" / "checkpoints" / "checkpoint-6" / "trainer_state.json"
    kill_when(proc, marker.exists, "training", "checkpoint")
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "stage2" / "result.json").exists() and not (run / "final").exists()
    # a checkpoint cut short mid-write (no trainer_state.json) must not be resumed from
    partial = run / "stage2" / "checkpoints" / "checkpoint-99"
    partial.mkdir()
    (partial / "adapter_model.safetensors").write_bytes(b"truncated")

    capsys.readouterr()
    assert main(_argv(data, priors, run)) == 2  # interrupted stage without --resume: refused
    assert "--resume" in capsys.readouterr().err
    assert main([*_argv(data, priors, run), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "checkpoint-99" not in out

    a = load_file(str(ref / "final" / "model.safetensors"))
    b = load_file(str(run / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ad_a = load_file(str(ref / "stage2" / "adapter" / "adapter_model.safetensors"))
    ad_b = load_file(str(run / "stage2" / "adapter" / "adapter_model.safetensors"))
    assert all(torch.equal(ad_a[k], ad_b[k]) for k in ad_a)
    assert (ref / "stage2" / "log.csv").read_text() == (run / "stage2" / "log.csv").read_text()
