"""`sarvlm priors`: build the AlphaEarth prior cache of a dataset, or show one sample's prior."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sarvlm.cli.common import parse_pair
from sarvlm.core.errors import SarvlmError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "priors",
        help="sample AlphaEarth embeddings on anchor grids (FUSAR-GPT priors) for a dataset, or show one",
        description="sarvlm priors DATA --source SPEC --grid 8x8 --out DIR\n"
        "    compute the anchor-grid prior of every sample in DATA (samples JSONL, examples JSONL or a built\n"
        "    dataset directory) into a resumable cache keyed by sample id.\n"
        "sarvlm priors show SAMPLE --source SPEC --out PNG [--id ID]\n"
        "    render the SAR image beside the embedding field (three channels as RGB) with the grid nodes.\n"
        "sarvlm priors tiles DATA --source aef-cog:DIR [--fetch]\n"
        "    list exactly the AlphaEarth tiles DATA needs, from DIR/aef_index.csv (download it from\n"
        "    gs://alphaearth_foundations/satellite_embedding/v1/annual/aef_index.csv); --fetch copies the\n"
        "    missing ones into DIR with gcloud, gsutil or HTTPS. Licence CC-BY 4.0 (Google, Google DeepMind).\n"
        "\n"
        "SPEC: aef-cog:DIR (official AlphaEarth COG layout with aef_index), aef-zarr:PATH (aef-download\n"
        "stores), earthengine[:PROJECT] (needs pip install -e '.[earthengine]').",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="DATA | show | tiles", help="dataset to cache, or the word 'show' or 'tiles'")
    p.add_argument(
        "sample",
        nargs="?",
        metavar="SAMPLE",
        help="show: a samples JSONL (first record or --id) or a georeferenced raster",
    )
    p.add_argument(
        "--source",
        required=True,
        metavar="SPEC",
        help="embedding source: aef-cog:DIR, aef-zarr:PATH or earthengine[:PROJECT]",
    )
    p.add_argument(
        "--grid", default="8x8", metavar="NLONxNLAT", help="anchor grid size N_lon x N_lat (default: %(default)s)"
    )
    p.add_argument("--out", help="cache directory (or the PNG path for show); not used by tiles")
    p.add_argument("--fetch", action="store_true", help="tiles: download the tiles that are not in DIR yet")
    p.add_argument(
        "--year-policy",
        choices=("nearest", "exact"),
        default="nearest",
        help="fall back to the nearest available year, or not (default: %(default)s)",
    )
    p.add_argument("--default-year", type=int, help="year for samples without a date (default: they get no prior)")
    p.add_argument("--shard-size", type=int, default=512, help="samples per cache shard (default: %(default)s)")
    p.add_argument(
        "--missing-tiles",
        choices=("error", "skip"),
        default="error",
        help="aef-cog: tiles in the index but not on disk (default: %(default)s)",
    )
    p.add_argument(
        "--min-coverage",
        type=float,
        metavar="FRACTION",
        help="fail (exit 2, cache kept) when fewer samples than this fraction (0..1) have a prior "
        "(default: fail only when none has)",
    )
    p.add_argument("--overwrite", action="store_true", help="rebuild a cache whose settings differ")
    p.add_argument("--workers", type=int, default=1, help="processes computing cache shards (default 1)")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="compute cache shards on a Dask cluster: tcp://HOST:8786 (workers must share this file system) "
        "or 'local'; needs pip install -e '.[dask]'",
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="compute only the K-th of N contiguous blocks of cache shards (K from 0) into OUT.shard-K-of-N; "
        "`sarvlm merge OUT` joins the N parts into the cache one run writes",
    )
    p.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="show: accept a record image path leaving the samples file's folder (refused by default)",
    )
    p.add_argument("--id", dest="sample_id", help="show: the sample id in the JSONL")
    p.add_argument("--year", type=int, help="show: override the sample's year (required for a bare raster)")
    p.add_argument(
        "--channels", default="1,16,9", help="show: three embedding channels for R,G,B, or 'pca' (default: %(default)s)"
    )
    return p


def _source_options(args: argparse.Namespace) -> dict:
    return {"missing_tiles": args.missing_tiles} if args.source.lower().startswith("aef-cog:") else {}


def run(args: argparse.Namespace) -> int:
    from sarvlm.priors.sources import open_source

    if args.target == "tiles":
        return _tiles(args)
    if not args.out:
        raise SarvlmError("priors: --out is required")
    grid = parse_pair(args.grid, name="--grid")
    if grid[0] < 1 or grid[1] < 1:
        raise SarvlmError(f"--grid must be at least 1x1, got {args.grid!r}")
    if args.target == "show":
        from sarvlm.priors.show import show_sample

        if not args.sample:
            raise SarvlmError("priors show: needs a SAMPLE (samples JSONL or georeferenced raster)")
        channels: str | list[int]
        if args.channels.strip().lower() == "pca":
            channels = "pca"
        else:
            try:
                channels = [int(c) for c in args.channels.split(",")]
            except ValueError:
                raise SarvlmError(
                    f"--channels must be 3 comma-separated integers or 'pca', got {args.channels!r}"
                ) from None
        source = open_source(args.source, **_source_options(args))
        try:
            out = show_sample(
                args.sample,
                source,
                args.out,
                sample_id=args.sample_id,
                grid=grid,
                year=args.year,
                channels=channels,
                allow_outside_root=args.allow_outside_root,
            )
        finally:
            source.close()
        print(f"wrote {out}")
        return 0

    from sarvlm.priors.cache import build_prior_cache, coverage_problems

    if args.min_coverage is not None and not 0.0 <= args.min_coverage <= 1.0:
        raise SarvlmError(f"--min-coverage must be a fraction in [0, 1], got {args.min_coverage}")
    if args.sample:
        raise SarvlmError(
            f"priors: unexpected argument {args.sample!r} (did you mean `sarvlm priors show {args.sample}`?)"
        )
    summary = build_prior_cache(
        Path(args.target),
        args.source,
        grid,
        args.out,
        shard_size=args.shard_size,
        year_policy=args.year_policy,
        default_year=args.default_year,
        overwrite=args.overwrite,
        source_options=_source_options(args),
        shard=args.shard,
        workers=args.workers,
        scheduler=args.scheduler,
    )
    if args.shard:
        print(f"priors shard {args.shard}: {summary['samples']} samples in {summary['shards']} cache shard(s)")
        return 0
    _print_summary(summary, args.out)
    warnings, error = coverage_problems(summary, args.min_coverage)
    if warnings:
        print("\n".join(warnings), file=sys.stderr)
    if error:
        raise SarvlmError(f"{args.out}: {error}")
    return 0


def _tiles(args: argparse.Namespace) -> int:
    from sarvlm.priors.tiles import fetch_tiles, needed_tiles

    if not args.sample:
        raise SarvlmError("priors tiles: needs DATA (samples JSONL, examples JSONL or dataset directory)")
    report = needed_tiles(args.sample, args.source, args.year_policy, args.default_year)
    for need in report.tiles:
        state = "present" if need.present else "missing"
        print(f"{need.path}\t{need.year}\t{len(need.samples)} samples\t{state}")
    missing = sum(not n.present for n in report.tiles)
    lines = [f"{len(report.tiles)} tiles for {report.samples} samples ({missing} not in {args.source[8:]})"]
    lines += [f"  samples no tile serves ({reason}): {n}" for reason, n in report.uncovered.items()]
    print("\n".join(lines), file=sys.stderr)
    if args.fetch and missing:
        n = fetch_tiles(report, log=lambda text: print(text, file=sys.stderr))
        print(f"fetched {n} tiles", file=sys.stderr)
    return 0


def _print_summary(summary: dict, out: str) -> None:
    n = summary["samples"]
    nodes = summary["nodes_valid"] + summary["nodes_invalid"]
    lines = [
        f"priors {summary['grid']} from {summary['source']} -> {out}",
        f"  samples: {n}, with prior: {summary['with_prior']}"
        + (
            f" (resumed {summary['shards_resumed']}/{summary['shards']} shards)"
            if summary.get("shards_resumed")
            else ""
        ),
    ]
    for reason, count in summary["no_prior"].items():
        lines.append(f"  no prior ({reason}): {count}")
    if nodes:
        lines.append(f"  nodes valid: {summary['nodes_valid']}/{nodes} ({100.0 * summary['nodes_valid'] / nodes:.1f}%)")
    if summary["years_used"]:
        lines.append("  years used: " + ", ".join(f"{y}: {c}" for y, c in summary["years_used"].items()))
    if summary["year_fallbacks"]:
        lines.append(
            "  nearest-year fallbacks: " + ", ".join(f"{k}: {c}" for k, c in summary["year_fallbacks"].items())
        )
    if summary.get("footprint_error_example"):
        lines.append(f"  e.g. {summary['footprint_error_example']}")
    lines.append(f"  summary: {Path(out) / 'summary.json'}")
    print("\n".join(lines))
    sys.stdout.flush()
