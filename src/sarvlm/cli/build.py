"""`sarvlm build SAMPLES.jsonl OUT_DIR --tasks ... --seed S`: sample records -> instruction data."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "build",
        help="build instruction data (train/val/test JSONL) from sample records",
        description="Generate the papers' task templates (SARLANG-1M VQA, FUSAR-GPT target tasks, FUSAR-KLIP "
        "landforms and captions, LunarOS-Mini dialogues) from sample records, split by image, run "
        "quality control and export JSONL. Same inputs and seed give byte-identical files.",
    )
    p.add_argument("samples", metavar="SAMPLES.jsonl")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument(
        "--tasks",
        default="count,grid,classify_box,detect",
        help="comma-separated tasks or groups (fusar-gpt, sarlang, landform, all); tasks: count, grid, "
        "classify_box, detect, identify, classify, position, refer, landform_main, landform_all, "
        "landform_region, caption, dialogue, vqa (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--coords",
        default="qwen2.5",
        help="box convention in the text: qwen2.5, qwen3, qwen2, norm, pixel, geochat (default: %(default)s)",
    )
    p.add_argument("--split", default="8:1:1", help="8:1:1, 7:3, 4:1, keep or keep,7:3 (default: %(default)s)")
    p.add_argument(
        "--split-method",
        default="hash",
        choices=("hash", "balanced"),
        help="hash: seeded hash of the image, flat memory (default); balanced: exact proportions per "
        "source, for small datasets (remembers every image)",
    )
    p.add_argument(
        "--swift-objects",
        action="store_true",
        help="with --format swift: detect rows use ms-swift's grounding field objects {ref, bbox} (original "
        "pixels) and <bbox> placeholders, so ms-swift writes boxes in the trained model's convention",
    )
    p.add_argument(
        "--group-by",
        default="auto",
        help="what stays in one split: auto (tiles of one scene together, else each image), image, scene, "
        "source, or meta.KEY (default: %(default)s)",
    )
    p.add_argument(
        "--format",
        default="sarvlm",
        help="sarvlm; swift (ms-swift JSONL + LLaMA-Factory dataset_info.json); llava (+ SPLIT.json array); "
        "geochat (llava with {<x1><y1><x2><y2>|θ} boxes and task tokens; needs --coords geochat). Exports "
        "for other tools carry absolute image paths (default: %(default)s)",
    )
    p.add_argument("--max-per-sample", type=int, default=3, help="cap on examples of one task per sample")
    p.add_argument(
        "--negative-rate",
        type=float,
        default=0.25,
        help="chance of one absent-category question per sample for count/grid/detect",
    )
    p.add_argument(
        "--categories",
        help="comma-separated vocabulary; objects of other categories are dropped "
        "(default: every category in the samples)",
    )
    p.add_argument(
        "--no-synonyms",
        dest="use_synonyms",
        action="store_false",
        help="do not map category synonyms (plane -> aircraft, vessel -> ship, ...)",
    )
    p.add_argument("--qc", default="drop", choices=("drop", "flag"), help="drop or only flag examples failing text QC")
    p.add_argument("--boxes", default="clip", choices=("clip", "drop"), help="boxes partly outside the image")
    p.add_argument("--skip-missing", action="store_true", help="skip (and count) samples whose image is missing")
    p.add_argument(
        "--with-optical",
        action="store_true",
        help="add each sample's paired optical image as a second image (SAR first)",
    )
    p.add_argument(
        "--class-hint",
        action="store_true",
        help="prefix classify/refer/position questions with their answer set (SARLANG-1M's advice "
        "when mixing its SARDet-100k questions with other VQA data)",
    )
    p.add_argument("--absolute-images", action="store_true", help="write absolute image paths")
    p.add_argument("--min-pixels", type=int, default=None, help="qwen2.5 smart_resize min_pixels")
    p.add_argument("--max-pixels", type=int, default=None, help="qwen2.5 smart_resize max_pixels")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="build only the K-th of N contiguous blocks of the records (K from 0) into OUT_DIR.shard-K-of-N; "
        "`sarvlm merge OUT_DIR` joins the N parts into exactly what one run writes",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes building contiguous blocks of records (default 1); the output is the same byte for byte "
        "(needs --split-method hash)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="build the blocks on a Dask cluster: tcp://HOST:8786 (workers must share this file system) or "
        "'local' (a LocalCluster of --workers processes); needs pip install -e '.[dask]'",
    )
    p.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept record paths (image, optical, land-cover mask) leaving the samples file's folder "
        "(absolute, ../); refused by default; recorded in manifest.json",
    )
    p.add_argument(
        "--geovl-corrupt",
        type=float,
        default=None,
        metavar="FRACTION",
        help="add a FUSAR-GEOVL 8-field structured caption to every synthetic record with this fraction of "
        "fragments corrupted, as `sarvlm synth --geovl-corrupt` does (same code, --seed); the corruptions "
        "go to OUT_DIR/geovl_corruptions.jsonl (docs/foundation.md)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.data.builder import BuildOptions, build_dataset

    opts = BuildOptions(
        tasks=args.tasks.split(","),
        seed=args.seed,
        coords=args.coords,
        split=args.split,
        split_method=args.split_method,
        group_by=args.group_by,
        swift_objects=args.swift_objects,
        format=args.format,
        max_per_sample=args.max_per_sample,
        negative_rate=args.negative_rate,
        categories=args.categories.split(",") if args.categories else None,
        use_synonyms=args.use_synonyms,
        qc=args.qc,
        boxes=args.boxes,
        skip_missing=args.skip_missing,
        absolute_images=args.absolute_images,
        with_optical=args.with_optical,
        class_hint=args.class_hint,
        overwrite=args.overwrite,
        allow_outside_root=args.allow_outside_root,
        geovl_corrupt=args.geovl_corrupt,
    )
    if args.min_pixels is not None:
        opts.min_pixels = args.min_pixels
    if args.max_pixels is not None:
        opts.max_pixels = args.max_pixels
    result = build_dataset(
        args.samples, args.out_dir, opts, shard=args.shard, workers=args.workers, scheduler=args.scheduler
    )
    for split, tasks in result.counts.items():
        detail = ", ".join(f"{t} {n}" for t, n in tasks.items())
        print(f"{split}: {sum(tasks.values())} examples" + (f" ({detail})" if detail else ""), file=sys.stderr)
    issues = ", ".join(f"{r} {n}" for r, n in sorted(result.quality.counts.items()))
    if issues:
        print(f"quality control: {issues} (see {result.out_dir}/quality.md)", file=sys.stderr)
    for task, need in result.manifest.get("tasks_without_examples", {}).items():
        print(f"warning: task {task}: no example (it needs {need})", file=sys.stderr)
    print(f"wrote {result.total} examples to {result.out_dir}", file=sys.stderr)
    return 0
