"""Benchmark: KLIP (tiny-klip) pretraining step, SCIO screening, and 10k × 10k retrieval on CPU.

Figures (wall and CPU time of this process, one thread; the machine may be shared):

1. step: tiny-klip pretraining step (ITC with momentum + queue, ITM with hard negatives, MLM;
   forward, backward, AdamW) at batch 8 on 112² single-channel images. Peer, same run: a
   CLIP-style step (image + text towers, InfoNCE only, no momentum/queue/ITM/MLM) on the same
   model and batch; the ratio is what BLIP's extra objectives cost.
   Data share: assembling a batch from the preloaded images + pre-tokenised texts, and (for
   reference) reading + resizing 8 synthetic 256² float32 GeoTIFFs from disk, over the step time.
2. SCIO screening throughput (fragments/s; each image's 8 fragments need 17 unimodal and
   17 image-grounded text passes) and its cost as a share of one epoch of training on the same
   images.
3. retrieval over N images × N texts (N = 10,000 by default): image and text encoding, the ITC
   matrix (chunked matmul), and ITM re-rank of the top-k per query (k × 2N fused passes), with
   peak RSS growth; the peer is the extrapolated cost of N² ITM passes (brute force).

    python benchmarks/bench_foundation.py [--retrieval-n 10000] [--k 4] [--steps 20]

GPU (base-klip step time and peak memory, bf16, 224², batch 32; ~1 min on one GPU)::

    PYTHONPATH=src python3 benchmarks/bench_foundation.py --config base-klip --device cuda --steps 20 --step-only

``--step-only`` measures only the pretraining step (and imports nothing that reads rasters: no
rasterio, pyproj, fastapi, dask or pycocotools); it needs torch, transformers, tokenizers, numpy,
pyyaml and pydantic (sarvlm's config validation). Verify on CPU with
``--config tiny-klip --device cpu --step-only``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _timing import timed

os.environ.setdefault("SARVLM_NO_PROGRESS", "1")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--retrieval-n", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--scio-n", type=int, default=64)
    ap.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="image side (default: 112 for the full CPU benchmark; the config's own with --step-only)",
    )
    ap.add_argument("--skip-retrieval", action="store_true")
    ap.add_argument("--config", default="tiny-klip", help="KLIP config for the step (tiny-klip, base-klip or a file)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (bf16 autocast on CUDA)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: the config's train.batch_size)")
    ap.add_argument("--step-only", action="store_true", help="only the pretraining step (no SCIO, no retrieval)")
    args = ap.parse_args()
    if args.step_only or args.device != "cpu":
        return step_benchmark(args)
    args.image_size = args.image_size or 112

    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    torch.manual_seed(0)
    from sarvlm.foundation.config import load_config
    from sarvlm.foundation.data import KlipItem
    from sarvlm.foundation.model import build_model
    from sarvlm.foundation.optim import make_optimizer
    from sarvlm.foundation.pretrain import encode_fragments
    from sarvlm.foundation.retrieval import retrieve
    from sarvlm.foundation.scio import screen

    fields = ("Terrain", "Functionality", "Distribution", "Layout", "Boundary", "Buildings", "Roads", "Water")
    words = ["farmland", "water", "urban", "forest", "grassland", "bare", "ships", "vehicles", "runway", "coast"]
    rng = np.random.default_rng(0)

    def item(i: int) -> KlipItem:
        vals = [
            f"The {f.lower()} shows {words[rng.integers(10)]} and {words[rng.integers(10)]} near {i % 7}"
            for f in fields
        ]
        return KlipItem(id=f"x{i}", image=Path("-"), fields=list(fields), values=vals)

    cfg = load_config("tiny-klip", {"vision.image_size": args.image_size})
    items = [item(i) for i in range(max(args.scio_n, 64))]
    model = build_model(cfg, [it.text() for it in items])
    ids_all, att_all, _ = encode_fragments(model.tokenizer, items, cfg.text.max_length)
    images = torch.rand(len(items), 1, args.image_size, args.image_size) * 2 - 1
    opt = make_optimizer(model, 1e-4, 0.05)  # the pretraining optimiser (fused AdamW)
    b = 8

    def batch(step: int):
        idx = torch.arange(step * b, step * b + b) % len(items)
        att = att_all[idx]
        cols = int(att.sum(1).max())
        return images[idx], ids_all[idx][:, :cols], att[:, :cols], idx

    state = {"s": 0}

    def klip_step():
        px, ids, att, idx = batch(state["s"])
        state["s"] += 1
        out = model(px, ids, att, idx)
        out.loss.backward()
        opt.step()
        opt.zero_grad()

    def clip_step():
        px, ids, att, idx = batch(state["s"])
        state["s"] += 1
        _, fi = model.encode_image(px)
        ft = model.encode_text(ids, att)
        logits = fi @ ft.T / 0.07
        loss = (F.cross_entropy(logits, torch.arange(b)) + F.cross_entropy(logits.T, torch.arange(b))) / 2
        loss.backward()
        opt.step()
        opt.zero_grad()

    timed(klip_step, 3)
    timed(clip_step, 3)
    k_wall, k_cpu = timed(klip_step, args.steps)
    c_wall, c_cpu = timed(clip_step, args.steps)
    d_wall, d_cpu = timed(lambda: batch(state["s"]), 50)

    from sarvlm.foundation.transforms import load_sar_image
    from sarvlm.io.raster import write_raster

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(8):
            p = Path(tmp) / f"s{i}.tif"
            write_raster(p, rng.gamma(4, 0.25, (256, 256)).astype(np.float32), compress=None)
            paths.append(p)
        r_wall, r_cpu = timed(lambda: [load_sar_image(p, args.image_size) for p in paths], 5)

    print(f"## KLIP step (tiny-klip, batch 8, {args.image_size}², 1 thread)")
    print(
        f"- KLIP step (ITC+queue+momentum, ITM hard negatives, MLM): {1000 * k_wall:.1f} ms wall, {1000 * k_cpu:.1f} ms CPU"
    )
    print(
        f"- peer CLIP-style step (InfoNCE only): {1000 * c_wall:.1f} ms wall, {1000 * c_cpu:.1f} ms CPU; ratio KLIP/CLIP {k_cpu / c_cpu:.2f}x (CPU)"
    )
    print(
        f"- batch assembly from preloaded tensors: {1000 * d_cpu:.3f} ms CPU = {100 * d_cpu / k_cpu:.2f} % of the step"
    )
    print(
        f"- (reference) reading + resizing 8 256² float32 GeoTIFFs: {1000 * r_cpu:.1f} ms CPU = {100 * r_cpu / k_cpu:.0f} % of a step (paid once: images are preloaded)"
    )

    scio_items = items[: args.scio_n]
    w, c = time.perf_counter(), time.process_time()
    screen(model, scio_items, images[: args.scio_n])
    s_wall, s_cpu = time.perf_counter() - w, time.process_time() - c
    frags = 8 * len(scio_items)
    epoch_cpu = (len(scio_items) / b) * k_cpu
    print(f"\n## SCIO screening ({len(scio_items)} images x 8 fragments)")
    print(f"- {frags / s_cpu:.0f} fragments per CPU-second ({frags / s_wall:.0f}/s wall)")
    print(
        f"- cost: {s_cpu:.2f} s CPU = {s_cpu / epoch_cpu:.2f} epochs of training on the same images ({epoch_cpu:.2f} s CPU)"
    )

    if args.skip_retrieval:
        return 0
    n = args.retrieval_n
    texts = [items[i % len(items)].text() for i in range(n)]
    rimg = torch.rand(n, 1, 64, 64) * 2 - 1
    rcfg = load_config("tiny-klip")
    rmodel = build_model(rcfg, [it.text() for it in items]).eval()
    rss0 = _rss_mb()
    w, c = time.perf_counter(), time.process_time()
    res = retrieve(rmodel, rimg, texts, list(range(n)), k=args.k, chunk=512, progress=False)
    r_wall, r_cpu = time.perf_counter() - w, time.process_time() - c
    rss = _rss_mb() - rss0
    # brute-force peer: time per ITM pass measured on one chunk, times N²
    with torch.no_grad():
        emb, _ = rmodel.encode_image(rimg[:512])
        ids, att = rmodel.tokenize(texts[:512])
        pw, pc = timed(lambda: rmodel.itm_logits(ids, att, emb), 2)
    per_pass = pc / 512
    print(f"\n## Retrieval, {n} images x {n} texts (tiny-klip, 64², k = {args.k}, 1 thread)")
    print(
        f"- total {r_cpu:.1f} s CPU ({r_wall:.1f} s wall); ITM passes {res['itm_pairs']:,} (<= k x 2N = {args.k * 2 * n:,})"
    )
    print(f"- peak RSS growth {rss:.0f} MB (ITC matrix {n * n * 4 / 2**20:.0f} MB float32 kept for similarity.npy)")
    print(
        f"- peer: brute-force N² ITM = {n * n:,} passes x {1000 * per_pass:.3f} ms = {n * n * per_pass / 3600:.1f} h CPU; ratio {n * n * per_pass / r_cpu:.0f}x"
    )
    return 0


def step_benchmark(args) -> int:
    """KLIP pretraining step on ``--device``, as ``sarvlm pretrain`` runs it: the step's text inputs from
    :func:`sarvlm.foundation.pretrain.batch_inputs` (fragment-swap ITM negatives and fragment ITC texts when
    the config turns them on), forward + backward + fused AdamW. Time per step and peak memory; when the
    config adds fragment signals, the same run also times BLIP's three objectives alone (the peer)."""
    import numpy as np
    import torch

    try:
        from sarvlm.foundation.config import load_config
        from sarvlm.foundation.data import KlipItem
        from sarvlm.foundation.model import build_model
        from sarvlm.foundation.optim import make_optimizer
        from sarvlm.foundation.pretrain import TrainingTexts, batch_inputs
    except ImportError as exc:  # e.g. pydantic missing on a bare GPU machine
        print(f"bench_foundation: cannot import sarvlm's foundation package ({exc}); pip install pydantic pyyaml")
        return 2
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if not cuda:
        torch.set_num_threads(1)
    over = {"vision.image_size": args.image_size} if args.image_size else {}
    cfg = load_config(args.config, over or None)
    b = args.batch or cfg.train.batch_size
    if cfg.queue_size % b:
        over.update({"queue_size": (cfg.queue_size // b + 1) * b, "train.batch_size": b})
        cfg = load_config(args.config, over)
    fields = ["Terrain", "Functionality", "Distribution", "Layout", "Boundary", "Buildings", "Roads", "Water"]
    words = ["farmland", "water", "urban", "forest", "grassland", "bare", "ships", "vehicles", "runway", "coast"]
    rng = np.random.default_rng(0)
    items = [
        KlipItem(
            id=f"x{i}",
            image=Path("-"),
            fields=list(fields),
            values=[
                f"The {f.lower()} shows {words[rng.integers(10)]} and {words[rng.integers(10)]} near {i % 7}"
                for f in fields
            ],
        )
        for i in range(4 * b)
    ]
    # the from-scratch tokenizer only learns words it sees: add enough distinct words to fill the config's
    # vocabulary (30,524 for base-klip), so the MLM head has its real size
    filler = [
        " ".join(f"w{i}" for i in range(s, min(s + 1000, cfg.text.vocab_size)))
        for s in range(0, cfg.text.vocab_size, 1000)
    ]
    size = cfg.vision.image_size
    images = torch.rand(4 * b, cfg.vision.num_channels, size, size, device=device) * 2 - 1
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} thread(s)"
    fragment_signals = cfg.train.itm_fragment_negatives or cfg.train.loss_weights.get("fragment_itc", 0) > 0
    variants = [("as configured", cfg)]
    if fragment_signals:
        blip_only = cfg.model_copy(deep=True)
        blip_only.train.itm_fragment_negatives = False
        blip_only.train.loss_weights = {k: v for k, v in cfg.train.loss_weights.items() if k != "fragment_itc"}
        variants.append(("BLIP's ITC + ITM + MLM only (peer)", blip_only))
    results = {}
    for label, vcfg in variants:
        torch.manual_seed(0)
        model = build_model(vcfg, [it.text() for it in items] + filler).to(device)
        model.train()
        texts = TrainingTexts(model.tokenizer, items, vcfg.text.max_length)
        opt = make_optimizer(model, 1e-5, 0.05)  # the pretraining optimiser (fused AdamW)
        gen = torch.Generator().manual_seed(0)
        data_times: list[float] = []

        def step(k: int) -> float:
            idx = (torch.arange(b) + k * b) % (4 * b)
            if cuda:
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            inputs = batch_inputs(texts, idx, vcfg, gen, model.ids["pad"], device)
            data_times.append(time.perf_counter() - t)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out = model(images[idx.to(device)], idx=idx.to(device), generator=gen, **inputs)
            out.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            model.itc.clamp_()
            if cuda:
                torch.cuda.synchronize(device)
            return time.perf_counter() - t

        for k in range(3):  # warm-up (kernels, allocator)
            step(k)
        data_times.clear()
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        times = [step(k) for k in range(args.steps)]
        med = statistics.median(times)
        results[label] = med
        text_len = int(texts.att.sum(1).float().mean())
        print(
            f"## KLIP pretraining step ({label}): {vcfg.name}, {size}², batch {b}, text length {text_len} tokens, "
            f"{'bf16' if dtype else 'fp32'}, {name}"
        )
        print(
            f"- median step {1000 * med:.1f} ms (min {1000 * min(times):.1f}, max {1000 * max(times):.1f}) over "
            f"{args.steps} steps = {b / med:.1f} image-text pairs/s; step inputs (batch_inputs) "
            f"{1000 * statistics.median(data_times):.2f} ms = {100 * statistics.median(data_times) / med:.1f} %"
        )
        if cuda:
            peak = torch.cuda.max_memory_allocated(device) / 2**30
            print(
                f"- peak GPU memory allocated {peak:.2f} GiB (reserved {torch.cuda.max_memory_reserved(device) / 2**30:.2f} GiB)"
            )
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(
            f"- parameters {params:.1f} M (online + momentum copies), vocabulary {len(model.tokenizer)}, queue {vcfg.queue_size}"
        )
    if len(results) == 2:
        a, p = results.values()
        print(f"- the configured fragment signals cost {a / p:.2f}x BLIP's three objectives (same run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
