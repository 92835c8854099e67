"""Benchmark: anchor-grid priors from local AlphaEarth COGs.

Peer: a naive per-node loop — for every node, find its tile by scanning the index, transform
the point with ``rasterio.warp.transform`` and call ``dataset.sample`` (datasets kept open
for the whole run, which favours the peer). sarvlm: ``sample_grid`` (STRtree tile selection,
cached pyproj transformers, one minimal window read per tile, numpy gather), and the whole
``build_prior_cache`` (JSONL in, safetensors shards out).

Scene: 6 tiles of 512×512 px (10 m, 64 int8 bands, 256-px blocks, deflate, overviews) in two
UTM zones (31N/32N at lat 45°; the 32N tiles stored bottom-up), two years; 10,000 samples of
0.6–2.4 km footprints (half north-up WGS84 boxes, half UTM affine georefs), 8×8 grids, years
2019–2022 (nearest-year fallback for 2019/2021). sarvlm is measured twice: with its
decoded-block cache (the default; clustered samples reuse blocks) and without it
(``block_cache_mb=0``: minimal windows/strips, the figure for samples scattered over the globe). The naive loop runs on a subset (it is slow) and
its per-sample rate is compared; both paths must return identical vectors on that subset.

    python benchmarks/bench_priors.py [--samples 10000] [--naive 60] [--subset 2000]

Single process; set OMP_NUM_THREADS=1 GDAL_NUM_THREADS=1 for one core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GDAL_NUM_THREADS", "1")
os.environ.setdefault("SARVLM_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
from pyproj import Transformer  # noqa: E402
from rasterio.transform import Affine  # noqa: E402

from sarvlm.core.record import GeoRef, SampleRecord, write_samples  # noqa: E402
from sarvlm.io.aef_layout import (
    AEF_NODATA,
    dequantize_aef,
    quantize_aef,
    read_aef_index,
    write_aef_index,
    write_aef_tile,
)  # noqa: E402
from sarvlm.priors import open_source, sample_grid  # noqa: E402
from sarvlm.priors.cache import build_prior_cache  # noqa: E402

TILE = 512
PIX = 10.0


def smooth_codes(rng: np.random.Generator) -> np.ndarray:
    """A blocky, unit-norm-ish embedding field (compresses like real AEF tiles do)."""
    coarse = rng.normal(size=(64, TILE // 16, TILE // 16)).astype(np.float32)
    coarse /= np.linalg.norm(coarse, axis=0, keepdims=True)
    field = np.repeat(np.repeat(coarse, 16, axis=1), 16, axis=2)
    return quantize_aef(field)


def build_world(root: Path, rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
    """Tiles; returns the WGS84 boxes samples may be drawn from (inside tile coverage)."""
    areas = []
    for zone, lon0 in ((31, 5.90), (32, 6.01)):
        epsg = 32600 + zone
        tr = Transformer.from_crs(4326, epsg, always_xy=True)
        for k in range(2):  # two tiles stacked north-south
            x0, y0 = tr.transform(lon0, 45.2 - 0.045 * k)
            x0, y0 = np.floor(x0 / PIX) * PIX, np.ceil(y0 / PIX) * PIX
            aff = Affine(PIX, 0, x0, 0, -PIX, y0)
            for year in (2020, 2022) if k == 0 else (2020,):
                write_aef_tile(root, year, zone, "N", f"z{zone}k{k}", smooth_codes(rng), aff, bottom_up=(zone == 32))
    write_aef_index(root)
    idx = read_aef_index(root)
    for g in idx["geometry"]:
        w, s, e, n = g.bounds
        areas.append((w + 0.002, s + 0.002, max(w + 0.004, e - 0.03), max(s + 0.004, n - 0.022)))
    return areas


def make_samples(n: int, areas, rng: np.random.Generator) -> list[SampleRecord]:
    recs = []
    for i in range(n):
        w, s, e, nn = areas[rng.integers(len(areas))]
        size_km = rng.uniform(0.6, 2.4)
        lon0, lat0 = rng.uniform(w, e), rng.uniform(s, nn)
        dlat = size_km / 111.0
        dlon = size_km / (111.0 * np.cos(np.radians(lat0)))
        year = int(rng.choice([2019, 2020, 2021, 2022]))
        width = height = 512
        if i % 2 == 0:
            georef = GeoRef(bbox_wgs84=[lon0, lat0, lon0 + dlon, lat0 + dlat])
        else:
            zone = int((lon0 + 180) // 6) + 1
            x, y = Transformer.from_crs(4326, 32600 + zone, always_xy=True).transform(lon0, lat0 + dlat)
            res = size_km * 1000 / width
            georef = GeoRef(crs=f"EPSG:{32600 + zone}", transform=[res, 0, x, 0, -res, y])
        recs.append(
            SampleRecord(
                id=f"s{i:06d}", image=f"img/{i}.png", width=width, height=height, date=str(year), georef=georef
            )
        )
    return recs


class NaiveSampler:
    """Per-node loop with rasterio's point sampler (the peer)."""

    def __init__(self, root: Path):
        import rasterio

        self.index = read_aef_index(root)
        self.ds = {str(p): rasterio.open(p) for p in self.index["local_path"]}

    def sample(self, lon, lat, year):
        from rasterio.warp import transform

        out = np.zeros((len(lon), 64), np.float32)
        ok = np.zeros(len(lon), bool)
        rows = self.index[self.index["year"] == year]
        for k, (lo, la) in enumerate(zip(lon, lat, strict=True)):
            for row in rows.itertuples():
                if not row.geometry.covers(__import__("shapely").geometry.Point(lo, la)):
                    continue
                ds = self.ds[str(row.local_path)]
                xs, ys = transform("EPSG:4326", ds.crs, [lo], [la])
                r, c = ds.index(xs[0], ys[0])
                if not (0 <= r < ds.height and 0 <= c < ds.width):
                    continue
                v = next(ds.sample([(xs[0], ys[0])]))
                if (v != AEF_NODATA).all():
                    out[k] = dequantize_aef(v.astype(np.int8))
                    ok[k] = True
                break
        return out, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--naive", type=int, default=60, help="samples for the naive loop (subset)")
    ap.add_argument("--subset", type=int, default=2000, help="samples for the uncached and cache-build figures")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    with tempfile.TemporaryDirectory(prefix="bench_priors_") as tmp:
        root = Path(tmp) / "aef"
        t0 = time.perf_counter()
        areas = build_world(root, rng)
        recs = make_samples(args.samples, areas, rng)
        write_samples(Path(tmp) / "samples.jsonl", recs)
        load0 = os.getloadavg()[0]
        print(
            f"setup: {len(list(root.rglob('*.tiff')))} tiles, {len(recs)} samples in {time.perf_counter() - t0:.1f} s"
        )

        src = open_source(f"aef-cog:{root}")
        # Warm-up (dataset opening, transformer creation) is part of neither figure.
        for r in recs[:20]:
            sample_grid(src, None, r.year, 8, 8, r.width, r.height, r.georef)

        t0, c0 = time.perf_counter(), time.process_time()
        grids = [sample_grid(src, None, r.year, 8, 8, r.width, r.height, r.georef) for r in recs]
        t_fast, c_fast = time.perf_counter() - t0, time.process_time() - c0
        valid = np.mean([g.valid.mean() for g in grids])

        uncached = open_source(f"aef-cog:{root}", block_cache_mb=0)
        sub_u = recs[: args.subset]
        for r in recs[:20]:
            sample_grid(uncached, None, r.year, 8, 8, r.width, r.height, r.georef)
        t0, c0 = time.perf_counter(), time.process_time()
        for r, g in zip(sub_u, grids, strict=False):
            gu = sample_grid(uncached, None, r.year, 8, 8, r.width, r.height, r.georef)
            if not np.array_equal(gu.vectors, g.vectors):
                print(f"MISMATCH (uncached) on {r.id}", file=sys.stderr)
                return 1
        t_unc, c_unc = time.perf_counter() - t0, time.process_time() - c0

        naive = NaiveSampler(root)
        sub = recs[: args.naive]
        t0, c0 = time.perf_counter(), time.process_time()
        for r, g in zip(sub, grids, strict=False):
            year = g.year
            if year is None:
                continue
            inside = np.flatnonzero((g.x >= -25.6) & (g.x <= 537.6) & (g.y >= -25.6) & (g.y <= 537.6))
            vec, ok = naive.sample(g.lon[inside], g.lat[inside], year)
            if not (np.array_equal(ok, g.valid[inside]) and np.array_equal(vec, g.vectors[inside])):
                print(f"MISMATCH on {r.id}", file=sys.stderr)
                return 1
        t_naive, c_naive = time.perf_counter() - t0, time.process_time() - c0

        out = Path(tmp) / "cache"
        write_samples(Path(tmp) / "subset.jsonl", recs[: args.subset])
        t0, c0 = time.perf_counter(), time.process_time()
        summary = build_prior_cache(Path(tmp) / "subset.jsonl", src, (8, 8), out)
        t_cache, c_cache = time.perf_counter() - t0, time.process_time() - c0

    n_cache = summary["samples"]
    print(
        f"load average at start: {load0:.1f} on {os.cpu_count()} cores; rates: wall-clock | per CPU-second of this process"
    )
    print(
        f"sample_grid 8x8:      {len(recs) / t_fast:7.0f} | {len(recs) / c_fast:7.0f} samples/s  ({len(recs)} samples, {100 * valid:.1f}% nodes valid, block cache)"
    )
    print(
        f"  without block cache:{len(sub_u) / t_unc:7.0f} | {len(sub_u) / c_unc:7.0f} samples/s  ({len(sub_u)} samples, identical vectors)"
    )
    print(
        f"naive per-node loop:  {len(sub) / t_naive:7.1f} | {len(sub) / c_naive:7.1f} samples/s  ({len(sub)} samples, identical vectors)"
    )
    print(
        f"ratio (CPU):          {(len(recs) / c_fast) / (len(sub) / c_naive):7.0f}x faster than the naive loop ({(len(sub_u) / c_unc) / (len(sub) / c_naive):.0f}x without block cache)"
    )
    print(
        f"build_prior_cache:    {n_cache / t_cache:7.0f} | {n_cache / c_cache:7.0f} samples/s  ({n_cache} samples, JSONL in, safetensors shards out; {summary['with_prior']} with prior)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
