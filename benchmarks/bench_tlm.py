"""TLM forward + backward at Qwen2.5-VL-7B sizes on CPU, and its share of a 7B training step's FLOPs.

Sizes: C = 3584 (Qwen2.5-VL-7B merged-token / LLM width), a 36 x 36 = 1296-token merged grid
(a 1008 x 1008 px image), S = 64 AlphaEarth anchors (8 x 8 grid), D = 64, MLP hidden 256.

Peer, measured in the same run: one dense C x C projection (``nn.Linear(3584, 3584)``, the size
of the LLM's attention output projection) forward + backward on the same 1296 tokens.

    python benchmarks/bench_tlm.py [--reps 5] [--out docs/bench/models.md] [--plot docs/bench/tlm_scaling.png]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from sarvlm.models.tlm import TLM

C, GRID, S, D, HIDDEN = 3584, (36, 36), 64, 64, 256
# Qwen2.5-VL-7B: LLM 28 layers, hidden 3584, MLP 18944, 28 heads / 4 KV heads (head dim 128),
# vocab 152064; vision tower 32 blocks of width 1280, MLP 3420, merger 5120 -> 3584.
LLM = {"layers": 28, "hidden": 3584, "mlp": 18944, "heads": 28, "kv_heads": 4, "vocab": 152064}
VISION = {"blocks": 32, "hidden": 1280, "mlp": 3420, "merge_in": 5120}


def tlm_flops_forward(tokens: int, s: int = S, c: int = C, d: int = D, h: int = HIDDEN) -> float:
    """Multiply-adds x 2 of one TLM forward (MLP on S priors, two (HW x S) @ (S x C) products, Eq. 11)."""
    mlp = 2 * s * (d * h + h * 2 * c)
    weights = 8 * tokens * s  # Gaussian weights + normalisation (elementwise)
    field = 2 * 2 * tokens * s * c
    modulate = 3 * tokens * c
    return float(mlp + weights + field + modulate)


def llm_flops_forward(tokens: int) -> float:
    """Forward FLOPs of the Qwen2.5-7B LLM on ``tokens`` tokens (dense matmuls + attention scores)."""
    hd = LLM["hidden"] // LLM["heads"]
    per_layer = 2 * tokens * LLM["hidden"] * (LLM["hidden"] + 2 * LLM["kv_heads"] * hd)  # q, k, v
    per_layer += 2 * tokens * LLM["hidden"] * LLM["hidden"]  # o
    per_layer += 2 * tokens * 3 * LLM["hidden"] * LLM["mlp"]  # gate, up, down
    per_layer += 2 * 2 * tokens * tokens * LLM["hidden"]  # QKᵀ and AV (causal halves it; kept full, conservative)
    return LLM["layers"] * per_layer + 2 * tokens * LLM["hidden"] * LLM["vocab"]


def vision_flops_forward(patches: int) -> float:
    """Forward FLOPs of the Qwen2.5-VL vision tower (blocks + merger) on ``patches`` 14x14 patches."""
    v = VISION["hidden"]
    per_block = 2 * patches * (4 * v * v + 3 * v * VISION["mlp"]) + 4 * patches * min(patches, 64) * v
    merger = 2 * (patches // 4) * (VISION["merge_in"] ** 2 + VISION["merge_in"] * LLM["hidden"])
    return VISION["blocks"] * per_block + merger + 2 * patches * 3 * 2 * 14 * 14 * v


def time_fwd_bwd(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None, help="write the markdown table here")
    ap.add_argument("--plot", default=None, help="write a PNG of TLM time vs S here")
    args = ap.parse_args()
    torch.manual_seed(0)
    tokens = GRID[0] * GRID[1]
    rows = []
    for dtype in (torch.float32,):  # CPUs without AMX run bf16 matmuls far slower; GPUs would use bf16
        tlm = TLM(prior_dim=D, channels=C, hidden=HIDDEN).to(dtype)
        torch.nn.init.normal_(tlm.mlp[2].weight, std=0.01)
        x = torch.randn(1, tokens, C, dtype=dtype, requires_grad=True)
        priors = torch.randn(1, S, D, dtype=dtype)
        pos = torch.rand(1, S, 2)

        def tlm_step():
            tlm.zero_grad(set_to_none=True)
            x.grad = None
            tlm(x, GRID, priors, pos).float().square().mean().backward()

        peer = torch.nn.Linear(C, C, bias=False).to(dtype)

        def peer_step():
            peer.zero_grad(set_to_none=True)
            x.grad = None
            peer(x).float().square().mean().backward()

        t_tlm = time_fwd_bwd(tlm_step, args.reps)
        t_peer = time_fwd_bwd(peer_step, max(2, args.reps // 2))
        flops = 3 * tlm_flops_forward(tokens)
        rows.append((str(dtype).removeprefix("torch."), t_tlm, t_peer, flops / t_tlm / 1e9))
        print(
            f"{dtype}: TLM fwd+bwd {t_tlm * 1e3:.1f} ms ({flops / t_tlm / 1e9:.1f} GFLOP/s); "
            f"peer Linear({C},{C}) fwd+bwd {t_peer * 1e3:.1f} ms; ratio TLM/peer {t_tlm / t_peer:.3f}"
        )

    # Share of one 7B training step (one sample: the image's 1296 tokens + 200 text tokens).
    text_tokens = 200
    seq = tokens + text_tokens
    tlm_step_flops = 3 * tlm_flops_forward(tokens)
    llm_step = 3 * llm_flops_forward(seq)  # forward + backward (activation and weight grads)
    vision_fwd = vision_flops_forward(tokens * 4)  # frozen vision tower: forward only
    share = tlm_step_flops / (llm_step + vision_fwd + tlm_step_flops)
    print(
        f"TLM fwd+bwd {tlm_step_flops / 1e9:.2f} GFLOP; 7B step {(llm_step + vision_fwd) / 1e12:.1f} TFLOP; "
        f"TLM share {share * 100:.4f}%"
    )

    scaling = []
    if args.plot:
        tlm = TLM(prior_dim=D, channels=C, hidden=HIDDEN)
        x = torch.randn(1, tokens, C, requires_grad=True)
        for s in (16, 64, 256):
            pri, pos = torch.randn(1, s, D), torch.rand(1, s, 2)
            scaling.append((s, time_fwd_bwd(lambda: tlm(x, GRID, pri, pos).square().mean().backward(), 3)))
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.plot([s for s, _ in scaling], [t * 1e3 for _, t in scaling], marker="o", label="TLM fwd+bwd (fp32)")
        ax.axhline(rows[0][2] * 1e3, color="grey", linestyle="--", label=f"Linear({C},{C}) fwd+bwd (fp32)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("S (prior anchors)")
        ax.set_ylabel("ms on CPU")
        ax.set_title(f"TLM cost, C={C}, {GRID[0]}x{GRID[1]} tokens")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")

    if args.out:
        lines = [
            "# models: TLM cost (benchmarks/bench_tlm.py)",
            "",
            f"Reproduce: `python benchmarks/bench_tlm.py --reps {args.reps} --out {args.out}"
            + (f" --plot {args.plot}`" if args.plot else "`"),
            "",
            f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads. Sizes: C={C}, grid {GRID[0]}x{GRID[1]} = {tokens} tokens, "
            f"S={S}, D={D}, hidden={HIDDEN}. Peer: `nn.Linear({C}, {C})` fwd+bwd on the same tokens, same run.",
            "",
            "| dtype | TLM fwd+bwd (ms) | peer Linear fwd+bwd (ms) | TLM / peer | TLM GFLOP/s |",
            "|---|---|---|---|---|",
        ]
        for name, t_tlm, t_peer, gflops in rows:
            lines.append(f"| {name} | {t_tlm * 1e3:.1f} | {t_peer * 1e3:.1f} | {t_tlm / t_peer:.3f} | {gflops:.1f} |")
        lines += [
            "",
            "FLOP share of one Qwen2.5-VL-7B training step (computed, one sample of "
            f"{tokens} image + {text_tokens} text tokens; LLM forward+backward = 3x forward, frozen vision tower forward only):",
            "",
            f"- TLM forward+backward: {tlm_step_flops / 1e9:.2f} GFLOP",
            f"- LLM forward+backward: {llm_step / 1e12:.1f} TFLOP; vision tower forward: {vision_fwd / 1e12:.2f} TFLOP",
            f"- **TLM share: {share * 100:.4f}%** of the step",
        ]
        if scaling:
            lines += [
                "",
                "TLM fwd+bwd (fp32) vs S: "
                + ", ".join(f"S={s}: {t * 1e3:.1f} ms" for s, t in scaling)
                + f" ([plot]({args.plot.split('/')[-1]}))",
            ]
        from sarvlm.core.atomic import atomic_open

        with atomic_open(args.out) as fh:
            fh.write("\n".join(lines) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
