"""Hand-computed cases for count/grid/classification/detection/segmentation/retrieval/VQA; mAP vs pycocotools."""

from __future__ import annotations

import contextlib
import io
import math
import random

import numpy as np
import pytest

from sarvlm.eval import (
    classification_scores,
    count_scores,
    detection_scores,
    grid_scores,
    multilabel_scores,
    retrieval_scores,
    segmentation_scores,
    vqa_accuracy,
)
from sarvlm.metrics.detection import coco_map50, greedy_match, iou_matrix


def test_count_scores():
    s = count_scores([3, 5, 0, 2], [3, 4, 0, None])
    assert s["accuracy"] == 0.5 and s["mae"] == pytest.approx(1 / 3) and s["no_answer"] == 1 and s["answered"] == 3
    assert math.isnan(count_scores([1], [None])["mae"])


def test_grid_scores_hand_computed():
    gt = [{1, 2}, {5}, {3, 6, 9}, {1, 2, 3, 4}, {7}]
    pred = [{1, 2}, {5, 6}, {9}, {1, 2}, None]
    s = grid_scores(gt, pred)
    # acc100: only the first. acc50: {1,2}=1, {5}/{5,6}=0.5 yes, {9}/{3,6,9}=1/3 no, 2/4=0.5 yes, None no -> 3.
    # top1: first four intersect -> 4.
    assert (s["acc100"], s["acc50"], s["top1"]) == (1 / 5, 3 / 5, 4 / 5)
    assert s["no_answer"] == 1
    empty = grid_scores([set(), set(), {1}], [set(), {2}, set()])
    assert (empty["acc100"], empty["acc50"], empty["top1"]) == (1 / 3, 1 / 3, 1 / 3)
    assert grid_scores([set()], [None])["acc100"] == 0.0


def test_classification_top1_top3_per_class_and_confusion():
    gt = ["ship", "ship", "aircraft", "bridge"]
    pred = [["ship", "bridge"], ["aircraft", "ship", "bridge"], "aircraft", None]
    s = classification_scores(gt, pred)
    assert s["top1"] == 0.5 and s["top3"] == 0.75
    assert s["per_class"] == {"aircraft": 1.0, "bridge": 0.0, "ship": 0.5}
    conf = s["confusion"]
    assert conf["matrix"][conf["rows"].index("bridge")][conf["cols"].index("(no answer)")] == 1
    assert conf["matrix"][conf["rows"].index("ship")][conf["cols"].index("aircraft")] == 1


def test_multilabel():
    s = multilabel_scores([["urban", "water"], ["forest"]], [["urban", "water"], ["forest", "water"]])
    assert s["accuracy"] == 0.5 and s["precision"] == pytest.approx(3 / 4) and s["recall"] == 1.0


def test_iou_continuous_no_plus_one():
    iou = iou_matrix(np.array([[0, 0, 10, 10]], float), np.array([[5, 0, 15, 10]], float))
    assert iou[0, 0] == pytest.approx(50 / 150)


def test_greedy_matching_is_one_to_one_and_prefers_highest_iou():
    gt = np.array([[0, 0, 10, 10], [8, 0, 18, 10]], float)
    pred = np.array([[1, 0, 11, 10]], float)  # overlaps both, better with the first
    assert greedy_match(pred, gt, 0.1) == 1
    # Two predictions on one truth: only one may match.
    assert greedy_match(np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float), gt[:1], 0.5) == 1


