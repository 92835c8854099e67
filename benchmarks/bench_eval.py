"""Evaluation benchmark.

1. ``sarvlm.eval.evaluate`` on 10,000 predictions spread over every task (no METEOR, no
   judges, no plots): absolute wall time (target < 10 s).
2. Caption metrics on 5,000 images x 5 references: sarvlm's ``caption_scores`` (pure-Python
   PTB tokenizer + pycocoevalcap scorers) against the peer, pycocoevalcap's own pipeline
   (Java PTBTokenizer + Bleu/Rouge/Cider), measured in the same run; the numbers must be equal.

Run: ``python benchmarks/bench_eval.py`` (writes nothing; prints a Markdown table).
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path


def cpu() -> float:
    """CPU seconds of this process and its finished children (the Java tokenizer runs as one)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


WORDS = (
    "the a an of in on at with and several many two three 12 5 3.5 ship ships plane aircraft harbor harbour port "
    "oil tank tanks bridge runway water river urban buildings farmland forest grassland dark bright speckled SAR "
    "image scene area region near left right top bottom center large small it's isn't there's ship's U.S. e.g. "
    "well-known L-shaped north-east 50% and/or"
).split()
PUNCT = ["", "", "", "", "", "", ",", ".", ";", ")", "'s", "..."]


def caption(r: random.Random) -> str:
    s = " ".join(r.choice(WORDS) + r.choice(PUNCT) for _ in range(r.randint(6, 18)))
    return s[0].upper() + s[1:] + "."


def build_task_files(tmp: Path, n: int = 10_000, seed: int = 0) -> tuple[Path, Path]:
    from sarvlm.core.coords import to_model_coords
    from sarvlm.core.example import InstructionExample, Message, Prediction, write_jsonl

    r = random.Random(seed)
    tasks = [
        "count",
        "grid",
        "classify_box",
        "detect",
        "identify",
        "position",
        "landform_main",
        "landform_all",
        "caption",
        "vqa",
    ]
    cats = ["ship", "aircraft", "oil tank", "bridge", "harbor"]
    lands = ["water", "urban", "farmland", "forest", "grassland"]
    ex, pr = [], []
    for i in range(n):
        task = tasks[i % len(tasks)]
        kw: dict = {}
        if task == "count":
            ans = r.randint(0, 20)
            text = r.choice([f"There are {ans + r.choice([0, 0, 1, -1])} ships.", f"{ans}", "I cannot tell."])
        elif task == "grid":
            ans = sorted(r.sample(range(1, 10), r.randint(1, 3)))
            got = ans if r.random() < 0.5 else sorted(r.sample(range(1, 10), 2))
            text = "Cells " + ", ".join(map(str, got)) + "."
        elif task in ("classify_box", "landform_main"):
            pool = cats if task == "classify_box" else lands
            ans = r.choice(pool)
            text = f"It is a {r.choice(pool)}."
            kw["params"] = {"box": [0, 0, 9, 9], "level": "coarse"} if task == "classify_box" else {}
        elif task == "landform_all":
            ans = sorted(r.sample(lands, 2))
            text = " and ".join(r.sample(lands, 2))
        elif task == "detect":
            w, h = 800, 600
            ans = []
            for _ in range(r.randint(1, 6)):
                x, y = r.uniform(0, 700), r.uniform(0, 500)
                ans.append([x, y, x + r.uniform(10, 90), y + r.uniform(10, 90)])
            conv = r.choice(["qwen2.5", "qwen3"])
            boxes = [
                to_model_coords([b[0] + r.uniform(-5, 5), b[1], b[2], b[3]], conv, w, h)
                for b in ans
                if r.random() < 0.8
            ]
            text = json.dumps([{"bbox_2d": b, "label": "ship"} for b in boxes])
            kw.update(params={"category": r.choice(cats)}, coords=conv, width=w, height=h)
        elif task == "identify":
            ans = r.choice(["yes", "no"])
            text = r.choice(["Yes, there is.", "No.", "yes"])
        elif task == "position":
            ans = r.choice(["left", "right", "top", "bottom", "center"])
            text = f"It is on the {r.choice(['left', 'right', 'upper', 'lower', 'middle'])} side."
        elif task == "caption":
            ans = caption(r)
            text = caption(r)
        else:
            ans = r.choice(["oval", "pond", "two", "large"])
            text = r.choice(["Oval.", "a pond", "2", "small"])
        ex.append(
            InstructionExample(
                id=f"e{i}",
                sample_id=f"s{i}",
                task=task,
                images=["x.png"],
                answer=ans,
                messages=[
                    Message(role="user", content="<image>Question?"),
                    Message(role="assistant", content=str(ans)),
                ],
                **kw,
            )
        )
        pr.append(Prediction(id=f"e{i}", task=task, prediction=text))
    write_jsonl(tmp / "test.jsonl", ex)
    write_jsonl(tmp / "pred.jsonl", pr)
    return tmp / "pred.jsonl", tmp / "test.jsonl"


