"""Benchmark: does data loading starve the accelerator? Steps/s, data share and GPU utilisation of a
training step with the old loader settings vs the new defaults vs the new defaults + image cache.

Model: ``gpu-qwen2.5-vl`` (256-wide, 4-layer LLM; 128-wide, 4-block vision tower: the demo's GPU
size, ``sarvlm.models.tiny``) or any tiny name (``--model tiny-qwen2.5-vl`` for a CPU run), full
fine-tuning through the Hugging Face ``Trainer`` with sarvlm's ``SftDataset`` + ``SftCollator`` (the
path ``sarvlm train`` takes), batch 16, bf16 on CUDA GPUs that support it (fp32 otherwise).

Data: generated here with numpy + PIL only (the GPU machine has no rasterio): ``--images`` SAR-like
speckled PNGs of ``--image-size``² px (gamma speckle over bright targets), each with a caption and a
count example (``train.jsonl`` of ``InstructionExample`` rows). Images are resized by the processor
to at most 224 × 224 (64 merged tokens). sarvlm's ``load_image`` opens files through rasterio for
its signature/size checks; without rasterio the benchmark opens its own PNGs with PIL, which is what
``load_image`` then does for PNG.

Configurations (same model init, same data, same seed; length cache warm for all):
- ``old``: ``dataloader_num_workers 0``, no pinned memory, no image cache (main before issue 14);
- ``new``: ``sarvlm.training.loader.loader_arguments(None, cuda)`` — on CUDA min(4, cores − 1)
  persistent workers, prefetch 2, pinned memory; on CPU 0 workers (the CPU default);
- ``new+cache``: the same with the decoded-and-resized image cache (``sarvlm.training.image_cache``),
  filled once before the run (its steady state after one epoch; the one-off fill time is printed).

Figures per configuration: steps/s over the measured steps (after ``--warmup``), step time, data
wait (time from one step's end to the next step's beginning: the Trainer fetching the next batch)
and its share of the step (wall time, and CPU time of the training process, which other jobs on a
shared machine do not inflate), GPU utilisation (``torch.cuda.utilization()`` sampled every 50 ms, or
``nvidia-smi`` when pynvml is absent), and the ratio of steps/s against ``old`` (the named peer).

    python benchmarks/bench_gpu_train.py --device cuda                  # ~60 s on an H200
    python benchmarks/bench_gpu_train.py --device cpu --model tiny-qwen2.5-vl --steps 5 --images 32

Imports only torch, transformers, numpy, PIL, pydantic and sarvlm's model/training modules (no
rasterio, pyproj, dask, fastapi or pycocotools: ``tests/test_scale_gpu_bench.py`` runs it with those
blocked).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("SARVLM_NO_PROGRESS", "1")
REQUIRED = ("torch", "transformers", "accelerate", "numpy", "PIL", "pydantic", "yaml")


def check_environment() -> None:
    import importlib.util

    missing = [m for m in REQUIRED if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"bench_gpu_train: missing Python packages {', '.join(missing)} (pip install them first)")


def make_data(root: Path, n_images: int, size: int, seed: int = 0) -> Path:
    """``root/train.jsonl`` + ``val.jsonl`` over speckled PNGs (numpy + PIL only)."""
    import numpy as np
    from PIL import Image

    from sarvlm.core.example import InstructionExample, Message

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    rows: list[str] = []
    for i in range(n_images):
        count = int(rng.integers(0, 5))
        clean = np.full((size, size), 0.05)
        for _ in range(count):
            y, x = rng.integers(8, size - 24, 2)
            clean[y : y + 16, x : x + 16] = 1.0
        speckled = clean * rng.gamma(4.0, 0.25, (size, size))  # 4-look intensity speckle
        pixels = np.clip(255 * np.sqrt(speckled / speckled.max()), 0, 255).astype(np.uint8)
        name = f"images/im{i:05d}.png"
        Image.fromarray(pixels).save(root / name)
        for task, question, answer in (
            ("caption", "Describe the SAR image.", f"A speckled sea scene with {count} bright targets."),
            ("count", "How many bright targets are there?", str(count)),
        ):
            ex = InstructionExample(
                id=f"im{i:05d}-{task}",
                sample_id=f"im{i:05d}",
                task=task,
                messages=[
                    Message(role="user", content=f"<image>\n{question}"),
                    Message(role="assistant", content=answer),
                ],
                images=[name],
                answer=answer,
                split="train",
            )
            rows.append(ex.to_json())
    (root / "train.jsonl").write_text("\n".join(rows) + "\n")
    (root / "val.jsonl").write_text(rows[0] + "\n")
    return root / "train.jsonl"


def pil_load_image(path: Any) -> Any:
    """What ``sarvlm.models.processor.load_image`` does for PNG after its rasterio-based checks."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return img.convert("RGB") if img.mode not in ("L", "RGB") else img.copy()


