"""`accelerate launch --multi_gpu --num_processes 2` on CPU (gloo): a tiny recipe trains in two processes
and ends where one process with the same global batch ends; `sarvlm predict` under the same launcher
gives each rank a shard and rank 0 merges them into the file one process writes."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from sarvlm.inference.predict import predict
from sarvlm.training.recipe import apply_common_overrides, load_recipe
from sarvlm.training.trainer import train
from test_training_data import make_dataset

STEPS = 2
RECIPE_SET = {
    "stage1.lora.dropout": 0.0,  # dropout draws differ per process; the comparison needs none
    "stage1.warmup_ratio": 0.0,
    "stage1.lr": 1e-2,
    "stage1.logging_steps": 1,
    "stage1.tasks": "caption,count,dialogue,grid",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(run: Path) -> list[float]:
    with open(run / "stage1" / "log.csv") as fh:
        return [float(row["loss"]) for row in csv.DictReader(fh) if row["loss"]]


@pytest.mark.slow
def test_two_process_cpu_training_equals_one_process_with_the_same_global_batch(tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    assert accelerate, "accelerate's launcher is a dependency"
    data = make_dataset(tmp_path / "ds", n_samples=8)
    sets = [arg for key, value in RECIPE_SET.items() for arg in ("--set", f"{key}={value}")]
    train_args = ["train", "--recipe", "sarlang-lora", "--model", "tiny-qwen2.5-vl", "--data", str(data)]
    train_args += ["--max-steps", str(STEPS), "--batch-size", "2", "--out", str(tmp_path / "two"), *sets]
    predict_args = ["predict", "--model", str(tmp_path / "two" / "final"), "--data", str(data / "train.jsonl")]
    predict_args += ["--out", str(tmp_path / "preds.jsonl"), "--batch-size", "3", "--max-new-tokens", "3"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), str(Path(__file__).parent)]),
        "CI": "1",
        "OMP_NUM_THREADS": "1",
    }
    launch = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())]
    script = str(Path(__file__).parent / "_launch_train_predict.py")
    proc = subprocess.run(
        [*launch, script, *train_args, "--", *predict_args], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = (tmp_path / "two" / "stage1" / "config.yaml").read_text()
    assert "world_size: 2" in config and "per_device_train_batch_size: 2" in config

    # one process, batch 4: the same global batch, so the same examples per optimizer step
    recipe = apply_common_overrides(load_recipe("sarlang-lora", RECIPE_SET), max_steps=STEPS, batch_size=4)
    train(recipe, model="tiny-qwen2.5-vl", data=data, out=tmp_path / "one", log=lambda _: None)
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-5)
    one = load_file(str(tmp_path / "one" / "stage1" / "adapter" / "adapter_model.safetensors"))
    two = load_file(str(tmp_path / "two" / "stage1" / "adapter" / "adapter_model.safetensors"))
    assert one.keys() == two.keys()
    moved = max((one[k] - two[k]).abs().max().item() for k in one)
    assert moved < 1e-4 and max(v.abs().max().item() for v in one.values()) > 1e-3

    # predictions: two ranks (a shard each, merged by rank 0) = one process, byte for byte
    assert not list(tmp_path.glob("preds.shard-*"))
    predict(tmp_path / "two" / "final", data / "train.jsonl", tmp_path / "single.jsonl", batch_size=3, max_new_tokens=3)
    assert (tmp_path / "preds.jsonl").read_bytes() == (tmp_path / "single.jsonl").read_bytes()
