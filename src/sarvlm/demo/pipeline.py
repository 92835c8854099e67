"""The demo pipeline: synthetic world → preprocessing → instruction data → priors → base model →
FUSAR-GPT ablation grid → predictions → evaluation → report.

Every step goes through :class:`~sarvlm.demo.steps.StepRunner`, so re-running into the same
directory reuses finished steps (``--fresh`` recomputes everything) and an interrupted step
starts over. Training and prediction resume inside their own step.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from sarvlm.core.atomic import ensure_writable_dir
from sarvlm.core.errors import InputError, SarvlmError
from sarvlm.core.process_settings import quiet_libraries
from sarvlm.demo.config import BUILD_TASKS, POINT_TASK, STAGE2_TASKS, DemoConfig
from sarvlm.demo.report import MAJORITY, run_tag
from sarvlm.demo.steps import StepRunner
from sarvlm.models.threads import torch_threads

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
        raise SarvlmError(
            f"{out}: not enough free disk space ({free / 1e9:.2f} GB free, the demo needs about {need / 1e9:.1f} GB)"
        )


def _scene_splits(pre_samples: Path, out: Path, seed: int) -> None:
    """Assign every scene to train/val/test (exactly 8:1:1, seeded) and write two sample files
    with those splits: ``sar.jsonl`` (the preprocessed SAR scenes) and ``optical.jsonl`` (their
    optical twins, for the base model). Sharing the split keeps every test scene, SAR or optical,
    out of all training."""
    import numpy as np

    from sarvlm.core.record import read_samples, write_samples

    records = sorted(read_samples(pre_samples), key=lambda r: r.id)
    n = len(records)
    if n < 10:
        raise InputError(f"{pre_samples}: the demo needs at least 10 scenes for an 8:1:1 split, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = n_val = max(1, round(0.1 * n))
    split_of = {
        records[i].id: ("test" if k < n_test else "val" if k < n_test + n_val else "train") for k, i in enumerate(order)
    }
    rebase = lambda rel: (Path("..") / pre_samples.parent.name / rel).as_posix()  # noqa: E731

    def moved(rec, image: str, optical: str | None, **extra):
        landcover = rec.landcover.model_copy(update={"mask": rebase(rec.landcover.mask)}) if rec.landcover else None
        return rec.model_copy(
            update={"image": image, "optical": optical, "landcover": landcover, "split": split_of[rec.id], **extra}
        )

    write_samples(
        out / "sar.jsonl", (moved(r, rebase(r.image), rebase(r.optical) if r.optical else None) for r in records)
    )
    for r in records:
        if r.optical is None:
            raise InputError(f"{pre_samples}: record {r.id!r}: field 'optical': the demo needs paired optical images")
    write_samples(
        out / "optical.jsonl",
        (moved(r, rebase(r.optical), None, polarizations=[], sensor="optical-render") for r in records),
    )


def _initial_model(train_jsonls: list[Path], out: Path, model: str, tokenizer: str, vocab_size: int) -> None:
    """The randomly initialised base model with its tokenizer, saved as a model directory.

    ``tokenizer="bpe"`` trains the BPE merges on the text of the training examples only (SAR and
    optical), so no validation or test text shapes the vocabulary; ``"byte"`` keeps one token per byte.
    """
    from sarvlm.core.example import read_examples
    from sarvlm.models.loading import build_tiny, save_model
    from sarvlm.models.tiny import TINY_MODELS
    from sarvlm.models.tokenizer import bpe_tokenizer, byte_level_tokenizer

    backbone = TINY_MODELS[model]
    if tokenizer == "bpe":
        texts = [m.content for path in train_jsonls for ex in read_examples(path) for m in ex.messages]
        tok = bpe_tokenizer(texts, vocab_size=vocab_size, backbone=backbone)
    else:
        tok = byte_level_tokenizer(backbone)
    net, processor = build_tiny(model, seed=0, tokenizer=tok)
    save_model(net, processor, out / "model")


def _majority_predictions(train_jsonl: Path, test_jsonl: Path, out: Path) -> None:
    """The no-model baseline: every test question answered with its task's most frequent training
    answer (ties: the alphabetically first). A run that does not beat it has learnt nothing image-specific."""
    from collections import Counter

    from sarvlm.core.example import Prediction, read_examples, write_jsonl

    answers: dict[str, Counter] = defaultdict(Counter)
    for ex in read_examples(train_jsonl):
        if ex.reference is not None:
            answers[ex.task][ex.reference] += 1
    best = {task: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for task, c in answers.items()}
    write_jsonl(
        out, (Prediction(id=ex.id, task=ex.task, prediction=best.get(ex.task, "")) for ex in read_examples(test_jsonl))
    )


def _test_subset(test_jsonl: Path, out: Path, per_task: int, point_questions: int | None = None) -> Path:
    """The first ``per_task`` test examples of every task (file order), scored for every run; of the
    anchor-node land-cover family (the decision rule's questions) the first ``point_questions`` (all when None)."""
    from sarvlm.core.example import read_examples, write_jsonl

    taken: dict[str, int] = defaultdict(int)
    chosen = []
    for ex in read_examples(test_jsonl):
        cap = (point_questions if point_questions is not None else float("inf")) if ex.task == POINT_TASK else per_task
        if ex.task in STAGE2_TASKS and taken[ex.task] < cap:
            taken[ex.task] += 1
            # images stay valid: the subset sits next to test.jsonl's directory
            chosen.append(
                ex.model_copy(
                    update={"images": [(Path("..") / test_jsonl.parent.name / p).as_posix() for p in ex.images]}
                )
            )
    if not chosen:
        raise InputError(f"{test_jsonl}: no test examples of the stage-2 tasks")
    write_jsonl(out / "test.jsonl", chosen)
    return out / "test.jsonl"


@contextlib.contextmanager
def _as_worker() -> Iterator[None]:
    """Each job is single-threaded: two tiny-model jobs side by side use both cores far better
    than one job with two threads. Scoped: a job run in the main process (workers=1) leaves
    the caller's thread count and logging as they were."""
    with quiet_libraries(), torch_threads(1):
        yield


def _ablation_job(job: tuple) -> str:
    from sarvlm.training.ablation import run_ablation

    model, data, out, priors, name, seed, overrides = job
    with _as_worker():
        _quietly(
            Path(out) / "train.log",
            run_ablation,
            model,
            data,
            out,
            priors=priors,
            seeds=[seed],
            runs=[name],
            recipe="fusar-gpt",
            overrides=overrides,
            resume=True,
            log=print,
        )
    return f"{name} (seed {seed})"


def _predict_job(job: tuple) -> str:
    from sarvlm.inference.predict import predict

    model, test, out, priors, batch_size, seed = job
    with _as_worker():
        # the demo's own test subset points back into its data/ and preprocessed/ directories
        predict(model, test, out, priors_dir=priors, batch_size=batch_size, seed=seed, allow_outside_root=True)
    return Path(out).stem


def _in_parallel(fn: Any, jobs: list[tuple], workers: int, console: Console, verb: str) -> None:
    """Run ``fn`` over ``jobs`` in ``workers`` spawned processes, reporting each finished job."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    start = time.perf_counter()
    if workers <= 1:
        for i, job in enumerate(jobs, 1):
            console.print(f"    {verb} {fn(job)} [dim]({i}/{len(jobs)}, {time.perf_counter() - start:.0f} s)[/dim]")
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(fn, job) for job in jobs]
        for i, fut in enumerate(as_completed(futures), 1):
            console.print(
                f"    {verb} {fut.result()} [dim]({i}/{len(jobs)}, {time.perf_counter() - start:.0f} s)[/dim]"
            )


def _train_ablation(model: Path, data: Path, priors: Path, out: Path, cfg: DemoConfig, console: Console) -> None:
    """Train every (run, seed) of the ablation grid as its own job and index them in out/runs.json."""
    from sarvlm.training.ablation import ABLATION_RUNS, read_runs

    wanted = [r for r in ABLATION_RUNS if r.name in cfg.runs]
    trained = [r for r in wanted if not r.alias_of]
    jobs = [
        (
            str(model),
            str(data),
            str(out / f"{r.name}-seed{seed}"),
            str(priors) if r.fusion != "none" else None,
            r.name,
            seed,
            cfg.recipe_overrides(),
        )
        for seed in range(cfg.seeds)
        for r in trained
    ]
    _in_parallel(_ablation_job, jobs, cfg.workers, console, "trained")
    entries = []
    for seed in range(cfg.seeds):
        for r in wanted:
            target = r.alias_of or r.name
            (e,) = read_runs(out / f"{target}-seed{seed}")
            run_dir = Path(e["run_dir"]).relative_to(out.resolve()).as_posix()
            entries.append(
                {
                    "name": r.name,
                    "table": r.table,
                    "sft1": r.sft1,
                    "sft2": r.sft2,
                    "fusion": r.fusion,
                    "seed": seed,
                    "alias_of": r.alias_of,
                    "run_dir": run_dir,
                }
            )
    (out / "runs.json").write_text(json.dumps({"runs": entries}, indent=2) + "\n")


def _quietly(log_path: Path, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` with its console output (the Trainer's per-step dicts, warnings) going to ``log_path``."""
    import contextlib

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        return fn(*args, **kwargs)


def run_demo(
    out_dir: str | Path, cfg: DemoConfig, *, fresh: bool = False, console: Console | None = None
) -> DemoResult:
    """Run the whole demo into ``out_dir`` and return where the report is.

    The demo prints its own progress, so library load reports, shard bars and known warnings
    are silenced, and torch uses one thread in the main process, for the run only (restored on
    return): the parallel jobs already use the cores, and on a shared 2-core machine a 2-thread
    step measured 10× slower than a 1-thread one (0.275 vs 2.93 steps/s, base model, load ~7).
    """
    with quiet_libraries(), torch_threads(1):
        return _run_demo_steps(out_dir, cfg, fresh=fresh, console=console)


def _run_demo_steps(out_dir: str | Path, cfg: DemoConfig, *, fresh: bool, console: Console | None) -> DemoResult:
    from sarvlm.data.builder import BuildOptions, build_dataset
    from sarvlm.demo.report import write_demo_report
    from sarvlm.eval import compare, evaluate
    from sarvlm.preprocess.pipeline import PreprocessConfig, preprocess_samples
    from sarvlm.priors.cache import build_prior_cache
    from sarvlm.synth import generate_world
    from sarvlm.training.recipe import load_recipe
    from sarvlm.training.trainer import train

    console = console or Console(stderr=True)
    out = ensure_writable_dir(out_dir)
    _check_disk(out, quick=cfg.scenes < 50)
    started = time.perf_counter()
    runner = StepRunner(out.resolve(), console, fresh=fresh)

    world = runner.run(
        "world",
        {"scenes": cfg.scenes, "size": cfg.size, "seed": cfg.world_seed, "looks": cfg.looks},
        lambda d: generate_world(
            d, cfg.scenes, seed=cfg.world_seed, size=cfg.size, looks=cfg.looks, overwrite=True, preview=True
        ),
        title=f"1/7 synthetic SAR world ({cfg.scenes} scenes of {cfg.size}² px, AlphaEarth-layout field)",
    )
    pre = runner.run(
        "preprocessed",
        {"world": runner.key_of("world"), "filter": "refined-lee", "window": 7},
        lambda d: preprocess_samples(
            world / "samples.jsonl",
            d,
            PreprocessConfig(filter="refined-lee", window=7, looks=cfg.looks, stretch=True, uint8=True, overwrite=True),
        ),
        title="2/7 preprocessing (refined Lee 7×7, log + percentile stretch, uint8)",
    )
    build = lambda samples: (
        lambda d: build_dataset(
            samples,
            d,
            BuildOptions(  # noqa: E731
                tasks=list(BUILD_TASKS),
                seed=cfg.world_seed,
                split="keep",
                coords="qwen2.5",
                overwrite=True,
                # the scene split files (scenes/) name the demo's own images in preprocessed/ and world/
                allow_outside_root=True,
            ),
        )
    )
    scenes = runner.run(
        "scenes",
        {"pre": runner.key_of("preprocessed"), "seed": cfg.world_seed},
        lambda d: _scene_splits(pre / "samples.jsonl", d, cfg.world_seed),
        title="    8:1:1 split by scene (SAR scenes and their optical twins together)",
    )
    data = runner.run(
        "data",
        {"scenes": runner.key_of("scenes"), "tasks": BUILD_TASKS},
        build(scenes / "sar.jsonl"),
        title="3/7 instruction data from the SAR scenes",
    )
    optical_data = runner.run(
        "optical-data",
        {"scenes": runner.key_of("scenes"), "tasks": BUILD_TASKS},
        build(scenes / "optical.jsonl"),
        title="    instruction data from the optical twins (base model)",
    )
    priors = runner.run(
        "priors",
        {"data": runner.key_of("data"), "grid": cfg.grid},
        lambda d: build_prior_cache(data, f"aef-cog:{world / 'aef'}", grid=cfg.grid, out_dir=d, overwrite=True),
        title=f"4/7 AlphaEarth priors on {cfg.grid[0]}×{cfg.grid[1]} anchor grids (aef-cog reader)",
    )
    # The base is a generalist, as a stock VLM is: it describes images and answers questions about
    # them (optical ones). Without captioning ability, stage 1's TLM would have nothing to steer.
    base_recipe = load_recipe(BASE_RECIPE, cfg.base_overrides())
    init = runner.run(
        "init",
        {
            "data": runner.key_of("data"),
            "optical-data": runner.key_of("optical-data"),
            "model": cfg.model,
            "tokenizer": cfg.tokenizer,
            "vocab_size": cfg.vocab_size,
        },
        lambda d: _initial_model(
            [data / "train.jsonl", optical_data / "train.jsonl"], d, cfg.model, cfg.tokenizer, cfg.vocab_size
        ),
        title=f"    initial {cfg.model} ({cfg.tokenizer} tokenizer, trained on the training split's text)",
    )
    base = runner.run(
        "base",
        {
            "init": runner.key_of("init"),
            "data": runner.key_of("optical-data"),
            "steps": cfg.base_steps,
            "lr": cfg.base_lr,
            "tasks": BUILD_TASKS,
            "checkpoint_steps": cfg.checkpoint_steps,
        },
        # in place: an interrupted base training resumes from its last checkpoint
        lambda d: _quietly(
            out / "logs" / "base-train.log",
            train,
            base_recipe,
            model=str(init / "model"),
            data=optical_data,
            out=d,
            resume=True,
            log=print,
        ),
        title=f"5/7 base model: {cfg.model} pretrained on the optical twins ({cfg.base_steps} steps)",
        in_place=True,
    )
    ablation_params = {
        "base": runner.key_of("base"),
        "priors": runner.key_of("priors"),
        "seeds": cfg.seeds,
        "runs": cfg.runs,
        "overrides": cfg.recipe_overrides(),
    }
    ablation = runner.run(
        "ablation",
        ablation_params,
        lambda d: _train_ablation(base / "final", data, priors, d, cfg, console),
        title=f"6/7 FUSAR-GPT ablation grid ({len(cfg.runs)} runs × {cfg.seeds} seed(s))",
        in_place=True,
    )

    def predict_and_score(d: Path) -> None:
        test = _test_subset(data / "test.jsonl", d, cfg.test_per_task, cfg.point_questions)
        runs = json.loads((ablation / "runs.json").read_text())["runs"]
        jobs: dict[str, tuple] = {}
        for e in runs:  # aliases share their target's run directory: predicted once
            jobs.setdefault(
                e["run_dir"],
                (
                    str(ablation / e["run_dir"] / "final"),
                    str(test),
                    str(d / "predictions" / f"{run_tag(e)}.jsonl"),
                    str(priors) if e["fusion"] != "none" else None,
                    cfg.predict_batch_size,
                    e["seed"],
                ),
            )
        (d / "predictions").mkdir(exist_ok=True)
        _in_parallel(_predict_job, list(jobs.values()), cfg.workers, console, "predicted")
        _majority_predictions(data / "train.jsonl", test, d / "predictions" / f"{MAJORITY}.jsonl")
        evaluate(
            d / "predictions" / f"{MAJORITY}.jsonl", test, d / "reports" / MAJORITY, run_name=MAJORITY, plots=False
        )
        for e in runs:
            evaluate(
                jobs[e["run_dir"]][2], test, d / "reports" / run_tag(e, alias=True), run_name=e["name"], plots=False
            )
        compare([d / "reports" / MAJORITY] + [d / "reports" / run_tag(e, alias=True) for e in runs], out=d / "compare")

    scored = runner.run(
        "evaluation",
        {"ablation": runner.key_of("ablation"), "per_task": cfg.test_per_task, "points": cfg.point_questions},
        predict_and_score,
        title="7/7 predictions on the test split and evaluation of every run",
        in_place=True,
    )
    report = write_demo_report(
        out,
        cfg,
        world=world,
        pre=pre,
        data=data,
        priors=priors,
        base=base,
        ablation=ablation,
        scored=scored,
        timings=runner.timings,
    )
    seconds = time.perf_counter() - started
    console.print(f"[bold]report:[/bold] {report}  ({seconds:.0f} s)")
    return DemoResult(out_dir=out, report=report, metrics=out / "metrics.json", seconds=seconds)
