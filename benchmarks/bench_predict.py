"""Benchmark: ``predict`` throughput (examples/s) at batch 1 / 8 / 32 vs a plain ``model.generate`` loop.

Data: 64 examples (captions, counts, grids, dialogues over 8 small PNGs, the tiny training fixture's
rows repeated with fresh ids). Model: ``tiny-qwen2.5-vl`` (random weights, so every answer runs to the
token budget), CPU, fp32, greedy, 8 new tokens.

Peer (same run, same examples): a plain loop that encodes each example with the processor and calls
``model.generate`` on it alone — what a user writes without ``sarvlm predict``. ``predict`` adds
batching by task (left padding), parsing, the resume journal and the atomic output.

No GPU in this session: the GPU figures the issue asks for are not measured here; run this script
with ``--device cuda`` on a GPU machine.

    python benchmarks/bench_predict.py [--n 64] [--device auto] [--out docs/bench/predict.md]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SARVLM_NO_PROGRESS", "1")
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch

    from sarvlm.core.example import read_examples
    from sarvlm.inference.predict import predict
    from sarvlm.models.device import describe_placement
    from sarvlm.models.loading import load_model
    from test_training_data import make_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = make_dataset(root / "ds", n_samples=8)
        rows = [json.loads(line) for line in (src / "train.jsonl").read_text().splitlines()]
        data = src / "bench.jsonl"
        with open(data, "w") as fh:
            for i in range(args.n):
                fh.write(json.dumps({**rows[i % len(rows)], "id": f"b{i}"}) + "\n")
        model, processor = load_model("tiny-qwen2.5-vl", device=args.device, dtype="auto")
        placement = describe_placement(model)
        examples = list(read_examples(data))

        # peer: one example at a time through model.generate
        t0 = time.perf_counter()
        with torch.no_grad():
            for ex in examples:
                images = [processor.load_image(src / rel) for rel in ex.images]
                enc = processor.encode([m.model_dump() for m in ex.prompt_messages], images, add_generation_prompt=True)
                device = next(model.parameters()).device
                inputs = {
                    "input_ids": torch.tensor([enc["input_ids"]], device=device),
                    "attention_mask": torch.ones((1, len(enc["input_ids"])), dtype=torch.long, device=device),
                    "mm_token_type_ids": torch.tensor([enc["mm_token_type_ids"]], device=device),
                    "pixel_values": enc["pixel_values"].to(device, model.dtype),
                    "image_grid_thw": enc["image_grid_thw"].to(device),
                }
                model.generate(**inputs, max_new_tokens=8, do_sample=False, pad_token_id=processor.pad_token_id)
        peer = len(examples) / (time.perf_counter() - t0)

        results = []
        for batch in (1, 8, 32):
            out = root / f"p{batch}.jsonl"
            t0 = time.perf_counter()
            predict((model, processor), data, out, batch_size=batch, max_new_tokens=8)
            results.append((batch, len(examples) / (time.perf_counter() - t0)))
    lines = [
        f"{args.n} examples, 8 new tokens, {placement}, {torch.get_num_threads()} threads",
        "",
        "| run | examples/s | vs plain generate loop |",
        "|---|---:|---:|",
        f"| plain `model.generate` loop, one example at a time (peer) | {peer:.1f} | 1.00× |",
    ]
    lines += [f"| `sarvlm predict` batch {b} | {r:.1f} | {r / peer:.2f}× |" for b, r in results]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
