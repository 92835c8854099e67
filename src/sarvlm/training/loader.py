"""Data-loader settings of a training run: worker processes where they help, pinned memory on CUDA.

The rule (``workers: auto``, the recipe default):

- **CUDA**: ``min(4, cores per process - 1)`` worker processes (at least 1), persistent across
  epochs, prefetching 2 batches each, with pinned host memory. Decoding, resizing and patchifying
  images then overlaps the GPU step instead of preceding it (the issue measured a 256-wide
  Qwen2.5-VL waiting on the main process at 8.2 steps/s).
- **CPU / MPS**: 0 workers. By default PyTorch's intra-op threads already use every core, so a
  worker process only competes with the forward/backward pass and adds start-up and IPC cost.
  Where a core is spare (``torch.set_num_threads(1)`` on 2 cores, as the demo's side-by-side jobs
  run), ``--workers 1`` helps: ``benchmarks/bench_train.py`` measured the data share of a tiny CPU
  step fall from 22–27 % with none to 4–10 % with one worker in that setting.

An explicit ``workers: N`` in the recipe (or ``sarvlm train --workers N``) always wins.
"""

from __future__ import annotations

import os
from typing import Any

MAX_AUTO_WORKERS = 4


def cores_per_process() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def auto_workers(cuda: bool) -> int:
    """Worker processes for ``workers: auto`` (see the module docstring)."""
    if not cuda:
        return 0
    return max(1, min(MAX_AUTO_WORKERS, cores_per_process() - 1))


def loader_arguments(workers: int | None, cuda: bool) -> dict[str, Any]:
    """``TrainingArguments`` keywords for the data loader; ``workers=None`` is ``auto``."""
    n = auto_workers(cuda) if workers is None else int(workers)
    args: dict[str, Any] = {
        "dataloader_num_workers": n,
        "dataloader_pin_memory": cuda,
        "dataloader_persistent_workers": n > 0,
    }
    if n > 0:
        args["dataloader_prefetch_factor"] = 2
    return args
