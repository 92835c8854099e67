"""Benchmark: `sarvlm annotate` against a local OpenAI-compatible server on loopback that answers after a
fixed delay (issue 16).

Figures, all from one run:

1. sustained requests/s at concurrency 1, 8 and 32 (text-only ``dialogue`` prompt, every request a cache
   miss), with the ideal ``concurrency / delay`` as the named peer: the ratio says how much of the server's
   capacity the client uses;
2. overhead per request (facts, image hashing + PNG encoding, cache write, parsing, validation, the SDK's
   HTTP round trip minus the server's sleep) as a share of the server time, at concurrency 1, for the
   text prompt and for an image prompt (``hcot-marine``: the SAR image rendered with the project
   stretch, resized and base64-encoded in every request); the per-stage split is measured separately;
3. memory flat in the number of samples: peak RSS of a fresh process annotating N and 4N records
   (offline endpoint, so nothing but the pipeline is measured);
4. cache-hit rerun time for 10,000 samples (every reply cached: nothing is asked; the cache is filled by
   the offline writer, which takes the same cache path as an endpoint).

    python benchmarks/bench_annotate.py            # ~10 min on the loaded 2-core project machine
    python benchmarks/bench_annotate.py --quick    # smaller sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the scripted loopback server shared with the tests

from _fake_openai import FakeOpenAI  # noqa: E402
from sarvlm.annotate.client import OfflineEndpoint, OpenAIEndpoint  # noqa: E402
from sarvlm.annotate.run import AnnotateOptions, annotate_samples  # noqa: E402
from sarvlm.annotate.templates import load_template  # noqa: E402

DIALOGUE = json.dumps({"turns": [{"question": f"Question {i}?", "answer": f"Answer {i}."} for i in range(3)]})


def make_world(root: Path, n: int) -> Path:
    """A small synthetic world, its records repeated with new ids up to ``n`` lines."""
    from sarvlm.cli.main import main

    assert main(["synth", str(root / "w"), "--scenes", "8", "--size", "128", "--workers", "1"]) == 0
    base = [json.loads(line) for line in (root / "w" / "samples.jsonl").read_text().splitlines()]
    path = root / "w" / f"samples_{n}.jsonl"
    with open(path, "w") as fh:
        for i in range(n):
            rec = dict(base[i % len(base)])
            rec["id"] = f"{rec['id']}-{i:06d}"
            fh.write(json.dumps(rec) + "\n")
    return path


def _run(samples: Path, tpl: str, ep, out: Path, concurrency: int, run_dir: Path, cpu: list | None = None):
    opts = AnnotateOptions(concurrency=concurrency, run_dir=run_dir, overwrite=True)
    t, c = time.perf_counter(), time.process_time()
    rep = annotate_samples(samples, out, load_template(tpl), ep, opts)
    if cpu is not None:
        cpu.append(time.process_time() - c)
    return time.perf_counter() - t, rep


def throughput(samples: Path, tmp: Path, delay: float, levels: list[int], n_per_level: dict[int, int]) -> list[dict]:
    rows = []
    srv = FakeOpenAI(lambda body, n: (200, DIALOGUE, delay))
    try:
        for c in levels:
            n = n_per_level[c]
            sub = samples.parent / f"thr_{c}.jsonl"
            sub.write_text("".join(samples.read_text().splitlines(keepends=True)[:n]))
            ep = OpenAIEndpoint(srv.url, f"bench-{c}", concurrency=c, max_retries=0)
            secs, rep = _run(sub, "dialogue", ep, samples.parent / f"out_{c}.jsonl", c, tmp / f"run_thr_{c}")
            assert rep.to_dict()["status"]["accepted"] == n, rep.to_dict()["status"]
            rps = n / secs
            ideal = c / delay
            rows.append(
                {
                    "concurrency": c,
                    "requests": n,
                    "seconds": round(secs, 2),
                    "requests_per_s": round(rps, 1),
                    "ideal_per_s": round(ideal, 1),
                    "share_of_ideal": round(rps / ideal, 3),
                }
            )
            print(f"concurrency {c:>2}: {rps:7.1f} req/s ({rps / ideal:.0%} of the ideal {ideal:.0f}/s)", flush=True)
    finally:
        srv.close()
    return rows


def overhead(samples: Path, tmp: Path, delay: float, n: int) -> list[dict]:
    rows = []
    srv = FakeOpenAI(lambda body, k: (200, DIALOGUE, delay))
    marine = load_template("hcot-marine")
    from sarvlm.annotate.facts import record_facts
    from sarvlm.annotate.offline_writer import offline_reply
    from sarvlm.core.record import read_samples

    # A truthful image-prompt reply per record, keyed by the prompt text.
    replies = {}
    for rec in read_samples(samples):
        f = record_facts(rec, samples.parent)
        if not marine.missing_facts(f):
            replies[marine.render_text(f)[1]] = offline_reply(marine, f)
        if len(replies) >= n:
            break

    def script(body, k):
        content = body["messages"][1]["content"]
        text = content[-1]["text"] if isinstance(content, list) else content
        return 200, replies.get(text, DIALOGUE), delay

    srv.script = script
    try:
        for tpl in ("dialogue", "hcot-marine"):
            sub = samples.parent / f"ovh_{tpl}.jsonl"
            lines = samples.read_text().splitlines(keepends=True)
            sub.write_text("".join(lines[: n * 3]))
            ep = OpenAIEndpoint(srv.url, f"ovh-{tpl}", concurrency=1, max_retries=0)
            cpu: list[float] = []
            secs, rep = _run(sub, tpl, ep, samples.parent / f"ovh_{tpl}_out.jsonl", 1, tmp / f"run_ovh_{tpl}", cpu)
            d = rep.to_dict()
            sent = d["new_replies"]
            per_req = secs / max(1, sent)
            extra = per_req - delay
            cpu_ms = 1000 * cpu[0] / max(1, sent)
            rows.append(
                {
                    "prompt": tpl,
                    "requests": sent,
                    "seconds_per_request": round(per_req * 1000, 2),
                    "server_ms": delay * 1000,
                    "overhead_ms": round(extra * 1000, 2),
                    "overhead_share": round(extra / delay, 3),
                    "client_cpu_ms": round(cpu_ms, 2),
                    "client_cpu_share": round(cpu_ms / (1000 * delay), 3),
                }
            )
            print(
                f"{tpl}: {per_req * 1000:.1f} ms per request, wall overhead {extra * 1000:.1f} ms = "
                f"{extra / delay:.1%} of server time; CPU {cpu_ms:.1f} ms = {cpu_ms / (1000 * delay):.1%}"
            )
    finally:
        srv.close()
    return rows


def stages(samples: Path, n: int) -> dict[str, float]:
    """Per-request cost of each client stage, ms (image prompt)."""
    from sarvlm.annotate.cache import ReplyCache
    from sarvlm.annotate.facts import record_facts
    from sarvlm.annotate.images import data_url, file_digest, render_png
    from sarvlm.annotate.offline_writer import offline_reply
    from sarvlm.annotate.parse import parse_reply
    from sarvlm.annotate.validate import validate_reply
    from sarvlm.core.record import read_samples

    tpl = load_template("hcot-marine")
    recs = [r for r in read_samples(samples)][: n * 3]
    t = dict.fromkeys(("facts", "image_hash", "image_encode", "cache_write", "parse", "validate"), 0.0)
    cache = ReplyCache(Path(tempfile.mkdtemp()) / "c")
    k = 0
    for rec in recs:
        s = time.perf_counter()
        f = record_facts(rec, samples.parent)
        t["facts"] += time.perf_counter() - s
        if tpl.missing_facts(f):
            continue
        k += 1
        s = time.perf_counter()
        file_digest(rec.image_path(samples.parent))
        t["image_hash"] += time.perf_counter() - s
        s = time.perf_counter()
        data_url(render_png(rec.image_path(samples.parent), max_side=512))
        t["image_encode"] += time.perf_counter() - s
        reply = offline_reply(tpl, f)
        s = time.perf_counter()
        cache.put(f"{k:064x}", {"reply": reply, "messages": []})
        t["cache_write"] += time.perf_counter() - s
        s = time.perf_counter()
        p = parse_reply(reply, tpl)
        t["parse"] += time.perf_counter() - s
        s = time.perf_counter()
        validate_reply(tpl, f, p)
        t["validate"] += time.perf_counter() - s
    shutil.rmtree(cache.root.parent, ignore_errors=True)
    return {name: round(1000 * v / max(1, k), 3) for name, v in t.items()}


_MEMORY_CHILD = """
import resource, sys, time
from pathlib import Path
from sarvlm.annotate.client import OfflineEndpoint
from sarvlm.annotate.run import AnnotateOptions, annotate_samples
from sarvlm.annotate.templates import load_template
sub, out, run = map(Path, sys.argv[1:4])
t = time.process_time()
annotate_samples(sub, out, load_template("geovl"), OfflineEndpoint(), AnnotateOptions(concurrency=1, run_dir=run))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time() - t)
"""


def memory(samples: Path, tmp: Path, sizes: list[int]) -> list[dict]:
    """Peak RSS of a fresh process annotating N records (offline writer, geovl), for each N."""
    import os
    import subprocess

    rows = []
    lines = samples.read_text().splitlines(keepends=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SARVLM_NO_PROGRESS": "1"}
    for n in sizes:
        sub = samples.parent / f"mem_{n}.jsonl"
        sub.write_text("".join(lines[:n]))
        args = [str(sub), str(samples.parent / f"mem_{n}_out.jsonl"), str(tmp / f"run_mem_{n}")]
        res = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, *args], env=env, capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(res.stderr[-2000:])
        rss_kb, cpu = res.stdout.split()
        rows.append({"records": n, "peak_rss_mb": round(int(rss_kb) / 1024, 1), "cpu_s": round(float(cpu), 2)})
        print(f"memory: {n} records -> peak RSS {int(rss_kb) / 1024:.0f} MB ({float(cpu):.1f} CPU-s)", flush=True)
    return rows


def cache_rerun(samples: Path, tmp: Path, n: int) -> dict:
    """First run fills the cache (offline writer: the same cache path as an endpoint, without paying for
    10,000 loopback requests on a 2-core machine), the rerun answers every record from it."""
    sub = samples.parent / f"cache_{n}.jsonl"
    sub.write_text("".join(samples.read_text().splitlines(keepends=True)[:n]))
    first, _ = _run(sub, "dialogue", OfflineEndpoint(), samples.parent / "cache_out.jsonl", 1, tmp / "run_cache")
    cpu: list[float] = []
    again, rep = _run(sub, "dialogue", OfflineEndpoint(), samples.parent / "cache_out.jsonl", 1, tmp / "run_cache", cpu)
    assert rep.to_dict()["cache_hits"] == n and rep.to_dict()["new_replies"] == 0
    print(
        f"cache: first run {first:.1f} s, rerun {again:.1f} s wall / {cpu[0]:.1f} s CPU, all {n} from the cache",
        flush=True,
    )
    return {
        "records": n,
        "first_run_s": round(first, 2),
        "rerun_s": round(again, 2),
        "rerun_cpu_s": round(cpu[0], 2),
        "rerun_per_record_ms": round(1000 * again / n, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--delay", type=float, default=0.05, help="server delay per request, seconds (default 0.05)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    quick = args.quick
    n_cache = 1000 if quick else 10_000
    n_thr = {1: 20, 8: 120, 32: 320} if quick else {1: 60, 8: 400, 32: 1200}
    mem_sizes = [250, 1000] if quick else [1000, 4000]
    tmp = Path(tempfile.mkdtemp(prefix="bench_annotate_"))
    try:
        samples = make_world(tmp, max(n_cache, max(n_thr.values()), max(mem_sizes)))
        out = {
            "delay_s": args.delay,
            "throughput": throughput(samples, tmp, args.delay, [1, 8, 32], n_thr),
            "overhead": overhead(samples, tmp, args.delay, 10 if quick else 40),
            "stages_ms": stages(samples, 10 if quick else 40),
            "memory": memory(samples, tmp, mem_sizes),
            "cache": cache_rerun(samples, tmp, n_cache),
        }
        print("stages (ms per image request):", out["stages_ms"])
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
