"""Fragment-level KLIP signals: fragment dropout, fragment-swap ITM negatives, the fragment-level ITC
loss, SCIO's "alternatives" screening rule and zero-shot class descriptions (all tiny, CPU)."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from _foundation_data import fields_for, make_world
from sarvlm.foundation.config import load_config
from sarvlm.foundation.fragments import drop_fragments, swap_fragment_negatives
from sarvlm.foundation.losses import fragment_itc_loss, itm_loss

torch.set_num_threads(1)

# two texts: [CLS] f0 f0 f1 f1 f1 [SEP] / [CLS] f0 f0 f1 f1 [SEP]; a third with fragment 0 equal to row 0's
IDS = torch.tensor([[2, 10, 11, 20, 21, 22, 3, 0], [2, 12, 13, 20, 23, 3, 0, 0], [2, 10, 11, 24, 3, 0, 0, 0]])
FRAG = torch.tensor([[-1, 0, 0, 1, 1, 1, -1, -1], [-1, 0, 0, 1, 1, -1, -1, -1], [-1, 0, 0, 1, -1, -1, -1, -1]])
ATT = (IDS > 0).long()


def _spans(ids, frag):
    return {j: ids[(frag == j)].tolist() for j in frag.unique().tolist() if j >= 0}


def test_drop_fragments_keeps_specials_and_at_least_one_fragment_and_repacks_left():
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        ids, att, frag, _ = drop_fragments(IDS, ATT, FRAG, 0.3, g)
        for i in range(3):
            n = int(att[i].sum())
            assert att[i, :n].all() and not att[i, n:].any()  # packed to the left
            row = ids[i, :n].tolist()
            assert row[0] == 2 and row[-1] == 3  # [CLS] ... [SEP] stay
            kept = _spans(ids[i, :n], frag[i, :n])
            assert kept  # never an empty text
            original = _spans(IDS[i], FRAG[i])
            assert all(original[j] == toks for j, toks in kept.items())  # whole fragments, unchanged
    # keep = 1: the batch as is; the same generator state gives the same subsets
    assert drop_fragments(IDS, ATT, FRAG, 1.0, torch.Generator())[0] is IDS
    a = drop_fragments(IDS, ATT, FRAG, 0.5, torch.Generator().manual_seed(3))[0]
    b = drop_fragments(IDS, ATT, FRAG, 0.5, torch.Generator().manual_seed(3))[0]
    assert torch.equal(a, b)


def test_drop_fragments_varies_the_number_of_fragments():
    g = torch.Generator().manual_seed(0)
    counts = set()
    for _ in range(30):
        _, att, frag, _ = drop_fragments(IDS[:1], ATT[:1], FRAG[:1], 0.5, g)
        counts.add(len([j for j in frag[0].unique().tolist() if j >= 0]))
    assert counts == {1, 2}


def test_swap_negatives_differ_in_one_same_field_fragment_taken_from_another_text():
    field_of = torch.tensor([[0, 1], [0, 1], [0, 1]])
    idx = torch.tensor([0, 1, 2])
    neg, att, rows = swap_fragment_negatives(IDS, ATT, FRAG, field_of, idx, torch.Generator().manual_seed(0))
    assert rows.tolist() == [0, 1, 2]
    for r, i in enumerate(rows.tolist()):
        text = neg[r][att[r] > 0].tolist()
        assert text != IDS[i][ATT[i] > 0].tolist()
        mine = _spans(IDS[i], FRAG[i])
        # exactly one fragment replaced, by the same field's fragment of another row
        candidates = []
        for k in range(3):
            if k == i:
                continue
            theirs = _spans(IDS[k], FRAG[k])
            for j in (0, 1):
                if theirs[j] != mine[j]:
                    swapped = [2] + sum((theirs[x] if x == j else mine[x] for x in (0, 1)), []) + [3]
                    candidates.append(swapped)
        assert text in candidates


def test_swap_negatives_skip_rows_with_nothing_different_and_same_sample_rows():
    field_of = torch.tensor([[0, 1], [0, 1]])
    same = IDS[:1].repeat(2, 1)
    frag = FRAG[:1].repeat(2, 1)
    att = ATT[:1].repeat(2, 1)
    neg, _, rows = swap_fragment_negatives(same, att, frag, field_of, torch.tensor([0, 1]), torch.Generator())
    assert len(rows) == 0 and neg.shape[0] == 0  # identical texts: no fragment says something else
    neg, _, rows = swap_fragment_negatives(
        IDS[:2], ATT[:2], FRAG[:2], field_of, torch.tensor([5, 5]), torch.Generator()
    )
    assert len(rows) == 0  # same sample: never a donor


def test_fragment_itc_loss_hand_computed_and_lower_when_aligned():
    img = torch.eye(2)
    frag = torch.eye(2)
    row = torch.tensor([0, 1])
    field = torch.tensor([0, 0])
    value = torch.tensor([0, 1])
    t = torch.tensor(1.0)
    # each row: softmax over [1, 0] -> CE = log(1 + e^-1); both directions alike
    expect = math.log(1 + math.exp(-1))
    assert fragment_itc_loss(img, frag, row, field, value, t).item() == pytest.approx(expect, rel=1e-6)
    swapped = fragment_itc_loss(img, frag.flip(0), row, field, value, t)
    assert swapped.item() == pytest.approx(math.log(1 + math.exp(1)), rel=1e-6)
    # equal values are all positives: two identical fragments -> targets 1/2 each
    same = fragment_itc_loss(img, frag, row, field, torch.tensor([0, 0]), t)
    assert same.item() == pytest.approx(-(0.5 * math.log(math.e / (math.e + 1)) + 0.5 * math.log(1 / (math.e + 1))))
    # fields never compete: one fragment per field -> log(1) = 0
    assert fragment_itc_loss(img, frag, row, torch.tensor([0, 1]), value, t).item() == pytest.approx(0.0, abs=1e-7)


def test_itm_loss_takes_any_number_of_negatives():
    logits = torch.tensor([[0.0, 9.0]] * 2 + [[9.0, 0.0]] * 6)
    assert itm_loss(logits, 2) < 1e-3
    assert itm_loss(logits.flip(0), 2) > 4  # 4 of 8 rows wrong by 9 nats


def _cfg(**extra):
    base = {"vision.image_size": 32, "queue_size": 16, "train.warmup_steps": 2}
    return load_config("tiny-klip-fragments", {**base, **extra})


def _losses(run):
    with open(run / "loss.csv", encoding="utf-8") as fh:
        return [(r["loss"], r["itc"], r["itm"], r["mlm"]) for r in csv.DictReader(fh)]


def test_pretrain_with_fragment_signals_is_deterministic_and_adds_the_fragment_loss(tmp_path):
    from sarvlm.foundation.pretrain import pretrain

    data = make_world(tmp_path / "w", n=16)
    on = {
        "train.fragment_keep": 0.5,
        "train.itm_fragment_negatives": True,
        "train.loss_weights": {"itc": 1, "itm": 1, "mlm": 1, "fragment_itc": 1},
    }
    for name in ("a", "b"):
        pretrain(_cfg(**on), data, tmp_path / name, steps=6, seed=0, log=lambda *_: None)
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    rows = _losses(tmp_path / "a")
    # total = ITC + ITM + MLM + fragment ITC (> 0): the extra term is in the objective
    assert all(float(t) > float(a) + float(b) + float(c) + 0.1 for t, a, b, c in rows)


def test_alternatives_rule_records_the_best_other_value_of_the_same_field(tmp_path):
    from sarvlm.foundation.data import load_images, load_items
    from sarvlm.foundation.model import build_model
    from sarvlm.foundation.scio import screen

    data = make_world(tmp_path / "w", n=8)
    items = load_items(data)
    cfg = _cfg()
    torch.manual_seed(0)
    model = build_model(cfg, [it.text() for it in items]).eval()
    images = load_images(items, 32, 1, cfg.db_window)
    values = {f: {v for it in items for g, v in zip(it.fields, it.values) if g == f} for f in items[0].fields}
    for rule in ("leave_one_out", "alternatives"):
        decisions, keeps = screen(model, items, images, rule=rule)
        for rows, keep in zip(decisions, keeps):
            assert any(keep)
            for r in rows:
                others = values[r.field] - {r.original}
                if not others:
                    assert r.alternative is None and r.alt_itc is None
                    continue
                assert r.alternative in others
                assert -2.0 <= r.alt_itc <= 2.0 and -1.0 <= r.alt_itm <= 1.0
            if rule == "alternatives":  # dropped exactly when another value wins on ITC and ITM
                would = [x.alt_itc is not None and x.alt_itc < 0 and x.alt_itm < 0 for x in rows]
                if not all(would):
                    assert [x.action == "dropped" for x in rows] == would
    with pytest.raises(ValueError):
        screen(model, items, images, rule="nope")


def test_zeroshot_class_descriptions_and_unseen_words(tmp_path):
    from sarvlm.core.errors import InputError
    from sarvlm.foundation.model import build_model
    from sarvlm.foundation.zeroshot import class_descriptions, class_prompts, parse_classes, unseen_words

    spec = "coast=a coastal zone, rural=used for agriculture,port"
    assert parse_classes(spec) == ["coast", "rural", "port"]
    assert class_descriptions(spec) == {"coast": "a coastal zone", "rural": "used for agriculture"}
    prompts = class_prompts(parse_classes(spec), ["The area is {}."], class_descriptions(spec))
    assert prompts == {
        "coast": ["The area is a coastal zone."],
        "rural": ["The area is used for agriculture."],
        "port": ["The area is port."],
    }
    with pytest.raises(InputError):
        class_descriptions("coast=")
    with pytest.raises(InputError):
        parse_classes("coast=a,coast=b")
    texts = [it for k in ("coast", "rural") for it in [" ".join(f"{a}: {b}." for a, b in fields_for(k).items())]]
    model = build_model(_cfg(), texts * 4)
    # the captions say "coastal zone", never "coast" or "shore": spelled letter by letter
    assert unseen_words(model.tokenizer, ["The area is coast.", "A coastal zone with a shore."]) == ["coast", "shore"]


def test_zeroshot_cli_accepts_descriptions_and_reports_unseen_words(tmp_path, capsys):
    from sarvlm.cli.main import main
    from sarvlm.foundation.pretrain import pretrain

    data = make_world(tmp_path / "w", n=16)
    pretrain(_cfg(), data, tmp_path / "run", steps=3, seed=0, log=lambda *_: None)
    rc = main(
        [
            "zeroshot",
            "--model",
            str(tmp_path / "run" / "final"),
            "--data",
            str(data),
            "--classes",
            "coast=a coastal zone,port,rural=used for agriculture,urban=a town",
            "--out",
            str(tmp_path / "zs"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    metrics = json.loads((tmp_path / "zs" / "metrics.json").read_text())
    assert metrics["descriptions"]["coast"] == "a coastal zone"
    assert "sar" in metrics["unseen_words"]  # the default templates' "A SAR image of {}." is not caption vocabulary
    assert "spells these prompt words letter by letter" in out
