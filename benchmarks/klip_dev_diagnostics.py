"""Development diagnostics for KLIP on the synthetic world: one pretraining run, then every SCIO screening
signal (AUC against the recorded corruptions), zero-shot (captions' words and bare class names), a linear
probe and image->text R@5. Used to choose tiny-klip's fragment-level settings on a *development* world
(docs/bench/foundation.md, "What made screening and zero-shot learn"); never run it on the reported worlds.

    sarvlm synth dev_train --scenes 120 --size 128 --no-optical --geovl-corrupt 0.2 --seed 7
    sarvlm synth dev_test --scenes 60 --size 128 --no-optical --geovl-corrupt 0 --seed 1007
    python benchmarks/klip_dev_diagnostics.py --train dev_train/samples.jsonl --test dev_test/samples.jsonl \\
        --run runs/dev --steps 100 --set train.batch_size=16

Prints one JSON line. CPU, one thread; ~1 min for 200 steps at batch 16 on an idle core.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    from sarvlm.demo.foundation import (
        LAND_COVER_TEMPLATES,
        LAND_COVERS,
        SCENE_DESCRIPTIONS,
        SCENE_KINDS,
        SCENE_TEMPLATES,
        detection_auc,
        dominant_land_cover,
    )
    from sarvlm.foundation.config import load_config
    from sarvlm.foundation.data import load_images, load_items
    from sarvlm.foundation.model import KlipModel
    from sarvlm.foundation.pretrain import pretrain
    from sarvlm.foundation.probe import linear_probe
    from sarvlm.foundation.scio import attach_truth, screen, text_features
    from sarvlm.foundation.zeroshot import class_embeddings, image_features, load_templates

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True, help="training world samples.jsonl (with --geovl-corrupt)")
    ap.add_argument("--test", required=True, help="held-out world samples.jsonl")
    ap.add_argument("--run", required=True, help="run directory (overwritten)")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=JSON")
    a = ap.parse_args()
    torch.set_num_threads(1)
    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    cfg = load_config("tiny-klip", overrides)
    t0 = time.process_time()
    pretrain(cfg, a.train, a.run, steps=a.steps, seed=a.seed, overwrite=True, log=lambda *_: None)
    res: dict = {"steps": a.steps, "set": a.set, "train_cpu_s": round(time.process_time() - t0, 1)}
    model = KlipModel.from_pretrained(f"{a.run}/final").eval()
    train = load_items(a.train, label_field="meta.kind")
    test = load_items(a.test, label_field="meta.kind")
    c = model.config
    train_img = load_images(train, c.vision.image_size, c.vision.num_channels, c.db_window)
    test_img = load_images(test, c.vision.image_size, c.vision.num_channels, c.db_window)
    decisions, _ = screen(model, train, train_img)
    attach_truth(decisions, train)
    rows = [r for rs in decisions for r in rs]
    truth = [bool(r.corrupted) for r in rows]
    res["auc_loo_itc"] = detection_auc([-r.delta_itc for r in rows], truth)
    res["auc_loo_itm"] = detection_auc([r.delta_itm for r in rows], truth)
    res["auc_alone_itc"] = detection_auc([-r.itc for r in rows], truth)
    res["auc_alt_itc"] = detection_auc([-(r.alt_itc or 0.0) for r in rows], truth)
    res["auc_alt_itm"] = detection_auc([-(r.alt_itm or 0.0) for r in rows], truth)
    with torch.no_grad():
        f_train, f_test = image_features(model, train_img), image_features(model, test_img)
        y = np.array([SCENE_KINDS.index(it.label) for it in test])
        words = class_embeddings(model, list(SCENE_KINDS), SCENE_TEMPLATES, "cpu", SCENE_DESCRIPTIONS)
        names = class_embeddings(model, list(SCENE_KINDS), load_templates(None), "cpu")
        res["zeroshot_captions_words"] = float(((f_test @ words.T).numpy().argmax(1) == y).mean())
        res["zeroshot_bare_names"] = float(((f_test @ names.T).numpy().argmax(1) == y).mean())
        y_lc = np.array([LAND_COVERS.index(dominant_land_cover(it)) for it in test])
        lc = class_embeddings(model, list(LAND_COVERS), LAND_COVER_TEMPLATES, "cpu")
        res["zeroshot_land_cover"] = float(((f_test @ lc.T).numpy().argmax(1) == y_lc).mean())
        texts = text_features(model, [it.text() for it in test], "cpu")
        sim = f_test @ texts.T
        rank = (sim >= sim.diag()[:, None]).sum(1) - 1
        res["r5_i2t"] = float((rank < 5).float().mean())
    y_train = np.array([SCENE_KINDS.index(it.label) for it in train])
    probs = linear_probe(f_train, y_train, f_test, len(SCENE_KINDS), seed=0)
    res["probe"] = float((probs.argmax(1) == y).mean())
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}))


if __name__ == "__main__":
    main()