class UtilisationSampler:
    """GPU utilisation (%) sampled in a background thread while the steps run."""

    def __init__(self, device: Any, every: float = 0.05) -> None:
        self.device, self.every = device, every
        self.samples: list[float] = []
        self.source = "none"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> float | None:
        import torch

        if self.source == "torch":
            return float(torch.cuda.utilization(self.device))
        index = self.device.index or 0
        out = subprocess.run(
            ["nvidia-smi", f"--id={index}", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return float(out.stdout.strip().splitlines()[0])

    def start(self) -> None:
        if self.device.type != "cuda":
            return
        for source in ("torch", "nvidia-smi"):
            self.source = source
            try:
                self._read()
                break
            except Exception:  # noqa: BLE001 - pynvml or nvidia-smi absent: try the next source
                self.source = "none"
        if self.source == "none":
            return

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    value = self._read()
                except Exception:  # noqa: BLE001 - one failed sample is skipped
                    value = None
                if value is not None:
                    self.samples.append(value)
                self._stop.wait(self.every)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> float | None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return statistics.mean(self.samples) if self.samples else None


def measure(
    config: str, jsonl: Path, model_name: str, device: Any, dtype: Any, steps: int, warmup: int, batch: int, out: Path
) -> dict[str, Any]:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from sarvlm.models.loading import build_tiny
    from sarvlm.training.collator import SftCollator
    from sarvlm.training.dataset import SftDataset
    from sarvlm.training.loader import loader_arguments

    cuda = device.type == "cuda"
    model, processor = build_tiny(model_name, seed=0)
    processor.load_image = pil_load_image  # see the module docstring (no rasterio on the GPU machine)
    dataset = SftDataset(jsonl, processor, image_cache=config == "new+cache", max_length=4096)
    if config == "old":
        loader = {"dataloader_num_workers": 0, "dataloader_pin_memory": False, "dataloader_persistent_workers": False}
    else:
        loader = loader_arguments(None, cuda)
    begins: list[float] = []
    ends: list[float] = []
    cpu_begins: list[float] = []
    cpu_ends: list[float] = []
    sampler = UtilisationSampler(device)

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            begins.append(time.perf_counter())
            cpu_begins.append(time.process_time())

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if cuda:
                torch.cuda.synchronize(device)  # the step's kernels are done: wall time is real
            ends.append(time.perf_counter())
            cpu_ends.append(time.process_time())
            if len(ends) == warmup:
                sampler.start()

    args = TrainingArguments(
        output_dir=str(out / config),
        per_device_train_batch_size=batch,
        max_steps=warmup + steps,
        learning_rate=1e-4,
        logging_steps=10**6,
        save_strategy="no",
        report_to=[],
        seed=0,
        bf16=dtype == torch.bfloat16,
        use_cpu=not cuda,
        remove_unused_columns=False,
        disable_tqdm=True,
        **loader,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=SftCollator(processor.pad_token_id),
        callbacks=[StepClock()],
    )
    trainer.train()
    utilisation = sampler.stop()
    measured = range(warmup, len(ends))
    window = ends[-1] - ends[warmup - 1]
    waits = [begins[k] - ends[k - 1] for k in measured]
    step_ms = statistics.median(ends[k] - ends[k - 1] for k in measured) * 1000
    # CPU time of this process (robust to other jobs on a shared machine): with workers 0 the
    # whole data path runs here; with workers it is what the main process still spends on data
    cpu_waits = [cpu_begins[k] - cpu_ends[k - 1] for k in measured]
    cpu_window = cpu_ends[-1] - cpu_ends[warmup - 1]
    return {
        "config": config,
        "workers": loader["dataloader_num_workers"],
        "pin": loader["dataloader_pin_memory"],
        "image_cache": config == "new+cache",
        "steps_per_s": len(measured) / window,
        "step_ms": step_ms,
        "wait_ms": statistics.median(waits) * 1000,
        "data_share": sum(waits) / window,
        "wait_cpu_ms": statistics.median(cpu_waits) * 1000,
        "step_cpu_ms": statistics.median(cpu_ends[k] - cpu_ends[k - 1] for k in measured) * 1000,
        "data_share_cpu": sum(cpu_waits) / cpu_window if cpu_window > 0 else 0.0,
        "gpu_util": utilisation,
        "util_source": sampler.source,
        "examples": len(dataset),
    }


def main() -> None:
    check_environment()
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cuda, cuda:1, cpu")
    ap.add_argument("--model", default="gpu-qwen2.5-vl", help="a tiny model name (default gpu-qwen2.5-vl)")
    ap.add_argument("--steps", type=int, default=150, help="measured steps per configuration (default 150)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--images", type=int, default=256, help="generated images (2 examples each)")
    ap.add_argument("--image-size", type=int, default=512, help="side of the generated PNGs (px)")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (CPU runs)")
    ap.add_argument("--configs", default="old,new,new+cache")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    from sarvlm.models.device import resolve_device, resolve_dtype

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype("auto", device)
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        jsonl = make_data(root / "ds", args.images, args.image_size)
        made = time.perf_counter() - t0
        # the length cache is filled once (without the image cache, which "new+cache" fills itself)
        from sarvlm.models.loading import build_tiny
        from sarvlm.training.dataset import SftDataset

        _, processor = build_tiny(args.model)
        processor.load_image = pil_load_image
        SftDataset(jsonl, processor, image_cache=False, max_length=4096)
        fill_s = None
        for config in args.configs.split(","):
            if config == "new+cache" and fill_s is None:
                # steady state: every image decoded and resized once (as the start-up length pass
                # or the first epoch leaves the cache); the one-off cost is reported
                from sarvlm.training.image_cache import ImageArrayCache

                t = time.perf_counter()
                cache = ImageArrayCache.for_dataset(jsonl, processor)
                for png in sorted((root / "ds" / "images").glob("*.png")):
                    cache.resized(png)
                fill_s = time.perf_counter() - t
            r = measure(config, jsonl, args.model, device, dtype, args.steps, args.warmup, args.batch, root / "runs")
            results.append(r)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"\n{args.model}, batch {args.batch}, {str(dtype).replace('torch.', '')}, {name}, {os.cpu_count()} cores; "
        f"{results[0]['examples']} examples over {args.images} PNGs of {args.image_size}² px; "
        f"{args.steps} measured steps after {args.warmup}; data generation {made:.1f} s, "
        f"total {time.perf_counter() - t0:.1f} s"
        + (f"; filling the image cache once: {fill_s:.1f} s" if fill_s is not None else "")
        + "\n"
    )
    base = results[0]["steps_per_s"]
    print(
        "| loader | workers | pinned | image cache | steps/s | vs old | step (ms, median) | data wait (ms, median) "
        "| data share (wall) | step CPU (ms, median) | data CPU (ms, median) | data share (CPU time) | GPU util |"
    )
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        util = "n/a" if r["gpu_util"] is None else f"{r['gpu_util']:.0f} % ({r['util_source']})"
        print(
            f"| {r['config']} | {r['workers']} | {'yes' if r['pin'] else 'no'} | {'yes' if r['image_cache'] else 'no'} "
            f"| {r['steps_per_s']:.2f} | {r['steps_per_s'] / base:.2f}× | {r['step_ms']:.1f} | {r['wait_ms']:.1f} "
            f"| {100 * r['data_share']:.1f} % | {r['step_cpu_ms']:.1f} | {r['wait_cpu_ms']:.1f} | {100 * r['data_share_cpu']:.1f} % | {util} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"model": args.model, "device": name, "image_cache_fill_s": fill_s, "results": results}, indent=2
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