def bench_evaluate() -> tuple[float, float]:
    from sarvlm.core.coords import smart_resize
    from sarvlm.eval import evaluate

    smart_resize(600, 800)  # import transformers' resize rule outside the timed region
    with tempfile.TemporaryDirectory() as d:
        pred, data = build_task_files(Path(d))
        t0, c0 = time.perf_counter(), cpu()
        evaluate(pred, data, Path(d) / "rep", plots=False)
        return time.perf_counter() - t0, cpu() - c0


def bench_captions(n_images: int = 5000, n_refs: int = 5) -> dict:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from sarvlm.eval import caption_scores
    from sarvlm.metrics.ptb_tokenizer import _lex_chunk

    r = random.Random(1)
    refs = {f"img{i}": [caption(r) for _ in range(n_refs)] for i in range(n_images)}
    preds = {k: caption(r) for k in refs}

    t0, c0 = time.perf_counter(), cpu()
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": preds[k]}] for k in refs})
    t_tok_peer = time.perf_counter() - t0
    peer = {}
    b, _ = Bleu(4).compute_score(gts, res, verbose=0)
    peer.update({f"bleu_{i + 1}": b[i] for i in range(4)})
    peer["rouge_l"], _ = Rouge().compute_score(gts, res)
    peer["cider"], _ = Cider().compute_score(gts, res)
    t_peer, c_peer = time.perf_counter() - t0, cpu() - c0

    _lex_chunk.cache_clear()  # cold tokenizer cache
    t0, c0 = time.perf_counter(), cpu()
    mine = caption_scores(refs, preds)
    t_mine, c_mine = time.perf_counter() - t0, cpu() - c0
    from sarvlm.metrics.ptb_tokenizer import tokenize

    _lex_chunk.cache_clear()
    t0 = time.perf_counter()
    tokenize(refs)
    tokenize({k: [preds[k]] for k in refs})
    t_tok_mine = time.perf_counter() - t0
    equal = all(mine[k] == peer[k] for k in peer)
    return {
        "peer_s": t_peer,
        "mine_s": t_mine,
        "peer_cpu": c_peer,
        "mine_cpu": c_mine,
        "peer_tok_s": t_tok_peer,
        "mine_tok_s": t_tok_mine,
        "equal": equal,
        "cider": mine["cider"],
        "bleu_4": mine["bleu_4"],
    }


def main() -> int:
    t_eval, c_eval = bench_evaluate()
    cap = bench_captions()
    print("| measurement | value |")
    print("|---|---|")
    print(
        f"| evaluate(): 10,000 predictions, all tasks, no METEOR/judges/plots | {t_eval:.2f} s wall, {c_eval:.2f} s CPU ({10000 / t_eval:,.0f} predictions/s wall) |"
    )
    print(
        f"| captions 5,000 x 5 refs: pycocoevalcap (Java PTB tokenizer + Bleu/Rouge/Cider) | {cap['peer_s']:.2f} s wall, {cap['peer_cpu']:.2f} s CPU incl. JVM (tokenizer {cap['peer_tok_s']:.2f} s wall) |"
    )
    print(
        f"| captions 5,000 x 5 refs: sarvlm caption_scores (Python PTB tokenizer + same scorers) | {cap['mine_s']:.2f} s wall, {cap['mine_cpu']:.2f} s CPU (tokenizer {cap['mine_tok_s']:.2f} s wall) |"
    )
    print(f"| time ratio sarvlm / pycocoevalcap, wall (< 1 is faster) | {cap['mine_s'] / cap['peer_s']:.2f} |")
    print(f"| time ratio sarvlm / pycocoevalcap, CPU (< 1 is faster) | {cap['mine_cpu'] / cap['peer_cpu']:.2f} |")
    print(f"| tokenizer ratio sarvlm / Java | {cap['mine_tok_s'] / cap['peer_tok_s']:.2f} |")
    print(
        f"| identical numbers (BLEU-1..4, ROUGE-L, CIDEr) | {cap['equal']} (CIDEr {cap['cider']:.6f}, BLEU-4 {cap['bleu_4']:.6f}) |"
    )
    return 0 if cap["equal"] and t_eval < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
