"""The CLI stays responsive as the package grows: parsing arguments imports no torch/transformers, and
the loader defaults follow the documented rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sarvlm.training.loader import auto_workers, loader_arguments

SRC = str(Path(__file__).parents[1] / "src")
PROBE = """
import json, sys
from sarvlm.cli.main import build_parser
parser = build_parser()
for verb in ("predict", "preprocess", "build", "priors", "merge", "train", "ask"):
    try:
        parser.parse_args([verb, "--help"])
    except SystemExit:
        pass
heavy = sorted(m for m in ("torch", "transformers", "peft", "accelerate", "dask", "rasterio") if m in sys.modules)
print(json.dumps(heavy))
"""


def test_cli_parser_and_help_import_no_heavy_library():
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env={"PYTHONPATH": SRC}, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_loader_workers_rule():
    assert auto_workers(cuda=False) == 0  # tiny CPU runs: the step already uses every core
    assert 1 <= auto_workers(cuda=True) <= 4
    cpu = loader_arguments(None, cuda=False)
    assert cpu == {"dataloader_num_workers": 0, "dataloader_pin_memory": False, "dataloader_persistent_workers": False}
    gpu = loader_arguments(None, cuda=True)
    assert gpu["dataloader_pin_memory"] and gpu["dataloader_persistent_workers"] and gpu["dataloader_num_workers"] >= 1
    assert loader_arguments(3, cuda=False)["dataloader_num_workers"] == 3  # an explicit choice wins
