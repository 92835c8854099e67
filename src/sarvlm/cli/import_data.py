"""`sarvlm import FORMAT SRC --images DIR --out SAMPLES.jsonl`: annotations -> sample records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("coco", "dota", "voc", "yolo", "sarlang", "geovl", "llava", "swift")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "import",
        help="import an annotated SAR dataset as sample records",
        description="Convert detection annotations (COCO, DOTA, VOC, YOLO) or text datasets (SARLANG-1M, "
        "FUSAR-GEOVL-1M, LLaVA, ms-swift) into sarvlm sample records (JSONL). Every image is "
        "checked: it must exist, be readable and match the annotated size.",
    )
    p.add_argument("format", metavar="FORMAT", help=f"one of: {', '.join(FORMATS)}")
    p.add_argument("src", metavar="SRC", help="annotation file or folder")
    p.add_argument(
        "--images",
        metavar="DIR",
        help="folder the annotations' image names are relative to (default: the folder of SRC)",
    )
    p.add_argument("--out", metavar="SAMPLES.jsonl", required=True, help="output sample records")
    p.add_argument("--source", help="dataset name stored in each record (e.g. SARDet-100k); also prefixes ids")
    p.add_argument("--split", help="split of every record (train/val/test); default: from the format or none")
    p.add_argument("--skip-missing", action="store_true", help="skip (and count) samples whose image is missing")
    p.add_argument(
        "--no-check-images",
        dest="check_images",
        action="store_false",
        help="only check that images exist (read sizes from headers), do not decode them",
    )
    p.add_argument(
        "--fine-from-supercategory",
        action="store_true",
        help="coco: category = supercategory, fine category = name (SAR-AIRcraft style)",
    )
    p.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept image names that leave the --images folder (absolute paths, ../); refused by default",
    )
    p.add_argument("--classes", metavar="FILE", help="yolo: classes.txt or data.yaml with the class names")
    g = p.add_argument_group(
        "acquisition facts (sarvlm priors needs the year)",
        "Per field, the first found wins: the --meta CSV row of the image, what the format or file carries "
        "(COCO date_captured, GeoTIFF band descriptions, ACQUISITION_DATE tag), then these defaults.",
    )
    g.add_argument(
        "--meta",
        metavar="CSV",
        help="sidecar CSV: file_name plus any of date, year, sensor, band, polarizations, resolution_m",
    )
    g.add_argument("--date", metavar="YYYY[-MM[-DD]]", help="acquisition date of records that have none")
    g.add_argument("--year", type=int, metavar="YYYY", help="acquisition year of records that have no date")
    g.add_argument("--sensor", help="sensor of records that have none (e.g. Sentinel-1A)")
    g.add_argument("--pol", metavar="POLS", help="polarisation of each band, e.g. VV+VH or HH (records without)")
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.core.errors import SarvlmError
    from sarvlm.data.importers import IMPORTERS, import_dataset

    if args.format not in IMPORTERS:
        raise SarvlmError(f"unknown import format {args.format!r} (expected one of {', '.join(IMPORTERS)})")
    options = {}
    if args.format == "coco":
        options["fine_from_supercategory"] = args.fine_from_supercategory
    if args.format == "yolo" and args.classes:
        options["classes"] = Path(args.classes)
    if args.date and args.year:
        raise SarvlmError("--date and --year: give one of them")
    result = import_dataset(
        args.format,
        args.src,
        args.out,
        images=args.images,
        source=args.source,
        split=args.split,
        skip_missing=args.skip_missing,
        check_images=args.check_images,
        date=args.date or args.year,
        sensor=args.sensor,
        polarizations=args.pol,
        meta=args.meta,
        allow_outside_root=args.allow_outside_root,
        **options,
    )
    extra = ", ".join(f"{k}: {v}" for k, v in sorted(result.counts.items()) if k != "records")
    print(f"wrote {result.records} sample records to {result.out}" + (f" ({extra})" if extra else ""), file=sys.stderr)
    undated = result.counts.get("without_date", 0)
    if undated:
        print(
            f"warning: {undated} of {result.records} records have no acquisition date: `sarvlm priors` gives them "
            "no prior (set it with --date/--year or a --meta CSV)",
            file=sys.stderr,
        )
    return 0
