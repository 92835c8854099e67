"""Benchmark: SRC tiling of a 20000x20000 float32 GeoTIFF with bounded memory.

A 20000x20000 float32 scene (1.6 GB, UTM 1 m, tiled 256x256, uncompressed) is generated strip by
strip in a temporary directory, then tiled by the real ``sarvlm preprocess`` path
(``preprocess_raster`` with ``tile_m`` 1000 m and ``target_res_m`` 2 m: 400 tiles read window by
window, area-averaged to 500x500 px, written as deflate float32 GeoTIFFs with their own
georeference and sample records) in a child process, whose peak RSS (``ru_maxrss``) and throughput
(input MB per second of wall time) are reported. Peer: the input size (holding the scene in memory
would need 1.6 GB). The temporary directory is deleted afterwards.

    python benchmarks/bench_tiling.py [--size 20000] [--tile-m 1000] [--target-res-m 2]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GDAL_NUM_THREADS", "1")
os.environ.setdefault("SARVLM_NO_PROGRESS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

CHILD = """
import json, sys, time
from sarvlm.preprocess.pipeline import PreprocessConfig, preprocess_raster
src, out, tile_m, target = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
cfg = PreprocessConfig(tile_m=tile_m, target_res_m=float(target) if target != "none" else None, plots=False)
t0 = time.perf_counter()
preprocess_raster(src, out, cfg)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def make_scene(path: Path, size: int) -> None:
    from rasterio.windows import Window

    from sarvlm.core.record import GeoRef
    from sarvlm.io.raster import open_raster_writer

    rng = np.random.default_rng(0)
    strip = 256
    pattern = rng.gamma(1.0, 1.0, (strip, size)).astype(np.float32)
    georef = GeoRef(crs="EPSG:32650", transform=[1.0, 0.0, 300000.0, 0.0, -1.0, 3500000.0])
    with open_raster_writer(path, size, size, georef=georef, compress=None, tags={"quantity": "intensity"}) as ds:
        for row in range(0, size, strip):
            h = min(strip, size - row)
            block = np.roll(pattern[:h], row // strip * 37, axis=1) * (1.0 + (row // strip) % 7)
            ds.write(block[None], window=Window(0, row, size, h))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--tile-m", type=float, default=1000.0)
    ap.add_argument("--target-res-m", default="2")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sarvlm-bench-tiling-"))
    try:
        src = tmp / "scene.tif"
        t0 = time.perf_counter()
        make_scene(src, args.size)
        size_mb = src.stat().st_size / 1e6
        print(
            f"generated {args.size}x{args.size} float32 GeoTIFF: {size_mb:,.0f} MB in {time.perf_counter() - t0:.1f} s"
        )
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(src), str(tmp / "tiles"), str(args.tile_m), args.target_res_m],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode:
            sys.exit(f"tiling failed: {proc.stderr.strip()}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mb = after.ru_maxrss / 1024  # kB on Linux
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
        tiles = sum(1 for _ in (tmp / "tiles" / "images").iterdir())
        print(
            f"SRC tiling ({args.tile_m:g} m tiles, target {args.target_res_m} m): {tiles} tiles in {seconds:.1f} s -> "
            f"{size_mb / seconds:,.0f} MB/s of input (wall; {size_mb / cpu:,.0f} MB per CPU-second, {cpu:.1f} s CPU incl. "
            f"interpreter start); peak RSS of the tiling process {peak_mb:,.0f} MB (input {size_mb:,.0f} MB)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
