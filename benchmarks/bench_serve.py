"""Load test of `sarvlm serve` on loopback: N concurrent async httpx clients, bounded in requests and time.

Runs the real CLI server (`python -m sarvlm.cli.main serve`, tiny-qwen2.5-vl, CPU) as a subprocess
and fires ``--requests`` chat completions (a 64×48 PNG + a question, ``max_tokens = min_tokens =
--tokens`` so every answer costs the same) from ``--clients`` concurrent clients. Reports status
counts (no 5xx other than 503 allowed), p50/p95 latency, throughput, and the server's RSS every
20 requests with a least-squares slope (and its 95 % interval) over all but the first 100
(memory must stay flat). Peers measured in the same run:

- ``direct``: the same query through :func:`sarvlm.inference.generate.generate_batch` in this
  process, one at a time (no HTTP, no batching);
- ``server --max-batch 1``: the server without batching (fewer requests);
- ``mixed lengths``: the same batched server, answers of ``tokens/4`` and ``7·tokens/4`` tokens
  alternately (same mean): completion tokens/s against the equal-length run measure what
  per-batch (not continuous) batching loses when a batch's rows end at different steps.

    python benchmarks/bench_serve.py [--requests 1000] [--clients 16] [--tokens 16] [--max-seconds 900]

Writes docs/bench/serve.json, docs/bench/serve.png (latency histogram) and docs/bench/serve-rss.png
(server RSS vs requests answered, with the fitted line).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "bench"
RSS_EVERY = 20  # answers between two samples of the server's RSS


def _png() -> str:
    from PIL import Image

    img = Image.fromarray((np.random.default_rng(0).random((48, 64)) * 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _body(tokens: int) -> dict:
    return {
        "model": "tiny-qwen2.5-vl",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": _png()}},
                    {"type": "text", "text": "How many ships?"},
                ],
            }
        ],
        "max_tokens": tokens,
        "min_tokens": tokens,
    }


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(max_batch: int, max_queue: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sarvlm.cli.main", "serve", "--model", "tiny-qwen2.5-vl", "--port", str(port)]
        + ["--max-batch", str(max_batch), "--max-queue", str(max_queue), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start")


def _mixed_body(i: int, tokens: int) -> dict:
    """Unequal lengths of mean ``tokens``: ``tokens/4`` and ``7·tokens/4`` alternately, no
    ``min_tokens`` (so they share greedy batches)."""
    body = _body(tokens // 4 if i % 2 == 0 else 7 * tokens // 4)
    body.pop("min_tokens")
    return body


async def load(
    base: str, pid: int, requests: int, clients: int, tokens: int, max_seconds: float, mixed: bool = False
) -> dict:
    body = _body(tokens)
    latencies: list[float] = []
    completion_tokens = 0
    statuses: dict[int, int] = {}
    rss: list[tuple[int, float]] = [(0, _rss_mib(pid))]
    done = 0
    issued = 0
    t0 = time.perf_counter()

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal done, issued, completion_tokens
        while issued < requests and time.perf_counter() - t0 < max_seconds:
            issued += 1
            start = time.perf_counter()
            try:
                resp = await http.post(
                    base + "/v1/chat/completions", json=_mixed_body(issued, tokens) if mixed else body
                )
                code = resp.status_code
                if code == 503:  # back-pressure: wait as told, then go on
                    await asyncio.sleep(float(resp.headers.get("retry-after", "1")) / 10)
            except httpx.HTTPError:
                code = -1
            statuses[code] = statuses.get(code, 0) + 1
            if code == 200:
                latencies.append(time.perf_counter() - start)
                completion_tokens += resp.json()["usage"]["completion_tokens"]
            done += 1
            if done % RSS_EVERY == 0:
                rss.append((done, _rss_mib(pid)))

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {
        "requests": done,
        "clients": clients,
        "tokens_per_answer": "mixed: tokens/4 and 7·tokens/4, no min_tokens" if mixed else tokens,
        "completion_tokens": completion_tokens,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": wall,
        "throughput_rps": len(lat) / wall,
        "tokens_per_s": completion_tokens / wall,
        "p50_s": statistics.median(lat) if lat else None,
        "p95_s": lat[int(0.95 * (len(lat) - 1))] if lat else None,
        "rss_mib": rss,
        "latencies": lat,
    }


def rss_trend(samples: list[tuple[int, float]], start: int = 100, end: int | None = None) -> dict:
    """Least-squares slope of RSS (MiB) over requests answered in ``[start, end]``, with a 95 % t interval.

    The samples are autocorrelated (allocator and GC cycles), so the interval is indicative.
    """
    from scipy import stats

    pts = [(n, r) for n, r in samples if n >= start and (end is None or n <= end)]
    x = np.array([n for n, _ in pts], dtype=float)
    y = np.array([r for _, r in pts], dtype=float)
    fit = stats.linregress(x, y)
    half = float(stats.t.ppf(0.975, len(x) - 2) * fit.stderr)
    return {
        "from_request": int(x[0]),
        "to_request": int(x[-1]),
        "points": len(x),
        "slope_kib_per_request": fit.slope * 1024,
        "slope_ci95_kib_per_request": [(fit.slope - half) * 1024, (fit.slope + half) * 1024],
        "growth_mib_over_fit": fit.slope * (x[-1] - x[0]),
        "intercept_mib": fit.intercept,
        "slope_mib_per_request": fit.slope,
    }


def direct(requests: int, tokens: int) -> dict:
    """Peer: the same query through generate_batch in-process, one at a time."""
    from sarvlm.inference.generate import GenerationOptions, Query, generate_batch
    from sarvlm.models.loading import load_model
    from sarvlm.serve.images import decode_data_url, decode_image

    model, processor = load_model("tiny-qwen2.5-vl")
    image = decode_image(decode_data_url(_png()), 10**6).image
    query = Query(messages=[{"role": "user", "content": "<image>\nHow many ships?"}], images=[image])
    options = GenerationOptions(max_new_tokens=tokens, extra={"min_new_tokens": tokens})
    generate_batch(model, processor, [query], tokens, options)  # warm-up
    lat = []
    t0 = time.perf_counter()
    for _ in range(requests):
        s = time.perf_counter()
        generate_batch(model, processor, [query], tokens, options)
        lat.append(time.perf_counter() - s)
    wall = time.perf_counter() - t0
    lat.sort()
    return {
        "requests": requests,
        "throughput_rps": requests / wall,
        "p50_s": statistics.median(lat),
        "p95_s": lat[int(0.95 * (len(lat) - 1))],
    }


def run_server(
    max_batch: int, max_queue: int, requests: int, clients: int, tokens: int, max_seconds: float, mixed: bool = False
) -> dict:
    proc, base = start_server(max_batch, max_queue)
    try:
        # warm-up request, not counted
        httpx.post(base + "/v1/chat/completions", json=_body(tokens), timeout=120)
        result = asyncio.run(load(base, proc.pid, requests, clients, tokens, max_seconds, mixed))
        result["max_batch"], result["max_queue"] = max_batch, max_queue
        metrics = httpx.get(base + "/metrics", timeout=10).text
        for line in metrics.splitlines():
            if line.startswith(
                (
                    "sarvlm_batch_size_sum",
                    "sarvlm_batch_size_count",
                    "sarvlm_rejected_requests_total",
                    "sarvlm_batch_row_steps_total",
                    "sarvlm_completion_tokens_total",
                )
            ):
                name, value = line.split()
                result[name] = float(value)
    finally:
        proc.terminate()  # SIGTERM: graceful shutdown, exit status 0
        status = proc.wait(60)
    result["exit_status_after_sigterm"] = status
    return result


def _occupancy(run: dict) -> float | None:
    steps = run.get("sarvlm_batch_row_steps_total")
    return run["sarvlm_completion_tokens_total"] / steps if steps else None


def plot(main: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.hist(np.array(main["latencies"]) * 1000, bins=40, color="#3a7bd5")
    a.axvline(main["p50_s"] * 1000, color="k", ls="--", label=f"p50 {main['p50_s'] * 1000:.0f} ms")
    a.axvline(main["p95_s"] * 1000, color="r", ls="--", label=f"p95 {main['p95_s'] * 1000:.0f} ms")
    a.set_xlabel("latency (ms)")
    a.set_ylabel("requests")
    a.legend()
    a.set_title(f"{main['clients']} clients, max-batch {main['max_batch']}")
    xs, ys = zip(*main["rss_mib"])
    b.plot(xs, ys, marker=".")
    b.set_xlabel("requests answered")
    b.set_ylabel("server RSS (MiB)")
    b.set_ylim(0, max(ys) * 1.2)
    b.set_title("server memory over the run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rss(main: dict, trend: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys = (np.array(v, dtype=float) for v in zip(*main["rss_mib"]))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(xs, ys, marker=".", lw=1, label=f"server RSS, sampled every {RSS_EVERY} answers")
    for fit, style in ((trend, "r--"), (trend.get("after_1000"), "g--")):
        if fit is None:
            continue
        fit_x = xs[(xs >= fit["from_request"]) & (xs <= fit["to_request"])]
        lo, hi = fit["slope_ci95_kib_per_request"]
        ax.plot(
            fit_x,
            fit["intercept_mib"] + fit["slope_mib_per_request"] * fit_x,
            style,
            label=f"fit {fit['from_request']}–{fit['to_request']}: {fit['slope_kib_per_request']:+.2f} KiB/request "
            f"(95 % CI {lo:+.2f} … {hi:+.2f})",
        )
    ax.set_xlabel("requests answered")
    ax.set_ylabel("RSS (MiB)")
    mid = float(np.median(ys))
    ax.set_ylim(mid - 40, mid + 40)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"sarvlm serve memory, {main['clients']} clients, max-batch {main['max_batch']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-queue", type=int, default=8)
    p.add_argument("--peer-requests", type=int, default=200)
    p.add_argument("--max-seconds", type=float, default=900.0)
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    main_run = run_server(args.max_batch, args.max_queue, args.requests, args.clients, args.tokens, args.max_seconds)
    # the unbatched peer gets a queue as deep as the clients, so it is measured without 503s
    single = run_server(1, 4 * args.clients, args.peer_requests, args.clients, args.tokens, args.max_seconds)
    # per-batch cost of unequal lengths: the same server and mean length, lengths tokens/4 and 7·tokens/4
    mixed = run_server(
        args.max_batch, args.max_queue, 2 * args.peer_requests, args.clients, args.tokens, args.max_seconds, True
    )
    peer = direct(args.peer_requests, args.tokens)
    fives = {k: v for k, v in main_run["statuses"].items() if k.startswith("5") and k != "503"}
    for run in (single, mixed):
        fives.update({k: v for k, v in run["statuses"].items() if k.startswith("5") and k != "503"})
    first = 100 if args.requests >= 300 else 0
    trend = rss_trend(main_run["rss_mib"], first, 1000)  # the window: requests 100 to 1,000
    trend["rss_mib_at"] = {str(n): r for n, r in main_run["rss_mib"] if n in (100, 500, 1000, 2000, 3000, 5000)}
    if main_run["requests"] >= 2000:  # longer runs: does it level off?
        trend["after_1000"] = rss_trend(main_run["rss_mib"], 1000)
    summary = {
        "server": {k: v for k, v in main_run.items() if k != "latencies"},
        "server_max_batch_1": {k: v for k, v in single.items() if k != "latencies"},
        "server_mixed_lengths": {k: v for k, v in mixed.items() if k not in ("latencies", "rss_mib")},
        "direct_generate_batch": peer,
        "ratios": {
            "server_vs_direct_throughput": main_run["throughput_rps"] / peer["throughput_rps"],
            "server_vs_max_batch_1_throughput": main_run["throughput_rps"] / single["throughput_rps"],
            "mixed_vs_equal_lengths_tokens_per_s": mixed["tokens_per_s"] / main_run["tokens_per_s"],
        },
        "batch_occupancy": {  # completion tokens / (rows x decoding steps): 1 = no row computed after its end
            "equal_lengths": _occupancy(main_run),
            "mixed_lengths": _occupancy(mixed),
        },
        "rss_trend": trend,
        "five_xx_other_than_503": fives,
        "cpu_only": "no GPU in this session; figures are for the tiny model on CPU",
    }
    (OUT / "serve.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(main_run, OUT / "serve.png")
    plot_rss(main_run, trend, OUT / "serve-rss.png")
    print(json.dumps(summary, indent=2))
    return 1 if fives or main_run["exit_status_after_sigterm"] != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
