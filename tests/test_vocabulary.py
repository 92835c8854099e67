"""One vocabulary: every synonym names one canonical thing, and a reference and a prediction that
name the same class in different words score as equal everywhere (quality control, parsing,
`sarvlm eval`, the demo report's prior-question subsets)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sarvlm.cli.main import main as cli_main
from sarvlm.core.example import InstructionExample, Message, Prediction, read_examples, write_jsonl
from sarvlm.core.record import SampleRecord, parse_sample, write_samples
from sarvlm.core.vocabulary import (
    ANSWER_SYNONYMS,
    CARDINALS,
    DATASET_CLASSES,
    LANDCOVERS,
    OBJECT_CATEGORIES,
    SYNONYMS,
    answer_key,
    canonical_category,
    cell_name,
    grid_cell,
    number_word,
    same_answer,
)
from sarvlm.data.builder import BuildOptions, build_dataset
from sarvlm.data.quality import QualityReport, clean_targets

OIL_TANK_WORDS = ("oil tank", "tank", "oil_tank", "storage tank")


def test_every_answer_synonym_maps_to_one_canonical_name():
    owner: dict[str, str] = {}
    for canon, forms in ANSWER_SYNONYMS.items():
        assert forms[0] == canon
        for form in forms:
            assert form not in owner, f"{form!r} names both {owner.get(form)!r} and {canon!r}"
            owner[form] = canon
            assert answer_key(form) == canon
            assert answer_key(form.upper()) == canon  # case never matters
    assert set(OBJECT_CATEGORIES) <= set(ANSWER_SYNONYMS) and set(LANDCOVERS) <= set(ANSWER_SYNONYMS)


def test_dataset_class_names_map_to_canonical_categories():
    for family, table in DATASET_CLASSES.items():
        for name, canon in table.items():
            assert canon in OBJECT_CATEGORIES, (family, name)
            assert SYNONYMS[name] == canon, (family, name)  # no two families disagree
            assert canonical_category(name.upper()) == canon
    # SARDet-100k's six classes are the canonical categories
    assert set(DATASET_CLASSES["sardet-100k"].values()) == set(OBJECT_CATEGORIES)


@pytest.mark.parametrize("word", [*OIL_TANK_WORDS, "Oil_Tank", "storage-tank", "oiltank", "Storage Tanks"])
def test_oil_tank_words_are_one_category(word):
    assert canonical_category(word) == "tank"  # what quality control writes as the reference
    assert answer_key(word) == "tank"  # how answers compare
    assert same_answer(word, "oil_tank") and same_answer([word, "ship"], ["vessel", "tank"])


def test_fine_types_stay_types_when_answers_compare():
    # "tanker" is a FUSAR-Ship label for a ship, but a fine-level answer "tanker" is not "ship"
    assert canonical_category("Tanker") == "ship"
    assert answer_key("tanker") == "tanker" and not same_answer("tanker", "ship")
    assert answer_key("A320") == "a320" and same_answer("A320", "a320")


def test_quality_control_maps_labels_and_keeps_dataset_types():
    rec = parse_sample(
        {
            "id": "r",
            "image": "r.png",
            "width": 50,
            "height": 50,
            "objects": [
                {"category": "oil_tank", "bbox": [1, 1, 5, 5]},
                {"category": "A330", "bbox": [10, 10, 20, 20]},
                {"category": "ship", "bbox": [30, 30, 40, 40], "fine_category": "cargo"},
            ],
        }
    )
    report = QualityReport()
    targets = clean_targets(rec, report)
    assert [(t.category, t.fine) for t in targets] == [("tank", None), ("aircraft", "A330"), ("ship", "cargo")]
    assert report.counts["category_mapped"] == 2
    assert [(t.category, t.fine) for t in clean_targets(rec, QualityReport(), synonyms=None)][:2] == [
        ("oil_tank", None),
        ("A330", None),
    ]


def test_numbers_and_grid_words():
    assert number_word(0) == "no" and number_word(3) == "three" and number_word(12) == "12"
    assert CARDINALS["twenty"] == 20 and CARDINALS["hundred"] == 100
    assert grid_cell(10, 10, 90, 90) == 1 and cell_name(1) == "upper left"
    assert [cell_name(c) for c in (2, 5, 8, 9)] == ["top", "center", "bottom", "lower right"]
    with pytest.raises(ValueError):
        cell_name(10)


def _oil_tank_world(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(12):
        Image.fromarray(np.full((60, 80), 40 + i, np.uint8)).save(root / f"im{i}.png")
        objs = [
            {"category": "oil_tank", "bbox": [5.0 + i, 5.0, 15.0 + i, 15.0]},
            {"category": "ship", "bbox": [50.0, 30.0, 70.0, 40.0]},
        ]
        recs.append(SampleRecord(id=f"s{i}", image=f"im{i}.png", width=80, height=60, objects=objs))
    write_samples(root / "samples.jsonl", recs)
    return root / "samples.jsonl"


@pytest.mark.parametrize("word", OIL_TANK_WORDS)
def test_sarvlm_eval_scores_every_oil_tank_word_as_correct(tmp_path, word):
    samples = _oil_tank_world(tmp_path / "world")
    build_dataset(samples, tmp_path / "data", BuildOptions(tasks=["classify_box"], split="1:0:1", coords="pixel"))
    tanks = [e for e in read_examples(tmp_path / "data" / "test.jsonl") if e.params.get("level") == "coarse"]
    tank_ids = {e.id for e in tanks if e.answer == "tank"}
    assert tank_ids, "the build should ask about the oil tanks"
    preds = [
        Prediction(id=e.id, task=e.task, prediction=(f"It is an {word}." if e.id in tank_ids else "A ship."))
        for e in tanks
    ]
    write_jsonl(tmp_path / "pred.jsonl", preds)
    test = tmp_path / "coarse.jsonl"
    write_jsonl(test, tanks)
    out = tmp_path / "report"
    assert cli_main(["eval", str(tmp_path / "pred.jsonl"), "--data", str(test), "--out", str(out), "--no-plots"]) == 0
    m = json.loads((out / "metrics.json").read_text())["tasks"]["classify_box"]
    assert m["top1"] == 1.0 and m["per_class"]["tank"] == 1.0


def _ex(i: int, task: str, answer, **params) -> InstructionExample:
    return InstructionExample(
        id=f"e{i}",
        sample_id=f"s{i}",
        task=task,
        images=["im.png"],
        messages=[Message(role="user", content="<image>Q?"), Message(role="assistant", content=str(answer))],
        answer=answer,
        params=params,
    )


def test_demo_report_subsets_compare_through_the_vocabulary(tmp_path):
    from sarvlm.demo.report import _subset_scores

    examples = [
        _ex(0, "landform_main", "farmland"),
        _ex(1, "landform_region", "Grassland", cell=5),  # a reference in other words is still a prior class
        _ex(2, "landform_main", "grassland"),
        _ex(3, "count", 2, category="ship"),
        _ex(4, "count", 3, category="vessel"),  # the ship subset names ships in any words
    ]
    words = {"e0": "Cropland.", "e1": "meadow", "e2": "grasslands", "e3": "two", "e4": "3 vessels"}
    write_jsonl(tmp_path / "test.jsonl", examples)
    write_jsonl(tmp_path / "pred.jsonl", [Prediction(id=k, prediction=v) for k, v in words.items()])
    sub = _subset_scores(tmp_path / "pred.jsonl", tmp_path / "test.jsonl")
    assert sub["farmland/grassland n"] == 3 and sub["farmland/grassland acc"] == 1.0
    assert sub["ship count n"] == 2 and sub["ship count acc"] == 1.0
    words["e2"] = "forest"
    write_jsonl(tmp_path / "pred.jsonl", [Prediction(id=k, prediction=v) for k, v in words.items()])
    assert _subset_scores(tmp_path / "pred.jsonl", tmp_path / "test.jsonl")["farmland/grassland acc"] == 2 / 3
