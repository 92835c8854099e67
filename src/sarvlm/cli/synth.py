"""`sarvlm synth`: generate the built-in synthetic SAR world."""

from __future__ import annotations

import argparse

from sarvlm.core.errors import SarvlmError


def _years(value: str) -> list[int]:
    try:
        years = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--years must be comma-separated years, e.g. 2021,2022; got {value!r}"
        ) from None
    if not years:
        raise argparse.ArgumentTypeError("--years: give at least one year")
    return years


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "synth",
        help="generate the synthetic SAR world (scenes, masks, optical, AlphaEarth-layout embeddings)",
        description=(
            "Generate N synthetic SAR scenes: float32 intensity GeoTIFFs (UTM, real lon/lat footprints "
            "across UTM zones 50N/51N), land-cover masks, objects with boxes and fine types, template "
            "captions, paired optical renderings, and an AlphaEarth-like 64-d embedding field in the "
            "official COG layout (OUT/aef, with aef_index.csv/.parquet). Same seed, same bytes. "
            "See docs/synthetic-world.md."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("out", help="output directory (must be absent or empty unless --overwrite)")
    p.add_argument("--scenes", type=int, default=100, help="number of scenes")
    p.add_argument("--seed", type=int, default=0, help="world seed")
    p.add_argument("--size", type=int, default=256, help="scene side in pixels")
    p.add_argument("--looks", type=float, default=4.0, help="number of looks L of the Gamma speckle")
    p.add_argument("--resolution", type=float, default=2.0, help="pixel spacing in metres")
    p.add_argument("--no-optical", action="store_true", help="skip the paired optical renderings")
    p.add_argument(
        "--years",
        type=_years,
        default="2021,2022",
        metavar="Y[,Y...]",
        help="acquisition years (comma-separated); the embedding field covers every scene in each",
    )
    p.add_argument(
        "--pols",
        default="VV",
        choices=["VV", "VV,VH"],
        metavar="{VV | VV,VH}",
        help="polarisations: VV, or VV,VH for a second cross-polarised band",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--preview", action="store_true", help="also write OUT/preview.png of the first scene")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes generating sites in parallel (default: 2 for 24+ scenes on multi-core machines); "
        "output bytes do not depend on it",
    )
    p.add_argument(
        "--geovl-captions",
        action="store_true",
        help="also write a FUSAR-GEOVL 8-field structured caption per scene (see docs/foundation.md)",
    )
    p.add_argument(
        "--geovl-corrupt",
        type=float,
        default=None,
        metavar="FRACTION",
        help="write 8-field captions with this fraction of fragments corrupted (wrong land cover, wrong "
        "counts, swapped fields), recorded in meta.geovl_corruptions; implies --geovl-captions",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.synth.world import default_workers, generate_world

    if args.scenes <= 0:
        raise SarvlmError(f"--scenes: must be a positive integer, got {args.scenes}")
    workers = default_workers(args.scenes) if args.workers is None else args.workers
    summary = generate_world(
        args.out,
        args.scenes,
        args.seed,
        size=args.size,
        looks=args.looks,
        resolution_m=args.resolution,
        optical=not args.no_optical,
        years=args.years,
        overwrite=args.overwrite,
        preview=args.preview,
        workers=workers,
        polarizations=args.pols.split(","),
        geovl_corrupt=args.geovl_corrupt if args.geovl_corrupt is not None else (0.0 if args.geovl_captions else None),
    )
    objs = ", ".join(f"{n} {k}" for k, n in summary.objects.items()) or "no objects"
    print(
        f"wrote {summary.scenes} scenes to {summary.out_dir} ({objs}; {summary.clutter} unannotated clutter; "
        f"{summary.aef_tiles} embedding tiles in zones {', '.join(summary.zones)} for {', '.join(map(str, summary.years))})"
    )
    return 0
