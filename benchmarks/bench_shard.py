"""Benchmark: sharded / parallel ``preprocess`` and ``build`` — 2 workers vs 1, and the merge's cost.

Data: preprocess — N synthetic dual-pol float32 scenes of 256×256 px (refined Lee, window 7,
stretch, uint8, SRC tiles of 256 m at 2 m → 4 tiles each, screening); build — the COCO-style records
of ``bench_build.py`` (8 FUSAR-GPT + SARLANG-1M tasks).

Figures (one run):
- preprocess ``--workers 2`` vs ``--workers 1`` (process pool over contiguous blocks of records):
  wall time ratio; outputs compared byte for byte;
- build as an array job: 2 shards run side by side (2 processes) vs one unsharded build, plus
  ``sarvlm merge``'s own time (concatenation of the split files, manifest and QC report) as a share
  of the unsharded build; outputs compared byte for byte;
- build ``--workers 2`` (8 blocks built as shards in a process pool, joined inside the output
  directory) vs the unsharded build; outputs compared byte for byte.
On the 2-core project machine, shared with other jobs, the speed-up is bounded by the free cores.

    python benchmarks/bench_shard.py [--scenes 24] [--records 20000] [--out docs/bench/shard.md]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SARVLM_NO_PROGRESS", "1")
sys.path.insert(0, str(Path(__file__).parent))


def make_scenes(root: Path, n: int) -> Path:
    import numpy as np

    from sarvlm.core.record import GeoRef, SampleRecord, write_samples
    from sarvlm.io.raster import write_raster

    georef = GeoRef(crs="EPSG:32631", transform=[2.0, 0.0, 350000.0, 0.0, -2.0, 3450000.0])
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        base = np.where(np.arange(256)[None] < 128, 0.01, 0.2) * np.ones((256, 1))
        pixels = np.stack([base * rng.gamma(1.0, 1.0, (256, 256)), 0.2 * base * rng.gamma(1.0, 1.0, (256, 256))])
        write_raster(
            root / f"images/s{i}.tif", pixels.astype(np.float32), georef=georef, band_descriptions=["VV", "VH"]
        )
        recs.append(
            SampleRecord(
                id=f"s{i}", image=f"images/s{i}.tif", width=256, height=256, polarizations=["VV", "VH"],
                resolution_m=2.0, date="2021-05-01", georef=georef,
            )
        )  # fmt: skip
    write_samples(root / "samples.jsonl", recs)
    return root / "samples.jsonl"


def same_tree(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if files != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return False
    return all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def sarvlm(*argv: str) -> subprocess.Popen:
    code = "import sys; from sarvlm.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.DEVNULL)


def timed(*procs_argv: list[str]) -> float:
    t0 = time.perf_counter()
    procs = [sarvlm(*argv) for argv in procs_argv]
    assert all(p.wait() == 0 for p in procs)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=24)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from bench_build import make_samples

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        scenes = make_scenes(root / "scenes", args.scenes)
        prep = ["preprocess", str(scenes), "--pol", "VV", "--filter", "refined-lee", "--stretch", "--uint8"]
        prep += ["--tile-m", "256", "--screen", "--no-plots"]
        one = timed([*prep, "--out", str(root / "p1")])
        two = timed([*prep, "--out", str(root / "p2"), "--workers", "2"])
        prep_same = same_tree(root / "p1", root / "p2")

        samples = root / "records.jsonl"
        make_samples(samples, args.records)
        build = ["build", str(samples), "--tasks", "fusar-gpt,sarlang"]
        whole = timed([*build, str(root / "b1")])
        shards = timed([*build, str(root / "b2"), "--shard", "0/2"], [*build, str(root / "b2"), "--shard", "1/2"])
        merge = timed(["merge", str(root / "b2")])
        build_same = same_tree(root / "b1", root / "b2")
        pool = timed([*build, str(root / "b3"), "--workers", "2"])
        pool_same = same_tree(root / "b1", root / "b3")
    rows = [
        (f"preprocess {args.scenes} scenes, 1 worker", f"{one:.1f} s", "1.00×"),
        (f"preprocess {args.scenes} scenes, `--workers 2`", f"{two:.1f} s", f"{one / two:.2f}× speed-up"),
        ("preprocess outputs identical", str(prep_same), ""),
        (f"build {args.records} records, unsharded", f"{whole:.1f} s", "1.00×"),
        ("build, 2 shards side by side (`--shard 0/2`, `1/2`)", f"{shards:.1f} s", f"{whole / shards:.2f}× speed-up"),
        ("`sarvlm merge` of the 2 build shards", f"{merge:.1f} s", f"{merge / whole:.0%} of the unsharded build"),
        ("build outputs identical (after merge)", str(build_same), ""),
        (
            "build, `--workers 2` (blocks in a process pool, joined in place)",
            f"{pool:.1f} s",
            f"{whole / pool:.2f}× speed-up",
        ),
        ("build `--workers 2` output identical", str(pool_same), ""),
    ]
    text = f"{os.cpu_count()} CPU cores\n\n| run | wall time | ratio |\n|---|---:|---:|\n"
    text += "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
