"""Benchmark: instruction examples per second per core from COCO-style sample records, and memory
flatness in the number of samples (issue 3: >= 20,000 examples/s/core, memory flat).

Generates SARDet-100k-like records (512x512 images, 1-12 targets of 6 categories, as the COCO
importer writes them) over 1,000 image files, then runs ``sarvlm.data.builder.build_dataset`` in a
fresh single-threaded subprocess per size, with the FUSAR-GPT + SARLANG-1M target tasks (count,
grid, classify_box, detect, identify, classify, position, refer) and Qwen2.5-VL coordinates. Reports
examples per second of wall time and per CPU-second of the build process (one single-threaded
process = one core; the CPU figure is the per-core rate and is not distorted when other work shares
the machine) and the child's peak RSS for each size: flat memory means the peak does not grow with
the number of samples.

    python benchmarks/bench_build.py                     # 5k and 25k samples (< 3 min even on a loaded machine)
    python benchmarks/bench_build.py --sizes 10000 50000 # the figures in docs/bench/build.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CATS = ("ship", "aircraft", "car", "tank", "bridge", "harbor")
TASKS = "count,grid,classify_box,detect,identify,classify,position,refer"


def make_samples(path: Path, n: int, n_images: int = 1000, seed: int = 0) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    img_dir = path.parent / "img"
    img_dir.mkdir(exist_ok=True)
    for i in range(n_images):
        (img_dir / f"{i:05d}.png").touch()  # the build only checks that images exist
    with open(path, "w") as fh:
        for i in range(n):
            k = int(rng.integers(1, 13))
            xy = rng.integers(0, 480, size=(k, 2))
            wh = rng.integers(4, 32, size=(k, 2))
            cats = rng.integers(0, len(CATS), size=k)
            objs = [
                {"category": CATS[c], "bbox": [float(x), float(y), float(x + w), float(y + h)], "id": str(j)}
                for j, ((x, y), (w, h), c) in enumerate(zip(xy.tolist(), wh.tolist(), cats.tolist()))
            ]
            rec = {
                "schema_version": 1,
                "id": f"sardet/{i:07d}",
                "image": f"img/{i % n_images:05d}.png",
                "width": 512,
                "height": 512,
                "objects": objs,
                "source": "SARDet-100k",
                "meta": {"coco_image_id": i},
            }
            fh.write(json.dumps(rec) + "\n")


def child(samples: str, out: str) -> None:
    """Run one build and print its figures as JSON (runs in a fresh process)."""
    from sarvlm.core.coords import smart_resize
    from sarvlm.data.builder import BuildOptions, build_dataset

    smart_resize(512, 512)  # import transformers' smart_resize before timing (one-off ~5 s)
    t0, c0 = time.perf_counter(), time.process_time()
    res = build_dataset(
        samples, out, BuildOptions(tasks=TASKS.split(","), coords="qwen2.5", seed=0), progress=lambda it, **_: it
    )
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"examples": res.total, "seconds": dt, "cpu_seconds": cpu, "peak_rss_mb": rss_mb}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 25000])
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", SARVLM_NO_PROGRESS="1")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            samples = Path(tmp) / f"s{n}" / "samples.jsonl"
            samples.parent.mkdir()
            make_samples(samples, n)
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(samples), str(Path(tmp) / f"out{n}")],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            r["samples"] = n
            r["examples_per_s"] = r["examples"] / r["seconds"]
            r["examples_per_cpu_s"] = r["examples"] / r["cpu_seconds"]
            rows.append(r)
            print(
                f"{n:>8} samples  {r['examples']:>9} examples  wall {r['seconds']:6.1f} s "
                f"({r['examples_per_s']:>6.0f}/s)  CPU {r['cpu_seconds']:6.1f} s ({r['examples_per_cpu_s']:>6.0f} "
                f"examples per CPU-second = per core)  peak RSS {r['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    if len(rows) > 1:
        growth = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
        print(
            f"peak RSS ratio {rows[-1]['samples']}/{rows[0]['samples']} samples: {growth:.2f}x "
            f"(samples ratio {rows[-1]['samples'] / rows[0]['samples']:.0f}x)"
        )


if __name__ == "__main__":
    main()
