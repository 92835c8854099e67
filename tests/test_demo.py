"""`sarvlm demo`: resumable steps, the --quick smoke run (report structure, not numbers), bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from sarvlm.demo.steps import MARKER, StepRunner


def _runner(root: Path, fresh: bool = False) -> StepRunner:
    return StepRunner(root, Console(file=open(os.devnull, "w")), fresh=fresh)


def test_step_runner_reuses_recomputes_and_never_leaves_partial_output(tmp_path):
    calls = []

    def make(d: Path) -> None:
        calls.append(d.name)
        (d / "out.txt").write_text("x")

    r = _runner(tmp_path)
    out = r.run("a", {"p": 1}, make, title="a")
    assert (out / "out.txt").read_text() == "x" and (out / MARKER).exists()
    r.run("a", {"p": 1}, make, title="a")
    assert len(calls) == 1  # reused
    r.run("a", {"p": 2}, make, title="a")
    assert len(calls) == 2  # parameters changed: recomputed
    _runner(tmp_path, fresh=True).run("a", {"p": 2}, make, title="a")
    assert len(calls) == 3  # --fresh

    def broken(d: Path) -> None:
        (d / "half.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        r.run("b", {}, broken, title="b")
    assert not (tmp_path / "b").exists()  # nothing half-written under the final name
    # an in-place step that was interrupted has no marker, so it runs again (and may resume)
    with pytest.raises(RuntimeError):
        r.run("c", {}, broken, title="c", in_place=True)
    assert (tmp_path / "c" / "half.txt").exists() and not (tmp_path / "c" / MARKER).exists()
    r.run("c", {}, make, title="c", in_place=True)
    assert (tmp_path / "c" / MARKER).exists()


GPU_MACHINE = Path(__file__).parent / "_gpu_machine"  # sitecustomize: the modules the GPU machine lacks are absent


def _demo(out: Path, *extra: str) -> subprocess.CompletedProcess:
    # the smoke run runs with only what the GPU machine has (docs/demo.md, --preset gpu)
    env = {**os.environ, "SARVLM_NO_PROGRESS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(GPU_MACHINE), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "sarvlm.cli.main", "demo", "--quick", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


@pytest.mark.slow
def test_quick_demo_writes_a_complete_report_and_reuses_steps(tmp_path):
    out = tmp_path / "demo"
    proc = _demo(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    for heading in (
        "# sarvlm demo report",
        "## Summary",
        "## Questions that need the prior",
        "## Decision: does the TLM help?",
        "## Diagnostics: where is the information lost?",
        "## FUSAR-GPT Table 9 layout",
        "## FUSAR-GPT Table 6 layout",
        "## Plots",
    ):
        assert heading in report
    for run in ("stage2-only", "stage2+tlm", "full"):
        assert f"| {run} |" in report
    metrics = json.loads((out / "metrics.json").read_text())
    assert {
        "config",
        "headline",
        "prior_subsets",
        "tlm_verdicts",
        "decision",
        "diagnostics",
        "prior_probe",
        "runs",
        "timings_s",
    } <= set(metrics)
    # the information check: the prior separates land covers far better than SAR pixels do
    assert "Is the information there?" in report
    probe = metrics["prior_probe"]
    assert 0.0 <= probe["sar all"] <= 1.0 and probe["prior all"] > probe["sar all"]
    assert metrics["config"]["scenes"] == 20
    assert {r["name"] for r in metrics["runs"]} == {"majority-answer", "stage2-only", "stage2+tlm", "full"}
    assert any(v["with"] == "stage2+tlm" and v["without"] == "stage2-only" for v in metrics["tlm_verdicts"])
    # the decision table pairs each TLM run with its twin; the diagnostic covers both TLM runs
    assert "| pair | seeds | questions |" in report
    for d in metrics["decision"]:
        assert d["low"] <= d["diff"] <= d["high"] and d["verdict"] in ("gain", "loss", "no detectable difference")
    assert set(metrics["diagnostics"]) == {"full-seed0", "stage2+tlm-seed0"}
    assert all(d["tokens"] >= 0 for d in metrics["diagnostics"].values())
    # the base model carries the BPE tokenizer trained on the training split's text
    assert (out / "init" / "model" / "tokenizer.json").is_file()
    for png in ("loss_curves.png", "per_task_by_run.png", "sample_scene.png"):
        assert (out / png).stat().st_size > 1000
    # every run was evaluated with the papers' report layout
    assert (out / "evaluation" / "compare" / "compare.md").exists()
    # the data never mixes scenes across splits (SAR and optical twins share the scene split)
    splits = {}
    for name in ("train", "val", "test"):
        for line in (out / "data" / f"{name}.jsonl").read_text().splitlines():
            sid = json.loads(line)["sample_id"]
            assert splits.setdefault(sid, name) == name
    for line in (out / "optical-data" / "train.jsonl").read_text().splitlines():
        assert splits.get(json.loads(line)["sample_id"]) == "train"

    # without pycocotools (absent here, as on the GPU machine) detection keeps P/R/F1 and leaves mAP@50 out
    det = json.loads((out / "evaluation" / "reports" / "full-seed0" / "metrics.json").read_text())["tasks"]["detect"]
    assert "0.5" in det and "map50" not in det
    # the stage-1 word-loss diagnostic runs when the preset has the full run (no stage1+stage2 twin in --quick)
    assert "stage1_word_loss" in metrics and "base model (before stage 1)" in metrics["stage1_word_loss"]
    assert "### Stage 1 on the land-cover words of the captions" in report
    # the anchor-node family is in every run's scores and in the decision rule's question set
    assert "| farmland/grassland @anchor acc |" in report or "farmland/grassland @anchor acc" in report

    again = _demo(out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("reused") >= 7


def test_demo_bad_output_directory_is_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = _demo(blocker / "demo")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert str(blocker) in proc.stderr
