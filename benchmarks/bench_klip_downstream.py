"""Benchmark: KLIP downstream heads on CPU — decoder fine-tuning cost, generation, and synthetic-world quality.

Figures (one thread; the machine may be shared, so CPU time is reported beside wall time):

1. step cost: one fine-tuning step (forward, backward, AdamW) of the caption decoder and of the VQA
   question encoder + answer decoder at batch 8 (tiny-klip, 64² images); peer in the same run: one
   tiny-klip pretraining step (ITC + ITM + MLM) on the same images. Cost grows linearly with the batch
   and with the target length (captions here: the 8-field GEOVL texts, ~90 tokens; answers: 2–5 tokens).
2. generation: captions per second with greedy decoding and with 3-beam search (the default);
   beam search costs about ``beams``× the decoder passes.
3. synthetic-world quality, over ``--seeds`` seeds: a `sarvlm synth` world (``--scenes`` scenes with
   clean GEOVL captions), `sarvlm build` with the caption task and the six KLIP VQA types at the paper's
   4:1 split; a tiny-klip model pretrained for ``--pretrain-steps`` steps; caption (structured style) and
   VQA decoders fine-tuned from it for ``--finetune-steps`` steps, and, as the peer, from the same
   architecture without pretraining (random towers); test-split scores from `sarvlm eval`'s scorers,
   beside the majority-answer baseline of each VQA task (scored the same way).
4. segmentation heads on the frozen pretrained tower: linear vs mask transformer, OA / mIoU on the
   synthetic land-cover masks (half the records each way), beside the majority class.

    python benchmarks/bench_klip_downstream.py [--seeds 3] [--scenes 40] [--pretrain-steps 200]
                                               [--finetune-steps 150] [--out DIR]

Writes ``DIR/results.json`` (default: a temporary directory) and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _timing import timed

os.environ.setdefault("SARVLM_NO_PROGRESS", "1")

VQA_TASKS = ("count", "classify_box", "position", "landform_main", "landform_all", "landform_region")
VQA_KEYS = {
    "count": "accuracy",
    "classify_box": "top1",
    "position": "accuracy",
    "landform_main": "top1",
    "landform_all": "accuracy",
    "landform_region": "top1",
}


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "—"
    m = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * m:.1f} ± {100 * sd:.1f}"


def step_costs(root: Path, data: Path, samples: Path, reps: int) -> dict:
    import torch

    from sarvlm.foundation.config import load_config
    from sarvlm.foundation.decoder_data import load_decoder_items
    from sarvlm.foundation.decoder_model import KlipDecoderModel
    from sarvlm.foundation.finetune_decoder import _load_pixels
    from sarvlm.foundation.model import KlipModel

    klip = KlipModel.from_pretrained(root / "s0" / "pre" / "final")
    out: dict = {}
    cfg = load_config("tiny-klip")
    bs = cfg.train.batch_size
    # peer: a pretraining step on the same images
    from sarvlm.foundation.data import load_images, load_items

    items = load_items(samples)[:bs]
    px = load_images(items, klip.config.vision.image_size, 1, klip.config.db_window)
    ids, att = klip.tokenize([it.text() for it in items])
    opt = torch.optim.AdamW(klip.parameters(), lr=1e-5)
    idx = torch.arange(bs)

    def pre_step():
        o = klip(px, ids, att, idx)
        o.loss.backward()
        opt.step()
        opt.zero_grad()

    pre_step()
    out["pretrain_step"] = timed(pre_step, reps)
    for task in ("caption", "vqa"):
        dec = KlipDecoderModel.from_klip(klip, task)
        its = load_decoder_items(data, task, text_field="structured" if task == "caption" else None)[:bs]
        pix = _load_pixels(its, dec.config)
        t_ids, t_mask = dec.tokenize([it.answer or "" for it in its], 100 if task == "caption" else 35)
        kw = {}
        if task == "vqa":
            q, qm = dec.tokenize([it.question or "" for it in its], 35)
            kw = {"question_ids": q, "question_mask": qm}
        dopt = torch.optim.AdamW(dec.parameters(), lr=1e-5)

        def step(dec=dec, dopt=dopt, pix=pix, t_ids=t_ids, t_mask=t_mask, kw=kw):
            loss = dec(pix, t_ids, t_mask, **kw)
            loss.backward()
            dopt.step()
            dopt.zero_grad()

        step()
        out[f"{task}_step"] = timed(step, reps)
        out[f"{task}_target_tokens"] = float(t_mask.sum(1).float().mean())
        if task == "caption":
            dec.eval()
            for beams in (1, 3):
                wall, cpu = timed(lambda b=beams: dec.generate(pix, num_beams=b, max_new_tokens=100), 2)
                out[f"generate_beams{beams}"] = (wall, cpu, len(its) / wall)
    return out


def majority_predictions(train: Path, test: Path, out: Path) -> None:
    """The most common training answer of each task, for every test example (the VQA peer)."""
    answers: dict[str, Counter] = {}
    for line in train.read_text().splitlines():
        ex = json.loads(line)
        if ex["task"] in VQA_TASKS:
            ref = [m["content"] for m in ex["messages"] if m["role"] == "assistant"][-1]
            answers.setdefault(ex["task"], Counter())[ref] += 1
    rows = []
    for line in test.read_text().splitlines():
        ex = json.loads(line)
        if ex["task"] in answers:
            top = sorted(answers[ex["task"]].items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            rows.append(json.dumps({"id": ex["id"], "task": ex["task"], "prediction": top}))
    out.write_text("\n".join(rows) + "\n")


def quality_run(root: Path, seed: int, args) -> dict:
    import torch

    from sarvlm.data.builder import BuildOptions, build_dataset
    from sarvlm.eval.evaluate import evaluate
    from sarvlm.foundation.config import load_config
    from sarvlm.foundation.data import load_items
    from sarvlm.foundation.finetune_decoder import (
        answered_examples,
        default_settings,
        finetune_decoder,
        predict_decoder,
    )
    from sarvlm.foundation.model import build_model
    from sarvlm.foundation.pretrain import pretrain
    from sarvlm.foundation.tasks import run_segmentation_check
    from sarvlm.synth.world import generate_world

    torch.manual_seed(seed)
    run = root / f"s{seed}"
    generate_world(run / "world", args.scenes, seed, size=64, optical=False, geovl_corrupt=0.0)
    samples = run / "world" / "samples.jsonl"
    opts = BuildOptions(tasks=["caption", *VQA_TASKS], split="4:1", split_method="balanced", seed=seed, qc="flag")
    build_dataset(samples, run / "data", opts, progress=lambda it, **_: it)
    train, test = run / "data" / "train.jsonl", run / "data" / "test.jsonl"
    cfg = load_config("tiny-klip")
    t0 = time.perf_counter()
    pretrain(cfg, samples, run / "pre", steps=args.pretrain_steps, seed=seed, log=lambda *_: None)
    pre_s = time.perf_counter() - t0
    # the peer: the same architecture and tokenizer, never trained
    scratch = build_model(cfg, [it.text() for it in load_items(samples)])
    (run / "scratch").mkdir()
    scratch.save_pretrained(run / "scratch")

    res: dict = {"pretrain_seconds": pre_s}
    for init in ("pretrained", "scratch"):
        model_dir = run / "pre" / "final" if init == "pretrained" else run / "scratch"
        for task in ("caption", "vqa"):
            style = "structured" if task == "caption" else None
            s = default_settings(task, lr=args.lr, batch_size=8)
            ft = run / f"ft_{init}_{task}"
            t0 = time.perf_counter()
            r = finetune_decoder(
                model_dir,
                train,
                ft,
                task=task,
                steps=args.finetune_steps,
                settings=s,
                seed=seed,
                text_field=style,
                log=lambda *_: None,
            )
            res[f"{init}_{task}_finetune_seconds"] = time.perf_counter() - t0
            res[f"{init}_{task}_final_loss"] = r.final_loss
            pred = run / f"pred_{init}_{task}.jsonl"
            rows = predict_decoder(ft, test, pred, text_field=style)
            sub = answered_examples(test, {p["id"] for p in rows}, pred)
            m = evaluate(pred, sub, None)["tasks"]
            if task == "caption":
                c = m["caption"]
                res[f"{init}_caption"] = {k: c.get(k) for k in ("bleu_4", "rouge_l", "cider")}
            else:
                res[f"{init}_vqa"] = {t: m[t].get(VQA_KEYS[t]) for t in VQA_TASKS if t in m}
    base = run / "pred_majority.jsonl"
    majority_predictions(train, test, base)
    from sarvlm.data.fingerprint import record_prediction_source

    vqa_ids = {json.loads(line)["id"] for line in base.read_text().splitlines()}
    sub = answered_examples(test, vqa_ids, base)
    record_prediction_source(base, sub)
    m = evaluate(base, sub, None)["tasks"]
    res["majority_vqa"] = {t: m[t].get(VQA_KEYS[t]) for t in VQA_TASKS if t in m}
    res["test_examples"] = Counter(json.loads(line)["task"] for line in test.read_text().splitlines())
    for head in ("linear", "mask-transformer"):
        (run / f"seg_{head}").mkdir()
        seg = run_segmentation_check(
            run / "pre" / "final", samples, run / f"seg_{head}", steps=200, seed=seed, head=head
        )
        res[f"seg_{head}"] = {k: seg[k] for k in ("oa", "miou", "majority_class_oa", "majority_class_miou")}
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--pretrain-steps", type=int, default=200)
    ap.add_argument("--finetune-steps", type=int, default=150)
    ap.add_argument(
        "--lr", type=float, default=1e-3, help="fine-tuning lr (tiny models; Table 5's 1e-5/2e-5 are for ViT-B)"
    )
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_klip_downstream_"))
    root.mkdir(parents=True, exist_ok=True)
    runs = [quality_run(root, seed, args) for seed in range(args.seeds)]
    costs = step_costs(root, root / "s0" / "data" / "train.jsonl", root / "s0" / "world" / "samples.jsonl", args.reps)
    (root / "results.json").write_text(json.dumps({"args": vars(args), "runs": runs, "costs": costs}, indent=2))

    p = costs["pretrain_step"]
    print(f"## KLIP downstream ({args.seeds} seeds, {args.scenes} scenes, torch threads 1)\n")
    print("| step (batch 8, 64²) | wall ms | CPU ms | × pretraining step (CPU) | target tokens |")
    print("|---|---|---|---|---|")
    print(f"| tiny-klip pretraining (peer) | {1e3 * p[0]:.1f} | {1e3 * p[1]:.1f} | 1.00 | — |")
    for task in ("caption", "vqa"):
        w, c = costs[f"{task}_step"]
        print(
            f"| {task} decoder fine-tuning | {1e3 * w:.1f} | {1e3 * c:.1f} | {c / p[1]:.2f} | {costs[f'{task}_target_tokens']:.1f} |"
        )
    g1, g3 = costs["generate_beams1"], costs["generate_beams3"]
    print(
        f"\ngeneration (8 captions, ≤ 100 tokens): greedy {g1[2]:.1f} captions/s, 3 beams {g3[2]:.1f} captions/s "
        f"(greedy {g3[0] / g1[0]:.2f}× faster)\n"
    )
    print("| test split | pretrained KLIP | untrained towers (peer) | majority answer |")
    print("|---|---|---|---|")
    for key in ("bleu_4", "rouge_l", "cider"):
        vals = {init: [r[f"{init}_caption"][key] for r in runs] for init in ("pretrained", "scratch")}
        print(f"| caption {key} | {_mean_sd(vals['pretrained'])} | {_mean_sd(vals['scratch'])} | — |")
    for t in VQA_TASKS:
        vals = {
            k: [r[f"{k}_vqa"][t] for r in runs if r[f"{k}_vqa"].get(t) is not None]
            for k in ("pretrained", "scratch", "majority")
        }
        n = [r["test_examples"].get(t, 0) for r in runs]
        print(
            f"| {t} {VQA_KEYS[t]} (n = {min(n)}–{max(n)}) | {_mean_sd(vals['pretrained'])} | {_mean_sd(vals['scratch'])} | {_mean_sd(vals['majority'])} |"
        )
    print("\n| segmentation (frozen pretrained tower) | OA | mIoU |")
    print("|---|---|---|")
    for head in ("linear", "mask-transformer"):
        print(
            f"| {head} | {_mean_sd([r[f'seg_{head}']['oa'] for r in runs])} | {_mean_sd([r[f'seg_{head}']['miou'] for r in runs])} |"
        )
    print(
        f"| majority class | {_mean_sd([r['seg_linear']['majority_class_oa'] for r in runs])} | "
        f"{_mean_sd([r['seg_linear']['majority_class_miou'] for r in runs])} |"
    )
    print(f"\nresults: {root / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
