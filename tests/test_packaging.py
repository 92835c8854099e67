"""A package people can install: sdist + wheel build, twine check, clean-venv install and smoke run."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert res.returncode == 0, f"{cmd}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.mark.slow
def test_wheel_and_sdist_install_into_a_clean_venv_and_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)], env=env)
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)], env=env)
    import tarfile

    with tarfile.open(sdists[0]) as tar:
        names = tar.getnames()
    for required in ("LICENSE", "NOTICE", "CHANGELOG.md", "CITATION.cff", "LICENSE-xarray-sentinel"):
        assert any(n.endswith(required) for n in names), f"{required} missing from the sdist"

    # A fresh venv; heavy dependencies (torch, transformers, ...) come from this environment through a
    # .pth line, so the test checks *our* package's installability without a multi-GB download.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], env=env)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "zz_parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheels[0])], env=env)
    where = _run([str(py), "-c", "import sarvlm; print(sarvlm.__file__, sarvlm.__version__)"], env=env, cwd=tmp_path)
    assert str(site) in where.stdout, f"sarvlm imported from outside the clean venv: {where.stdout}"
    sarvlm = str(venv / "bin" / "sarvlm")
    env["SARVLM_NO_PROGRESS"] = "1"
    assert "synth" in _run([sarvlm, "--help"], env=env, cwd=tmp_path).stdout
    _run([sarvlm, "synth", str(tmp_path / "world"), "--scenes", "4", "--size", "64"], env=env, cwd=tmp_path)
    _run(
        [sarvlm, "build", str(tmp_path / "world" / "samples.jsonl"), str(tmp_path / "data"), "--tasks", "sarlang"],
        env=env,
        cwd=tmp_path,
    )
    _run(
        [
            sarvlm,
            "train",
            "--recipe",
            "sarlang-lora",
            "--model",
            "tiny-qwen2.5-vl",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "run"),
            "--max-steps",
            "1",
            "--batch-size",
            "1",
        ],
        env=env,
        cwd=tmp_path,
    )
    assert (tmp_path / "run").is_dir()
