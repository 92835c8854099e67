"""Benchmark: training start-up (to the end of the first optimizer step) on 1k vs 100k examples.

Data: a built-dataset directory whose ``train.jsonl`` repeats the 18 examples of the tiny training
fixture (captions, counts, grids, dialogues over 8 small PNGs) with fresh ids, to N rows.
Model/recipe: ``tiny-qwen2.5-vl``, ``sarlang-lora`` stage 1, batch 4, ``max_steps 1``, fp32, CPU.

Start-up is timed to the end of the first optimizer step (a global optimizer step hook); model
loading is included. Figures (one run, same machine state):
- cold: the first start-up on 1k examples, when the length cache is empty — every example is encoded
  by the processor once, as every start-up did before the cache (the peer: today's behaviour);
- warm: later start-ups on 1k and 100k examples (the cache is read, nothing is encoded); the ratio
  warm(100k) / warm(1k) shows how start-up grows with the dataset: the JSONL is neither parsed nor
  hashed (row index + remembered content digest, ``sarvlm.training.example_index``), only two numpy
  arrays and a short loop over the rows remain linear;
- the 100k cache is filled from the 18 templates' measured lengths (rows differ only in their id, so
  their token counts are equal) instead of a 100k-example cold pass, which would take
  ``cold per-example cost × 100k`` (reported, extrapolated).

    python benchmarks/bench_startup.py [--sizes 1000 100000] [--out docs/bench/scale.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SARVLM_NO_PROGRESS", "1")
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))


def make_data(root: Path, n: int) -> Path:
    from test_training_data import make_dataset

    src = make_dataset(root / "template", n_samples=8)
    rows = [json.loads(line) for line in (src / "train.jsonl").read_text().splitlines()]
    data = root / f"ds{n}"
    data.mkdir()
    shutil.copytree(src / "images", data / "images")  # a symlink would leave the dataset root
    with open(data / "train.jsonl", "w") as fh:
        for i in range(n):
            row = dict(rows[i % len(rows)])
            row["id"] = f"{row['id']}#{i}"
            fh.write(json.dumps(row) + "\n")
    for split in ("val", "test"):
        (data / f"{split}.jsonl").write_text((src / f"{split}.jsonl").read_text())
    return data, len(rows)


def fill_cache_from_templates(data: Path, template: Path) -> None:
    """Write the large length cache from the templates' measured lengths (see the module docstring)."""
    import numpy as np

    from sarvlm.models.loading import load_model
    from sarvlm.training.dataset import SftDataset
    from sarvlm.training.length_cache import LengthCache

    processor = load_model("tiny-qwen2.5-vl", settings={"fusion": "none"})[1]  # sarlang-lora's fusion
    probe = SftDataset(template / "train.jsonl", processor, length_cache=False, image_cache=False)
    assert len(probe.lengths) == probe.report.total, "every template row is kept"
    n = sum(1 for _ in open(data / "train.jsonl"))
    cache = LengthCache(data / "train.jsonl", processor, n)
    cache.lengths = np.resize(np.asarray(probe.lengths, np.int32), n)
    cache.put(0, int(cache.lengths[0]))
    cache.save()


def startup(data: Path, out: Path) -> tuple[float, float, str]:
    """(seconds to the end of the first optimizer step, seconds of the whole run, length-cache line)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from sarvlm.training.recipe import apply_common_overrides, load_recipe
    from sarvlm.training.trainer import train

    recipe = load_recipe("sarlang-lora", {"stage1.tasks": "caption,count,dialogue,grid", "stage1.lora.dropout": 0.0})
    recipe = apply_common_overrides(recipe, max_steps=1, batch_size=4)
    said: list[str] = []
    first_step: list[float] = []
    hook = register_optimizer_step_post_hook(lambda *_: first_step.append(time.perf_counter()))
    t0 = time.perf_counter()
    try:
        train(recipe, model="tiny-qwen2.5-vl", data=data, out=out, overwrite=True, log=said.append)
    finally:
        hook.remove()
    total = time.perf_counter() - t0
    cache = next((line.split("] ", 1)[1] for line in said if "length cache" in line), "?")
    return first_step[0] - t0, total, cache.split(": ", 1)[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=[1000, 100000])
    ap.add_argument("--out", type=Path, help="write a markdown table here")
    args = ap.parse_args()
    import torch

    from sarvlm.core.example import read_examples
    from sarvlm.training.example_index import ExampleIndex

    torch.set_num_threads(1)
    small, large = args.sizes
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ds_small, _ = make_data(root, small)
        ds_large, _ = make_data(root, large)
        cold, cold_total, cold_cache = startup(ds_small, root / "run-cold")  # empty caches: every example encoded
        # warm figures: the best of two runs (the machine is shared; noise only ever adds time)
        warm_small, _, small_cache = min(startup(ds_small, root / f"run-warm-small{k}") for k in range(2))
        fill_cache_from_templates(ds_large, root / "template")
        t0 = time.perf_counter()
        ExampleIndex.load(ds_large / "train.jsonl")  # once per dataset content, like the length cache
        index_build = time.perf_counter() - t0
        warm_large, _, large_cache = min(startup(ds_large, root / f"run-warm-large{k}") for k in range(2))
        t0 = time.perf_counter()
        sum(1 for _ in read_examples(ds_large / "train.jsonl"))
        parse_all = time.perf_counter() - t0
        t0 = time.perf_counter()
        ExampleIndex.load(ds_large / "train.jsonl")
        index_read = time.perf_counter() - t0
    per_example = (cold - warm_small) / small
    k_small, k_large = f"{small / 1000:g}k", f"{large / 1000:g}k"
    rows = [
        (f"cold start-up, {k_small} examples (every example encoded: the pre-cache behaviour)", f"{cold:.1f} s"),
        (f"warm start-up, {k_small} examples (length cache and row index read)", f"{warm_small:.2f} s"),
        (f"warm start-up, {k_large} examples", f"{warm_large:.2f} s"),
        (f"ratio warm {k_large} / warm {k_small} ({large // small}× the data)", f"{warm_large / warm_small:.2f}×"),
        (f"of which: reading the {k_large}-row index (`ExampleIndex.load`, warm)", f"{index_read:.3f} s"),
        (
            f"parsing all {k_large} rows (`read_examples`; done twice per start-up before the row index)",
            f"{parse_all:.1f} s",
        ),
        (f"building the {k_large}-row index once (first start-up on new data)", f"{index_build:.1f} s"),
        (f"encoding cost per example (cold − warm at {k_small}, / {small})", f"{1000 * per_example:.2f} ms"),
        (
            f"cold start-up at {k_large}, extrapolated (pre-cache behaviour)",
            f"{warm_large + per_example * large:.0f} s",
        ),
        (f"cold / warm start-up at {k_small}", f"{cold / warm_small:.1f}×"),
        ("length cache, cold / warm small / warm large", f"{cold_cache}; {small_cache}; {large_cache}"),
    ]
    table = "| figure | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
