"""Benchmark: the demo's model choices on CPU — BPE vs byte-level tokenizer (sequence length and
step time) and the ``tiny`` vs ``small`` model sizes (step time).

Data: the built-in synthetic world built into the FUSAR-GPT tasks + captions with a 4×4 prior
cache (as ``bench_train.py``). The BPE tokenizer is trained on the training split's message text
(``vocab_size`` 1024, as the demo does). Step: FUSAR-GPT stage 2 (LoRA r=8 on the LLM, TLM
frozen, priors flowing) in a bare PyTorch loop (forward, backward, AdamW), batch 8 (the demo's),
fp32, median CPU time of this process per step (robust to other processes on the cores).

Figures: tokens per training example (median of the collated batches' attention masks, divided
by the batch) for both tokenizers and their ratio; step time of each (size, tokenizer) and the
ratios against ``tiny`` + byte-level, the peer measured in the same run.

    python benchmarks/bench_demo_model.py [--scenes 24] [--steps 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SARVLM_NO_PROGRESS", "1")


def _build_world(root: Path, scenes: int) -> tuple[Path, Path]:
    spec = importlib.util.spec_from_file_location("bench_train", Path(__file__).with_name("bench_train.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_world(root, scenes)


def measure(size: str, tokenizer: str, data: Path, priors: Path, steps: int, warmup: int) -> dict[str, float]:
    import torch

    from sarvlm.core.example import read_examples
    from sarvlm.models.loading import build_tiny
    from sarvlm.models.tokenizer import bpe_tokenizer, byte_level_tokenizer
    from sarvlm.priors.cache import PriorCache
    from sarvlm.training.collator import SftCollator
    from sarvlm.training.dataset import SftDataset
    from sarvlm.training.recipe import load_recipe
    from sarvlm.training.stages import prepare_stage

    if tokenizer == "bpe":
        texts = [m.content for ex in read_examples(data / "train.jsonl") for m in ex.messages]
        tok = bpe_tokenizer(texts, vocab_size=1024)
    else:
        tok = byte_level_tokenizer()
    recipe = load_recipe("fusar-gpt")
    spec = recipe.stage("stage2")
    model, processor = build_tiny(f"{size}-qwen2.5-vl", settings={"fusion": "tlm"}, seed=0, tokenizer=tok)
    trained, _ = prepare_stage(model, spec, "tlm", seed=0)
    dataset = SftDataset(
        data / "train.jsonl",
        processor,
        tasks=spec.tasks,
        max_length=recipe.max_length,
        priors=PriorCache(priors),
        use_priors=True,
    )
    collator = SftCollator(processor.pad_token_id)
    batch_size = 8
    batches = [
        collator([dataset[(batch_size * k + j) % len(dataset)] for j in range(batch_size)])
        for k in range(warmup + steps)
    ]
    trained.train()
    params = [p for p in trained.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    cpu = []
    for batch in batches:
        c = time.process_time()
        trained(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        cpu.append(time.process_time() - c)
    return {
        "step_cpu_ms": statistics.median(cpu[warmup:]) * 1000,
        "tokens_per_example": statistics.median(int(b["attention_mask"].sum()) / batch_size for b in batches),
        "vocab": len(tok),
        "params": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=24)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data, priors = _build_world(Path(tmp), args.scenes)
        rows = {
            (size, tok): measure(size, tok, data, priors, args.steps, args.warmup)
            for size in ("tiny", "small")
            for tok in ("byte", "bpe")
        }
    peer = rows[("tiny", "byte")]
    print("| model | tokenizer | params | vocab | tokens/example | step CPU ms (batch 8) | × tiny+byte |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (size, tok), r in rows.items():
        print(
            f"| {size} | {tok} | {r['params']:,} | {r['vocab']} | {r['tokens_per_example']:.0f} | "
            f"{r['step_cpu_ms']:.0f} | {r['step_cpu_ms'] / peer['step_cpu_ms']:.2f} |"
        )
    red = rows[("tiny", "byte")]["tokens_per_example"] / rows[("tiny", "bpe")]["tokens_per_example"]
    print(f"\nsequence-length reduction (byte-level / BPE tokens per example): {red:.2f}×")


if __name__ == "__main__":
    main()
