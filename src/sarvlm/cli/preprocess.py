"""`sarvlm preprocess INPUT --out DIR`: polarisation, conversion, speckle filter, stretch, uint8,
SRC tiling and quality screening over a samples JSONL or a single raster."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
examples:
  sarvlm preprocess world/samples.jsonl --out prep --filter refined-lee --window 7 --stretch --uint8
  sarvlm preprocess world/samples.jsonl --out tiles --tile-m 500 --target-res-m 2 --uint8 --screen
  sarvlm preprocess scene.tif --out prep --pol VV --to db
  sarvlm preprocess dual.tif --out prep --composite dual --filter lee --looks 4.4 --stretch --uint8
  sarvlm preprocess S1A_IW_GRDH_1SDV_....SAFE --out prep --pol VH --filter refined-lee --looks 4.4 --tile-m 2560

steps run in this order: read (complex -> intensity) -> --input quantity to intensity -> --pol /
--composite -> --filter -> --to -> --stretch (log + percentile) -> --uint8 -> write (PNG for uint8,
GeoTIFF float32 otherwise). With --tile-m each scene becomes SRC tiles of that ground size.
DIR gets images/, samples.jsonl, preprocess.json, preview.png (and screening.jsonl/.png with --screen);
it appears only when everything succeeded.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "preprocess",
        help="SAR preprocessing: polarisation, dB, speckle filters, stretch, uint8, SRC tiles, screening",
        description="Preprocess SAR images listed in a samples JSONL (or one raster file) into a new dataset "
        "directory with updated sample records.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "input",
        type=Path,
        help="samples JSONL (every record is processed), a raster file (.tif/.png/.jpg), "
        "or a Sentinel-1 .SAFE directory (one polarisation, --pol)",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory (must be new or empty unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept record paths (image, optical, mask) leaving the samples file's folder (absolute, ../); "
        "refused by default; recorded in preprocess.json",
    )
    g = p.add_argument_group("polarisation and quantities")
    g.add_argument(
        "--pol",
        help="keep one polarisation: HH, HV, VH, VV, or co / cross (the co- or cross-polarised band of each "
        "image, for archives mixing VV and HH products). Multi-band images given neither --pol nor "
        "--composite keep their co-pol band only, with a warning",
    )
    g.add_argument(
        "--composite",
        choices=["dual"],
        help="3-channel dual-pol composite written as RGB: co-pol, cross-pol, their mean (e.g. VV, VH, (VV+VH)/2)",
    )
    g.add_argument(
        "--input-kind",
        dest="input_kind",
        default="auto",
        choices=["auto", "intensity", "amplitude", "db"],
        help="what the input pixels are (auto: complex SLC -> intensity, else the 'quantity' tag/meta, else intensity)",
    )
    g.add_argument(
        "--to",
        default="intensity",
        choices=["intensity", "amplitude", "db"],
        help="output quantity (default intensity)",
    )
    g = p.add_argument_group("speckle filter")
    g.add_argument(
        "--filter",
        default="none",
        choices=["refined-lee", "lee", "boxcar", "none"],
        help="speckle filter (default none)",
    )
    g.add_argument("--window", type=int, default=7, help="filter window, odd, 3..31 (default 7)")
    g.add_argument("--looks", type=float, default=1.0, help="equivalent number of looks of the input (default 1)")
    g = p.add_argument_group("contrast and quantisation")
    g.add_argument(
        "--stretch", action="store_true", help="log transform then linear percentile stretch to 0..1 (SARLANG-1M)"
    )
    g.add_argument("--stretch-pct", default="2,98", help="stretch percentiles LOW,HIGH (default 2,98)")
    g.add_argument(
        "--uint8", action="store_true", help="quantise to uint8 and write PNG (FUSAR-KLIP dynamic range compression)"
    )
    g.add_argument(
        "--clip-pct", default="0.5,99.5", help="uint8 clip percentiles LOW,HIGH when not stretched (default 0.5,99.5)"
    )
    g.add_argument(
        "--format",
        default="auto",
        choices=["auto", "png", "tif"],
        help="output format (auto: PNG for uint8, else GeoTIFF)",
    )
    g = p.add_argument_group("SRC tiling")
    g.add_argument("--tile-m", type=float, help="tile side in metres; tile pixels follow each scene's pixel spacing")
    g.add_argument(
        "--target-res-m",
        "--target-res",
        dest="target_res_m",
        type=float,
        help="resample tiles to this pixel size in metres",
    )
    g.add_argument(
        "--edge",
        default="shift",
        choices=["shift", "drop"],
        help="remainder at the right/bottom edge: a last tile flush with the edge (shift) or none (drop)",
    )
    g.add_argument(
        "--min-visible",
        type=float,
        default=0.5,
        help="keep a cut object if this fraction of its box is inside (default 0.5)",
    )
    g = p.add_argument_group("quality screening")
    g.add_argument(
        "--screen", action="store_true", help="GLCM + statistics + KNN filter dropping low-information outputs"
    )
    g.add_argument("--screen-k", type=int, default=5, help="neighbours in the KNN vote (default 5)")
    g.add_argument(
        "--screen-quantile", type=float, default=0.1, help="lowest information-score fraction considered (default 0.1)"
    )
    g.add_argument("--no-plots", action="store_true", help="skip preview.png / screening.png")
    g = p.add_argument_group("scale out (samples JSONL input; the output is the same byte for byte)")
    g.add_argument("--workers", type=int, default=1, help="processes working on blocks of records (default 1)")
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the blocks on a Dask cluster: tcp://HOST:8786 (workers must share this file system) or "
        "'local' (a LocalCluster of --workers processes); needs pip install -e '.[dask]'",
    )
    g.add_argument(
        "--shard",
        metavar="K/N",
        help="process only the K-th of N contiguous blocks of records (K from 0) into OUT.shard-K-of-N; "
        "`sarvlm merge OUT` joins the parts, then screens and plots",
    )
    return p


def run(args: argparse.Namespace) -> int:
    import warnings

    from sarvlm.cli.common import parse_floats
    from sarvlm.core.errors import SarvlmError
    from sarvlm.preprocess.pipeline import PreprocessConfig, preprocess_raster, preprocess_safe, preprocess_samples
    from sarvlm.preprocess.tiling import PixelModeWarning

    stretch_low, stretch_high = parse_floats(args.stretch_pct, 2, "--stretch-pct")
    clip_low, clip_high = parse_floats(args.clip_pct, 2, "--clip-pct")
    config = PreprocessConfig(
        pol=args.pol,
        composite=args.composite,
        input=args.input_kind,
        to=args.to,
        filter=args.filter,
        window=args.window,
        looks=args.looks,
        stretch=args.stretch,
        stretch_low=stretch_low,
        stretch_high=stretch_high,
        uint8=args.uint8,
        clip_low=clip_low,
        clip_high=clip_high,
        tile_m=args.tile_m,
        target_res_m=args.target_res_m,
        edge=args.edge,
        min_visible=args.min_visible,
        screen=args.screen,
        screen_k=args.screen_k,
        screen_low_quantile=args.screen_quantile,
        format=args.format,
        overwrite=args.overwrite,
        plots=not args.no_plots,
        allow_outside_root=args.allow_outside_root,
    )
    source: Path = args.input
    if not source.exists():
        raise SarvlmError(f"{source}: no such file")
    if args.shard and source.suffix.lower() not in (".jsonl", ".json"):
        raise SarvlmError("--shard: needs a samples JSONL input (a single scene is one unit of work)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PixelModeWarning)
        if source.is_dir() and source.suffix.upper() == ".SAFE":
            out = preprocess_safe(source, args.out, config)
        elif source.suffix.lower() in (".jsonl", ".json"):
            out = preprocess_samples(
                source, args.out, config, workers=args.workers, scheduler=args.scheduler, shard=args.shard
            )
        else:
            out = preprocess_raster(source, args.out, config)
    import sys

    for w in caught:
        if issubclass(w.category, PixelModeWarning):
            print(f"sarvlm: warning: {w.message}", file=sys.stderr)
    import json

    if args.shard:
        n = sum(1 for line in out.read_text(encoding="utf-8").splitlines() if line.strip())
        print(f"wrote shard {args.shard}: {n} images to {out.parent} (join the shards with `sarvlm merge {args.out}`)")
        return 0
    counts = json.loads((args.out / "preprocess.json").read_text())["counts"]
    kept = counts.get("multiband_kept_copol") or []
    if kept:
        print(
            f"sarvlm: warning: {len(kept)} multi-band image(s) reduced to one band (e.g. {kept[0]}): "
            "pass --composite dual for co/cross/mean as RGB, or --pol to choose the band",
            file=sys.stderr,
        )
    extra = f", {counts['screened_out']} screened out (see screening.jsonl)" if args.screen else ""
    print(f"wrote {counts['outputs'] - counts['screened_out']} images from {counts['scenes']} scene(s) to {out}{extra}")
    return 0
