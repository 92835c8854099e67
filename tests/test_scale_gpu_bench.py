"""benchmarks/bench_gpu_train.py runs where the GPU machine runs it: without rasterio, pyproj, dask,
fastapi or pycocotools (blocked here in a fresh interpreter), on the CPU with tiny settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("rasterio", "pyproj", "dask", "distributed", "fastapi", "pycocotools")


def test_gpu_bench_runs_on_cpu_without_the_cpu_side_packages(tmp_path):
    out = tmp_path / "figures.json"
    argv = [
        str(ROOT / "benchmarks" / "bench_gpu_train.py"),
        "--device",
        "cpu",
        "--model",
        "tiny-qwen2.5-vl",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--batch",
        "2",
        "--images",
        "4",
        "--image-size",
        "96",
        "--threads",
        "1",
        "--configs",
        "old,new+cache",
        "--json",
        str(out),
    ]
    # sys.modules[name] = None makes `import name` fail, as on a machine without the package
    code = (
        "import runpy, sys\n"
        f"for name in {BLOCKED!r}:\n"
        "    sys.modules[name] = None\n"
        f"sys.argv = {argv!r}\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
        f"leaked = sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED!r} and sys.modules[m] is not None)\n"
        "assert not leaked, leaked\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SARVLM_NO_PROGRESS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| old | 0 | no | no |" in proc.stdout and "| new+cache | 0 | no | yes |" in proc.stdout
    figures = json.loads(out.read_text())
    assert [r["config"] for r in figures["results"]] == ["old", "new+cache"]
    for r in figures["results"]:
        assert r["steps_per_s"] > 0 and 0 <= r["data_share"] < 1 and r["examples"] == 8
        assert r["gpu_util"] is None and r["util_source"] == "none"  # no GPU here
