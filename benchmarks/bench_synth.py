"""Benchmark: synthetic-world generation rate in scenes per second.

Generates the demo-sized world (120 scenes of 224×224 px, with one and two worker processes) and
the default one (60 scenes of 256×256 px), best of ``--repeat`` runs each, and breaks one scene's
cost down by stage (generation in memory, scene files, the site's embedding tiles). Wall-clock
and CPU times (including worker processes) are both reported: on a shared machine the wall clock
also counts other people's processes, "scenes per CPU-second" does not.

    python benchmarks/bench_synth.py            # full (about 1 minute on 2 idle cores)
    python benchmarks/bench_synth.py --quick    # smaller worlds
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SARVLM_NO_PROGRESS", "1")

import numpy as np  # noqa: E402

from sarvlm.synth.footprint import place_scenes  # noqa: E402
from sarvlm.synth.world import _write_scene, _write_site_tiles, generate_world, make_scene  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _run(scenes: int, size: int, workers: int, repeat: int) -> tuple[float, float]:
    """Best (wall, CPU incl. workers) seconds over ``repeat`` runs."""
    best_wall, best_cpu = float("inf"), float("inf")
    for r in range(repeat):
        tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
        try:
            w0, c0 = time.perf_counter(), _cpu()
            generate_world(tmp / "w", scenes, seed=r, size=size, workers=workers)
            best_wall = min(best_wall, time.perf_counter() - w0)
            best_cpu = min(best_cpu, _cpu() - c0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return best_wall, best_cpu


def _stages(size: int, n: int = 18) -> dict[str, float]:
    """CPU milliseconds per scene of each stage, over one full site of 9 scenes (2 years)."""
    sites, fps = place_scenes(n, size, 2.0, np.random.default_rng(0))
    idx = list(range(0, n, len(sites)))
    make_scene(idx[0], fps[idx[0]], 0, 4.0, [2021, 2022])  # warm-up (imports, caches)
    t = time.process_time()
    scs = [make_scene(i, fps[i], 0, 4.0, [2021, 2022]) for i in idx]
    gen = (time.process_time() - t) / len(idx)
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        for d in ("images", "masks", "optical", "aef"):
            (tmp / d).mkdir()
        t = time.process_time()
        for sc in scs:
            _write_scene(tmp, sc)
        write = (time.process_time() - t) / len(idx)
        t = time.process_time()
        _write_site_tiles(tmp, sites[0], [sc.cell for sc in scs], [2021, 2022], 0)
        tiles = (time.process_time() - t) / len(idx)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "generate (in memory)": gen * 1e3,
        "write scene files": write * 1e3,
        "embedding tiles (2 years)": tiles * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller worlds, one repeat")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    repeat = 1 if args.quick else args.repeat
    configs = [(30, 224, (1, 2)), (30, 256, (1,))] if args.quick else [(120, 224, (1, 2)), (60, 256, (1,))]

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    print("| world | workers | wall s | scenes/s (wall) | CPU s (all processes) | scenes per CPU-second |")
    print("|---|---|---|---|---|---|")
    for scenes, size, worker_counts in configs:
        for workers in worker_counts:
            wall, cpu = _run(scenes, size, workers, repeat)
            print(
                f"| {scenes} × {size}² px | {workers} | {wall:.2f} | {scenes / wall:.1f} | {cpu:.2f} | {scenes / cpu:.1f} |"
            )
    print()
    print("| stage (224² px scene, CPU ms per scene) | ms |")
    print("|---|---|")
    for name, ms in _stages(224).items():
        print(f"| {name} | {ms:.0f} |")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
