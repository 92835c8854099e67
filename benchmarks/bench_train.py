"""Benchmark: tiny-model training step time at batch 4 on CPU, and the data-loading share.

Data: the built-in synthetic world (``sarvlm synth``, 112×112 px scenes) built into the
FUSAR-GPT tasks (``sarvlm build``) with a 4×4 AlphaEarth prior cache (``sarvlm priors``) —
the same path a user takes. Model: ``tiny-qwen2.5-vl`` with the TLM. Stages: FUSAR-GPT
stage 1 (only the TLM trains) and stage 2 (LoRA r=8 on every LLM linear layer, TLM frozen,
priors flowing through it), batch 4, fp32, ``dataloader_num_workers`` 0 and 1.

Figures:
- step time: wall time per optimizer step inside ``transformers.Trainer`` (median over the
  measured steps, between consecutive ``on_step_end`` callbacks: data + forward + backward +
  AdamW + Trainer bookkeeping). Target ≤ 50 ms. Also as CPU time of the process (robust
  to other processes sharing the cores).
- peer: a bare PyTorch loop (forward, backward, ``torch.optim.AdamW`` step, zero_grad) on the
  same model and pre-collated batches; the ratio Trainer / bare loop is the engine's overhead.
- data share: the median time the Trainer waits for its next batch (between one step's end and
  the next step's beginning: image read + resize + tokenise + priors + collation when loading
  runs on the training thread, ``workers 0``; the residual wait when ``workers ≥ 1`` prepare
  batches in parallel) divided by the step time. Target < 10 %. The standalone cost of one batch
  is shown too.

    python benchmarks/bench_train.py [--scenes 32] [--steps 20] [--threads 1] [--data DS --priors P]

``--data/--priors`` reuse a built dataset and prior cache instead of generating the world.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SARVLM_NO_PROGRESS", "1")


def build_world(root: Path, scenes: int) -> tuple[Path, Path]:
    from sarvlm.cli.main import main

    quiet = open(os.devnull, "w")  # noqa: SIM115 - closed below
    old = sys.stdout
    sys.stdout = quiet
    try:
        assert main(["synth", str(root / "world"), "--scenes", str(scenes), "--seed", "0", "--size", "112"]) == 0
        assert (
            main(
                [
                    "build",
                    str(root / "world" / "samples.jsonl"),
                    str(root / "ds"),
                    "--tasks",
                    "fusar-gpt,caption",
                    "--min-pixels",
                    str(56 * 56),
                    "--max-pixels",
                    str(112 * 112),
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "priors",
                    str(root / "ds"),
                    "--source",
                    f"aef-cog:{root / 'world' / 'aef'}",
                    "--grid",
                    "4x4",
                    "--out",
                    str(root / "priors"),
                ]
            )
            == 0
        )
    finally:
        sys.stdout = old
        quiet.close()
    return root / "ds", root / "priors"


def measure_stage(
    stage: str, data: Path, priors: Path, out: Path, steps: int, warmup: int, workers: int
) -> dict[str, float]:
    import torch
    from transformers import Trainer, TrainerCallback

    from sarvlm.models.loading import load_model
    from sarvlm.priors.cache import PriorCache
    from sarvlm.training.collator import SftCollator
    from sarvlm.training.dataset import SftDataset
    from sarvlm.training.recipe import apply_common_overrides, load_recipe
    from sarvlm.training.stages import prepare_stage
    from sarvlm.training.trainer import training_arguments

    recipe = apply_common_overrides(
        load_recipe("fusar-gpt", {f"{stage}.logging_steps": 1000, f"{stage}.save_steps": 100000}),
        max_steps=warmup + steps,
        batch_size=4,
        workers=workers,
    )
    spec = recipe.stage(stage)
    model, processor = load_model("tiny-qwen2.5-vl", settings={"fusion": "tlm"}, seed=0)
    trained, _ = prepare_stage(model, spec, "tlm", seed=0)
    dataset = SftDataset(
        data / "train.jsonl",
        processor,
        tasks=spec.tasks,
        max_length=recipe.max_length,
        priors=PriorCache(priors),
        use_priors=True,
    )
    collator = SftCollator(processor.pad_token_id)

    begins: list[float] = []
    ends: list[float] = []
    cpu_ends: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            begins.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            ends.append(time.perf_counter())
            cpu_ends.append(time.process_time())

    args = training_arguments(recipe, spec, out / stage, "fp32", None, False)
    trainer = Trainer(model=trained, args=args, train_dataset=dataset, data_collator=collator, callbacks=[StepClock()])
    trainer.train()
    # step k: from the end of step k-1 to the end of step k; the Trainer fetches and collates the
    # batch between the end of step k-1 and the beginning of step k (the time it waits for data)
    step_ms = statistics.median(ends[k] - ends[k - 1] for k in range(warmup + 1, len(ends))) * 1000
    wait_ms = statistics.median(begins[k] - ends[k - 1] for k in range(warmup + 1, len(ends))) * 1000
    # CPU time of this process per step: robust to other processes sharing the cores
    step_cpu_ms = statistics.median(cpu_ends[k] - cpu_ends[k - 1] for k in range(warmup + 1, len(cpu_ends))) * 1000

    # data: the Trainer's own dataloader (same sampler, collator, workers)
    loader = trainer.get_train_dataloader()
    times, it = [], iter(loader)
    for _ in range(warmup + steps):
        t = time.perf_counter()
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            next(it)
        times.append(time.perf_counter() - t)
    data_ms = statistics.median(times[warmup:]) * 1000

    # peer: a bare PyTorch loop on pre-collated batches
    model2, _ = load_model("tiny-qwen2.5-vl", settings={"fusion": "tlm"}, seed=0)
    bare, _ = prepare_stage(model2, spec, "tlm", seed=0)
    bare.train()
    opt = torch.optim.AdamW([p for p in bare.parameters() if p.requires_grad], lr=spec.lr)
    batches = [collator([dataset[(4 * k + j) % len(dataset)] for j in range(4)]) for k in range(warmup + steps)]
    bare_times, bare_cpu = [], []
    for batch in batches:
        t, c = time.perf_counter(), time.process_time()
        loss = bare(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in bare.parameters() if p.requires_grad], spec.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        bare_times.append(time.perf_counter() - t)
        bare_cpu.append(time.process_time() - c)
    bare_ms = statistics.median(bare_times[warmup:]) * 1000
    bare_cpu_ms = statistics.median(bare_cpu[warmup:]) * 1000
    tokens = statistics.median(int(b["attention_mask"].sum()) for b in batches)
    return {
        "step_cpu_ms": step_cpu_ms,
        "bare_cpu_ms": bare_cpu_ms,
        "step_ms": step_ms,
        "wait_ms": wait_ms,
        "data_ms": data_ms,
        "bare_ms": bare_ms,
        "tokens": tokens,
        "examples": len(dataset),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--workers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[0, 1],
        help="dataloader worker counts to measure (default 0,1)",
    )
    parser.add_argument("--data", type=Path, help="a built dataset directory (skip world generation)")
    parser.add_argument("--priors", type=Path, help="its prior cache (with --data)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.data:
            data, priors = args.data, args.priors
        else:
            t = time.perf_counter()
            data, priors = build_world(root, args.scenes)
            print(f"world + dataset + priors: {time.perf_counter() - t:.1f} s")
        rows = []
        for stage, what in (("stage1", "TLM only"), ("stage2", "LoRA r=8 on the LLM, TLM frozen")):
            for workers in args.workers:
                r = measure_stage(stage, data, priors, root / "runs", args.steps, args.warmup, workers)
                rows.append((stage, what, workers, r))
    print(f"\ntorch {torch.__version__}, {args.threads} thread(s), batch 4, fp32, median of {args.steps} steps\n")
    print(
        "| stage | trains | workers | tokens/batch | Trainer step wall (ms) | Trainer step CPU (ms) | bare loop wall (ms) "
        "| bare loop CPU (ms) | Trainer / bare (wall) | data+collate per batch (ms) | data wait in step (ms) | data share of step |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for stage, what, workers, r in rows:
        print(
            f"| {stage} | {what} | {workers} | {r['tokens']:.0f} | {r['step_ms']:.1f} | {r['step_cpu_ms']:.1f} | {r['bare_ms']:.1f} "
            f"| {r['bare_cpu_ms']:.1f} | {r['step_ms'] / r['bare_ms']:.2f}× | {r['data_ms']:.1f} | {r['wait_ms']:.1f} "
            f"| {100 * r['wait_ms'] / r['step_ms']:.1f} % |"
        )
    print(
        f"\nload average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times include waiting for a core)"
    )


if __name__ == "__main__":
    main()