def test_detection_prf_hand_computed():
    gt = [[("ship", 0, 0, 10, 10), ("ship", 20, 20, 30, 30)], [("plane", 0, 0, 10, 10)]]
    pred = [[("ship", 0, 0, 10, 10), ("ship", 22, 22, 30, 30), ("ship", 50, 50, 60, 60)], [("plane", 0, 0, 20, 10)]]
    s = detection_scores(gt, pred)
    # IoUs: ship exact 1.0, ship 64/100=0.64, plane 100/200=0.5.
    assert s[0.25]["all"]["tp"] == 3 and s[0.5]["all"]["tp"] == 3 and s[0.75]["all"]["tp"] == 1
    a = s[0.5]["all"]
    assert (a["precision"], a["recall"]) == (3 / 4, 3 / 3)
    assert a["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert s[0.75]["ship"]["precision"] == pytest.approx(1 / 3) and s[0.75]["plane"]["recall"] == 0.0
    none = detection_scores(gt, [None, None], map50=False)
    assert none[0.5]["all"]["recall"] == 0.0 and none[0.5]["all"]["precision"] == 0.0


def test_map50_equals_pycocotools_reference_pipeline():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    r = random.Random(3)
    gt, pred = [], []
    for _ in range(25):
        g, p = [], []
        for _ in range(r.randint(0, 5)):
            c = r.choice(["ship", "aircraft"])
            x, y, w, h = r.uniform(0, 200), r.uniform(0, 200), r.uniform(5, 40), r.uniform(5, 40)
            g.append((c, x, y, x + w, y + h))
            if r.random() < 0.8:
                j = r.uniform(-6, 6)
                p.append((c, x + j, y - j, x + w + j, y + h))
        for _ in range(r.randint(0, 2)):
            x, y = r.uniform(0, 200), r.uniform(0, 200)
            p.append((r.choice(["ship", "aircraft"]), x, y, x + 20, y + 20))
        r.shuffle(p)
        gt.append(g)
        pred.append(p)
    mine = coco_map50(gt, pred)
    # Reference: the textbook pycocotools flow with the same rank-derived scores.
    cats = sorted({b[0] for g in gt for b in g})
    cid = {c: i + 1 for i, c in enumerate(cats)}
    ds = {
        "images": [{"id": i + 1} for i in range(len(gt))],
        "categories": [{"id": v, "name": k} for k, v in cid.items()],
        "annotations": [],
    }
    for i, g in enumerate(gt):
        for c, x1, y1, x2, y2 in g:
            ds["annotations"].append(
                {
                    "id": len(ds["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": cid[c],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    dets = [
        {
            "image_id": i + 1,
            "category_id": cid[b[0]],
            "bbox": [b[1], b[2], b[3] - b[1], b[4] - b[2]],
            "score": 1 / (1 + k),
        }
        for i, p in enumerate(pred)
        for k, b in enumerate(p)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = ds
        cg.createIndex()
        ev = COCOeval(cg, cg.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert mine["all"] == pytest.approx(ev.stats[1], abs=1e-12)
    assert 0.2 < mine["all"] < 1.0


def test_segmentation_oa_miou_hand_computed():
    gt = np.array([[0, 0], [1, 1]])
    pred = np.array([[0, 1], [1, 1]])
    s = segmentation_scores([(gt, pred)], num_classes=3)
    # class 0: tp1 fn1 fp0 -> 1/2; class 1: tp2 fp1 -> 2/3; class 2 absent -> NaN, excluded.
    assert s["oa"] == 0.75 and s["miou"] == pytest.approx((0.5 + 2 / 3) / 2)
    out_of_range = segmentation_scores([(gt, np.array([[0, 7], [1, 1]]))], num_classes=2)
    assert out_of_range["iou"]["0"] == 0.5 and out_of_range["oa"] == 0.75
    ign = segmentation_scores([(np.array([[0, 255]]), np.array([[0, 1]]))], num_classes=2, ignore_index=255)
    assert ign["oa"] == 1.0 and ign["pixels"] == 1


def test_retrieval_recall():
    # 3 images, 4 texts; text 3 also describes image 0.
    sim = np.array([[0.9, 0.1, 0.3, 0.2], [0.8, 0.7, 0.1, 0.0], [0.1, 0.2, 0.05, 0.1]])
    s = retrieval_scores(sim, [0, 1, 2, 0], ks=(1, 2))
    # image->text (txt_r, BLIP's text retrieval): img0 best text t0 rank 0; img1 t1 0.7 behind 0.8 -> rank 1;
    # img2 t2 0.05 is last of 4 -> rank 3.
    assert s["txt_r1"] == pytest.approx(100 / 3) and s["txt_r2"] == pytest.approx(200 / 3)
    # text->image (img_r, BLIP's image retrieval): t0 img0 first; t1 img1 first; t2 truth 0.05 is last (rank 2);
    # t3 img0 0.2 vs 0.0, 0.1 -> first.
    assert s["img_r1"] == 75.0 and s["img_r2"] == 75.0
    assert s["txt_r_mean"] == pytest.approx(50.0) and s["img_r_mean"] == 75.0
    assert s["r_mean"] == pytest.approx((50.0 + 75.0) / 2)
    const = retrieval_scores(np.zeros((3, 3)), [0, 1, 2], ks=(1,))
    assert const["txt_r1"] == 0.0 and const["img_r1"] == 0.0  # ties never count as hits


def test_vqa_exact_and_sarlang_protocols():
    q = ["how many?", "is there a ship?", "what shape?", "what is it?", "what covers it?"]
    gt = ["two", "yes", "oval", "storage tank", "dense forest"]
    pred = ["2", "Yes.", "The oval.", "a large storage tank near water", "woods"]
    ex = vqa_accuracy(q, gt, pred, types=["count", "yesno", "shape", "object", "land"])
    assert ex["accuracy"] == pytest.approx(3 / 5) and ex["per_type"]["object"]["accuracy"] == 0.0
    calls = []

    def judge(question, g, p):
        calls.append(p)
        return None if p == "woods" else True

    sl = vqa_accuracy(q, gt, pred, protocol="sarlang1m", judge=judge)
    # The released script: "two" not in "2" and not yes/no/0-99 -> judge; "yes" in "yes." -> 1 (substring);
    # "oval" in "the oval." -> 1; truth in prediction -> 1; "woods" -> judge, unparsable (excluded).
    assert calls == ["2", "woods"] and sl["judge_unparsable"] == 1 and sl["accuracy"] == 1.0
    # Substring first: truth 3 inside 13 counts (a quirk of the script, kept on purpose).
    assert vqa_accuracy(["n?"], ["3"], ["13"], protocol="sarlang1m")["accuracy"] == 1.0
    assert vqa_accuracy(["n?"], ["3"], ["13"], protocol="sarlang1m-strict")["accuracy"] == 0.0
    # "Yes." is not "yes" exactly and "yes" is... a substring; "no." vs truth "yes": exact rule -> 0.
    assert vqa_accuracy(["q"], ["yes"], ["no."], protocol="sarlang1m")["accuracy"] == 0.0
    nojudge = vqa_accuracy(q[:1], ["a pond"], ["swimming pool"], protocol="sarlang1m")
    assert nojudge["unjudged"] == 1 and nojudge["accuracy"] == 0.0
