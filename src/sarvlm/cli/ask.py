"""`sarvlm ask --model PATH IMAGE "question"`: one answer about one SAR image, with or without a prior."""

from __future__ import annotations

import argparse
import json


def add_generation_args(p: argparse.ArgumentParser) -> None:
    """Decoding options shared by ask and predict (greedy by default)."""
    g = p.add_argument_group("decoding (greedy unless --do-sample)")
    g.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="answer budget for every task (default: per task, e.g. count 16, detect 384, caption 160)",
    )
    g.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=50)
    g.add_argument("--num-beams", type=int, default=1)
    g.add_argument("--seed", type=int, default=0, help="sampling seed")
    g = p.add_argument_group("placement")
    g.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps (default: auto)"
    )
    g.add_argument(
        "--dtype",
        default="auto",
        help="auto (bf16 on CUDA GPUs that support it, fp32 elsewhere), float32, bf16, fp16 (default: auto)",
    )
    g.add_argument(
        "--attention",
        default="auto",
        choices=["auto", "sdpa", "flash_attention_2", "eager"],
        help="attention kernel (auto: FlashAttention 2 when installed on CUDA in bf16/fp16, else SDPA)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "ask",
        help="ask a model a question about one SAR image",
        description="Answer one question about a SAR image (PNG/JPEG/GeoTIFF), optionally with a co-located "
        "optical image. The AlphaEarth prior is sampled on the model's anchor grid from --bbox (or "
        "a georeferenced GeoTIFF's footprint), --year and --prior-source (default: the source saved "
        "with the model); --no-prior runs without one. A raw GeoTIFF scene given to a model trained by "
        "`sarvlm train` is preprocessed and tiled as its training data was (saved in inference.json), each "
        "tile is asked and the answers merged (counts summed, boxes in scene pixels); every answer says "
        "whether a prior was used.",
    )
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("question", metavar="QUESTION")
    p.add_argument(
        "--model", required=True, help="model directory, adapter directory, or tiny-qwen2.5-vl / tiny-qwen3-vl"
    )
    p.add_argument(
        "--optical", metavar="IMAGE", help="co-located optical image (given to the model after the SAR image)"
    )
    p.add_argument("--bbox", metavar="LON_MIN,LAT_MIN,LON_MAX,LAT_MAX", help="WGS84 footprint of the SAR image")
    p.add_argument("--year", type=int, help="year of the AlphaEarth layer")
    p.add_argument("--prior-source", metavar="SPEC", help="aef-cog:DIR, aef-zarr:PATH or earthengine[:PROJECT]")
    p.add_argument("--no-prior", action="store_true", help="do not use a prior")
    p.add_argument(
        "--no-preprocess",
        dest="preprocess",
        action="store_false",
        help="give a raw GeoTIFF to the model as it is instead of replaying the training preprocessing "
        "(filter, stretch, uint8, band choice, tiling) saved with the model",
    )
    p.add_argument(
        "--task", help="task of the question (count, grid, detect, ...): parses the answer and sets its budget"
    )
    p.add_argument("--json", action="store_true", help="print the answer, the parsed answer and the prior as JSON")
    add_generation_args(p)
    return p


def generation_options(args: argparse.Namespace):
    from sarvlm.inference.generate import GenerationOptions

    return GenerationOptions(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.do_sample,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        num_beams=args.num_beams,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from sarvlm.cli.common import parse_floats
    from sarvlm.core.errors import SarvlmError
    from sarvlm.io.raster import raster_info

    # safe-opener checks first (signature, driver, PNG/JPEG size, GeoTIFF blocks): no torch, no model;
    # the whole-image size is checked by ask() once it knows whether a raw scene will be tiled
    for image in (args.image, args.optical):
        if image is not None:
            raster_info(image)
    from sarvlm.inference.ask import ask

    if args.no_prior and (args.bbox or args.prior_source):
        raise SarvlmError("--no-prior cannot be combined with --bbox or --prior-source")
    bbox = parse_floats(args.bbox, 4, "--bbox") if args.bbox else None
    result = ask(
        args.model,
        args.image,
        args.question,
        optical=args.optical,
        bbox=bbox,
        year=args.year,
        prior_source=args.prior_source,
        no_prior=args.no_prior,
        task=args.task,
        options=generation_options(args),
        dtype=args.dtype,
        device=args.device,
        preprocess=args.preprocess,
        attention=args.attention,
    )
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        import sys

        print(result.answer)
        tiles = f"; {len(result.tiles)} tiles, training preprocessing applied" if result.tiles else ""
        print(result.prior_line() + tiles, file=sys.stderr)
    return 0
