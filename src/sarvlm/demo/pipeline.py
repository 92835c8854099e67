"""The demo pipeline: synthetic world → preprocessing → instruction data → priors → base model →
FUSAR-GPT ablation grid → predictions → evaluation → report.

Every step goes through :class:`~sarvlm.demo.steps.StepRunner`, so re-running into the same
directory reuses finished steps (``--fresh`` recomputes everything) and an interrupted step
starts over. Training and prediction resume inside their own step.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from sarvlm.demo.config import BUILD_TASKS, STAGE2_TASKS, DemoConfig
from sarvlm.demo.steps import StepRunner
from sarvlm.errors import SarvlmError
from sarvlm.io.atomic import ensure_writable_dir

BASE_RECIPE = Path(__file__).with_name("recipes") / "optical-pretrain.yaml"
# Rough upper bound of what the full demo writes (world, images, checkpoints, reports).
REQUIRED_FREE_BYTES = 1_500_000_000


@dataclass
class DemoResult:
    out_dir: Path
    report: Path
    metrics: Path
    seconds: float


def _check_disk(out: Path, quick: bool) -> None:
    free = shutil.disk_usage(out).free
    need = REQUIRED_FREE_BYTES // (8 if quick else 1)
    if free < need:
        raise SarvlmError(f"{out}: not enough free disk space ({free / 1e9:.2f} GB free, the demo needs about {need / 1e9:.1f} GB)")


def _optical_samples(pre_samples: Path, out: Path) -> Path:
    """The same scenes with the paired optical rendering as the image (for the base model)."""
    from sarvlm.data.record import read_samples, write_samples

    def optical_records():
        for rec in read_samples(pre_samples):
            if rec.optical is None:
                raise SarvlmError(f"{pre_samples}: record {rec.id!r}: field 'optical': the demo needs paired optical images")
            rebase = lambda rel: (Path("..") / pre_samples.parent.name / rel).as_posix()  # noqa: E731
            landcover = rec.landcover.model_copy(update={"mask": rebase(rec.landcover.mask)}) if rec.landcover else None
            yield rec.model_copy(update={"image": rebase(rec.optical), "optical": None, "landcover": landcover,
                                         "polarizations": [], "sensor": "optical-render"})

    path = out / "samples.jsonl"
    write_samples(path, optical_records())
    return path


def _test_subset(test_jsonl: Path, out: Path, per_task: int) -> Path:
    """The first ``per_task`` test examples of every task (file order), scored for every run."""
    from sarvlm.data.example import read_examples, write_jsonl

    taken: dict[str, int] = defaultdict(int)
    chosen = []
    for ex in read_examples(test_jsonl):
        if ex.task in STAGE2_TASKS and taken[ex.task] < per_task:
            taken[ex.task] += 1
            # images stay valid: the subset sits next to test.jsonl's directory
            chosen.append(ex.model_copy(update={"images": [(Path("..") / test_jsonl.parent.name / p).as_posix() for p in ex.images]}))
    if not chosen:
        raise SarvlmError(f"{test_jsonl}: no test examples of the stage-2 tasks")
    write_jsonl(out / "test.jsonl", chosen)
    return out / "test.jsonl"


def run_demo(out_dir: str | Path, cfg: DemoConfig, *, fresh: bool = False, console: Console | None = None) -> DemoResult:
    """Run the whole demo into ``out_dir`` and return where the report is."""
    import torch

    from sarvlm.data.builder import BuildOptions, build_dataset
    from sarvlm.demo.report import write_demo_report
    from sarvlm.eval import compare, evaluate
    from sarvlm.inference.predict import predict
    from sarvlm.preprocess.pipeline import PreprocessConfig, preprocess_samples
    from sarvlm.priors.cache import build_prior_cache
    from sarvlm.synth import generate_world
    from sarvlm.training.ablation import run_ablation
    from sarvlm.training.recipe import load_recipe
    from sarvlm.training.trainer import train

    console = console or Console(stderr=True)
    out = ensure_writable_dir(out_dir)
    _check_disk(out, quick=cfg.scenes < 50)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    started = time.perf_counter()
    runner = StepRunner(out.resolve(), console, fresh=fresh)
    quiet = lambda *_a, **_k: None  # noqa: E731 - training logs go to the run dirs, not the console

    world = runner.run("world", {"scenes": cfg.scenes, "size": cfg.size, "seed": cfg.world_seed, "looks": cfg.looks},
                       lambda d: generate_world(d, cfg.scenes, seed=cfg.world_seed, size=cfg.size, looks=cfg.looks,
                                                overwrite=True, preview=True),
                       title=f"1/7 synthetic SAR world ({cfg.scenes} scenes of {cfg.size}² px, AlphaEarth-layout field)")
    pre = runner.run("preprocessed", {"world": runner.key_of("world"), "filter": "refined-lee", "window": 7},
                     lambda d: preprocess_samples(world / "samples.jsonl", d, PreprocessConfig(
                         filter="refined-lee", window=7, looks=cfg.looks, stretch=True, uint8=True, overwrite=True)),
                     title="2/7 preprocessing (refined Lee 7×7, log + percentile stretch, uint8)")
    build = lambda samples: (lambda d: build_dataset(samples, d, BuildOptions(  # noqa: E731
        tasks=list(BUILD_TASKS), seed=cfg.world_seed, split="8:1:1", coords="qwen2.5", overwrite=True)))
    data = runner.run("data", {"pre": runner.key_of("preprocessed"), "tasks": BUILD_TASKS},
                      build(pre / "samples.jsonl"), title="3/7 instruction data from SAR (8:1:1 split by scene)")
    optical = runner.run("optical", {"pre": runner.key_of("preprocessed")},
                         lambda d: _optical_samples(pre / "samples.jsonl", d), title="    optical twins of the scenes")
    optical_data = runner.run("optical-data", {"optical": runner.key_of("optical"), "tasks": BUILD_TASKS},
                              build(optical / "samples.jsonl"), title="    instruction data from the optical twins")
    priors = runner.run("priors", {"data": runner.key_of("data"), "grid": cfg.grid},
                        lambda d: build_prior_cache(data, f"aef-cog:{world / 'aef'}", grid=cfg.grid, out_dir=d, overwrite=True),
                        title=f"4/7 AlphaEarth priors on {cfg.grid[0]}×{cfg.grid[1]} anchor grids (aef-cog reader)")
    base_recipe = load_recipe(BASE_RECIPE, {"pretrain.max_steps": cfg.base_steps, "pretrain.lr": cfg.base_lr,
                                            "pretrain.batch_size": cfg.batch_size})
    base = runner.run("base", {"data": runner.key_of("optical-data"), "steps": cfg.base_steps, "lr": cfg.base_lr},
                      lambda d: train(base_recipe, model="tiny-qwen2.5-vl", data=optical_data, out=d, overwrite=True, log=quiet),
                      title=f"5/7 base model: tiny Qwen2.5-VL pretrained on the optical twins ({cfg.base_steps} steps)")
    ablation_params = {"base": runner.key_of("base"), "priors": runner.key_of("priors"), "seeds": cfg.seeds,
                       "runs": cfg.runs, "overrides": cfg.recipe_overrides()}
    ablation = runner.run("ablation", ablation_params,
                          lambda d: run_ablation(str(base / "final"), data, d, priors=priors, seeds=cfg.seeds, runs=list(cfg.runs),
                                                 recipe="fusar-gpt", overrides=cfg.recipe_overrides(), resume=True, log=quiet),
                          title=f"6/7 FUSAR-GPT ablation grid ({len(cfg.runs)} runs × {cfg.seeds} seed(s))", in_place=True)

    def predict_and_score(d: Path) -> None:
        test = _test_subset(data / "test.jsonl", d, cfg.test_per_task)
        runs = json.loads((ablation / "runs.json").read_text())["runs"]
        done: dict[str, Path] = {}
        for entry in runs:
            run_dir = (ablation / entry["run_dir"]).resolve()
            tag = f"{entry['name']}-seed{entry['seed']}"
            pred_path = d / "predictions" / f"{run_dir.name}.jsonl"
            if str(run_dir) not in done:
                pred_path.parent.mkdir(parents=True, exist_ok=True)
                uses_priors = entry.get("fusion", "none") != "none"
                predict(str(run_dir / "final"), test, pred_path, priors_dir=priors if uses_priors else None,
                        batch_size=cfg.predict_batch_size, seed=entry["seed"])
                done[str(run_dir)] = pred_path
            evaluate(done[str(run_dir)], test, d / "reports" / tag, run_name=entry["name"], plots=False)
        report_dirs = [d / "reports" / f"{e['name']}-seed{e['seed']}" for e in runs]
        compare(report_dirs, out=d / "compare")

    scored = runner.run("evaluation", {"ablation": runner.key_of("ablation"), "per_task": cfg.test_per_task},
                        predict_and_score, title="7/7 predictions on the test split and evaluation of every run", in_place=True)
    report = write_demo_report(out, cfg, world=world, data=data, priors=priors, base=base, ablation=ablation,
                               scored=scored, timings=runner.timings)
    seconds = time.perf_counter() - started
    console.print(f"[bold]report:[/bold] {report}  ({seconds:.0f} s)")
    return DemoResult(out_dir=out, report=report, metrics=out / "metrics.json", seconds=seconds)
