"""Task generators: every answer type derived from hand-made annotations with known answers."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from PIL import Image

from sarvlm.core.coords import CONVENTIONS, from_model_coords
from sarvlm.core.errors import SarvlmError
from sarvlm.core.record import parse_sample
from sarvlm.core.vocabulary import cell_box, grid_cell, grid_cells, majority_region, region_of
from sarvlm.data.quality import QualityReport, clean_targets, text_problems
from sarvlm.tasks.base import SampleView, TaskContext
from sarvlm.tasks.caption import KLIP_TEMPLATES
from sarvlm.tasks.dialogue import sentences
from sarvlm.tasks.registry import GENERATORS, TASK_NAMES, resolve_tasks, task_spec

W, H = 90, 60  # cells are 30 x 20 pixels


def _view(objects, tmp_path=None, **kw):
    rec = parse_sample(
        {
            "id": "s",
            "image": "s.png",
            "width": W,
            "height": H,
            "objects": [{"category": c, "bbox": b, **({"fine_category": f} if f else {})} for c, b, f in objects],
            **kw,
        }
    )
    targets = clean_targets(rec, QualityReport())
    groups = {}
    for t in targets:
        groups.setdefault(t.category, []).append(t)
    return SampleView(rec, tmp_path, targets, {c: groups[c] for c in sorted(groups)})


def _run(task, view, ctx=None, seed=0):
    ctx = ctx or TaskContext(
        coords="pixel", vocabulary=("aircraft", "ship", "tank"), max_per_sample=10, negative_rate=1.0
    )
    return list(GENERATORS[task](task, view, ctx, random.Random(seed)))


# -- positions -------------------------------------------------------------------------------


def test_grid_cells_row_major_and_borders():
    assert grid_cell(0, 0, W, H) == 1 and grid_cell(89.9, 59.9, W, H) == 9
    assert grid_cell(45, 30, W, H) == 5
    # a centre exactly on a border belongs to the cell right of / below it
    assert grid_cell(30, 10, W, H) == 2 and grid_cell(29.999, 10, W, H) == 1
    assert grid_cell(10, 20, W, H) == 4 and grid_cell(10, 19.999, W, H) == 1
    assert grid_cell(60, 40, W, H) == 9
    # the far edges are closed, points outside are clamped
    assert grid_cell(90, 60, W, H) == 9 and grid_cell(-5, 70, W, H) == 7
    # boxes: the centre decides, not the extent
    assert grid_cells([[0, 0, 58, 10], [25, 15, 35, 25]], W, H) == [1, 5]
    assert grid_cells([], W, H) == []
    assert cell_box(6, W, H) == [60, 20, 90, 40]


def test_regions():
    assert region_of(45, 30, W, H) == "center"
    assert region_of(5, 30, W, H) == "left" and region_of(85, 30, W, H) == "right"
    assert region_of(45, 2, W, H) == "top" and region_of(45, 58, W, H) == "bottom"
    assert region_of(5, 5, W, H) == "left"  # exact diagonal goes to the horizontal side
    assert majority_region([[0, 25, 10, 35], [0, 20, 10, 30], [80, 25, 90, 35]], W, H) == "left"
    assert majority_region([[0, 25, 10, 35], [80, 25, 90, 35]], W, H) == "left"  # tie -> REGIONS order
    assert majority_region([], W, H) is None


# -- FUSAR-GPT ---------------------------------------------------------------------------------

OBJS = [
    ("ship", [0, 0, 20, 10], "cargo"),  # centre (10, 5): cell 1, left
    ("ship", [28, 18, 34, 24], None),  # centre (31, 21): cell 5 (on the borders x=30, y=20)
    ("ship", [70, 45, 90, 60], None),  # centre (80, 52.5): cell 9, right
    ("tank", [40, 2, 50, 8], None),
]  # centre (45, 5): cell 2, top


def test_count_grid_detect_answers():
    view = _view(OBJS)
    count = {d.params["category"]: d for d in _run("count", view)}
    assert count["ship"].answer == 3 and count["ship"].messages[-1][1] == "3"
    assert count["tank"].answer == 1 and count[None].answer == 4
    assert count["aircraft"].answer == 0  # the absent category (negative_rate 1)
    grid = {d.params["category"]: d for d in _run("grid", view)}
    assert grid["ship"].answer == [1, 5, 9] and grid["ship"].messages[-1][1] == "1, 5, 9"
    assert grid[None].answer == [1, 2, 5, 9]
    assert grid["aircraft"].answer == [] and grid["aircraft"].messages[-1][1] == "none"
    det = {d.params["category"]: d for d in _run("detect", view)}
    assert det["ship"].answer == [[0, 0, 20, 10], [28, 18, 34, 24], [70, 45, 90, 60]]
    assert det["ship"].messages[-1][1] == "[[0, 0, 20, 10], [28, 18, 34, 24], [70, 45, 90, 60]]"
    assert det[None].answer[1] == [40, 2, 50, 8]  # sorted by (y1, x1)
    assert det["aircraft"].messages[-1][1] == "none"
    for d in _run("count", view) + _run("grid", view) + _run("detect", view):
        assert d.messages[0][0] == "user" and d.messages[0][1].startswith("<image>\n")


@pytest.mark.parametrize("coords", CONVENTIONS)
def test_detect_text_parses_back_in_every_convention(coords):
    view = _view(OBJS)
    ctx = TaskContext(coords=coords, vocabulary=("ship", "tank"), max_per_sample=10)
    det = next(d for d in _run("detect", view, ctx) if d.params["category"] == "ship")
    boxes = json.loads(det.messages[-1][1])
    assert len(boxes) == 3
    tol = {"pixel": 0.51, "norm": 0.01, "qwen2.5": 1.7, "qwen3": 0.1, "qwen2": 0.1, "geochat": 0.9}[coords]
    for text_box, truth in zip(boxes, det.answer):
        back = from_model_coords(text_box, coords, W, H)
        assert np.allclose(back, truth, atol=tol), (coords, text_box, back, truth)


def test_classify_box_coarse_and_fine():
    view = _view(OBJS)
    drafts = _run("classify_box", view)
    coarse = [d for d in drafts if d.params["level"] == "coarse"]
    fine = [d for d in drafts if d.params["level"] == "fine"]
    assert sorted(d.answer for d in coarse) == ["ship", "ship", "ship", "tank"]
    assert [(d.answer, d.params["box"]) for d in fine] == [("cargo", [0, 0, 20, 10])]
    d = next(d for d in coarse if d.answer == "tank")
    assert "[40, 2, 50, 8]" in d.messages[0][1]


# -- SARLANG-1M --------------------------------------------------------------------------------


def test_identify_classify_position_refer():
    view = _view(OBJS)
    ident = _run("identify", view)
    presence = {d.params["category"]: d.answer for d in ident if d.params["mode"] == "presence"}
    assert presence == {"ship": "yes", "tank": "yes", "aircraft": "no"}
    for d in ident:
        assert d.answer in ("yes", "no") and d.messages[-1][1] == d.answer
        assert d.messages[0][1].endswith("Answer the question concisely.")
        assert d.messages[0][1].split("\n", 1)[1].startswith("Question: ")
        if d.params["mode"] == "side":
            truth = d.params["position"] in {
                region_of((t.box[0] + t.box[2]) / 2, (t.box[1] + t.box[3]) / 2, W, H)
                for t in view.by_category[d.params["category"]]
            }
            assert d.answer == ("yes" if truth else "no")
        if d.params["mode"] == "other":
            assert d.answer == "yes"
    cls = {d.params["mode"]: d for d in _run("classify", view)}
    assert cls["main"].answer == "ship"
    assert cls["all"].answer == ["ship", "tank"] and cls["all"].messages[-1][1] == "ship, tank"
    pos = {d.params["category"]: d.answer for d in _run("position", view)}
    # ships: left (cell 1), center (cell 5), right (cell 9) -> tie broken center first
    assert pos == {"ship": "center", "tank": "top"}
    refer = _run("refer", view)
    assert {(tuple(d.params["region"]), d.answer) for d in refer} == {(tuple(b), c) for c, b, _ in OBJS}


def test_class_hint():
    view = _view(OBJS)
    ctx = TaskContext(coords="pixel", vocabulary=("aircraft", "ship", "tank"), class_hint=True)
    main = _run("classify", view, ctx)[0]
    assert main.messages[0][1] == (
        "<image>\nQuestion: The classes are: aircraft, ship, tank. What is the main object "
        "in the image? Answer the question concisely."
    )
    pos = _run("position", view, ctx)[0]
    assert "The classes are: top, center, bottom, left, right. Where are" in pos.messages[0][1]


def test_refer_skips_ambiguous_regions_and_main_category_tie():
    view = _view(
        [
            ("ship", [10, 10, 30, 30], None),
            ("tank", [11, 11, 31, 31], None),
            ("tank", [60, 40, 70, 50], None),
            ("ship", [60, 0, 80, 20], None),
        ]
    )
    refer = _run("refer", view)
    assert [d.params["region"] for d in refer] == [[60, 40, 70, 50], [60, 0, 80, 20]]
    # two ships and two tanks: main = larger total area (ships: 400 + 400, tanks: 400 + 100)
    assert {d.params["mode"]: d.answer for d in _run("classify", view)}["main"] == "ship"


# -- landforms ---------------------------------------------------------------------------------


def test_landform_tasks(tmp_path):
    mask = np.zeros((H, W), np.uint8)
    mask[:, :30] = 1  # water: left third (cells 1, 4, 7)
    mask[:, 30:] = 2  # urban: the rest
    mask[40:, 60:] = 3  # forest: cell 9 only (1/9 of the image)
    mask[0, 0] = 255  # unlabelled pixel: ignored
    Image.fromarray(mask).save(tmp_path / "m.png")
    view = _view([], tmp_path, landcover={"mask": "m.png", "classes": {"1": "water", "2": "urban", "3": "forest"}})
    main = _run("landform_main", view)
    assert [d.answer for d in main] == ["urban"]
    alls = _run("landform_all", view)
    assert alls[0].answer == ["forest", "urban", "water"] and alls[0].messages[-1][1] == "forest, urban, water"
    regions = {d.params["cell"]: d.answer for d in _run("landform_region", view, TaskContext(max_per_sample=9))}
    assert regions == {
        1: "water",
        4: "water",
        7: "water",
        2: "urban",
        3: "urban",
        5: "urban",
        6: "urban",
        8: "urban",
        9: "forest",
    }
    ctx = TaskContext(landform_min_fraction=0.12)
    assert _run("landform_all", view, ctx)[0].answer == ["urban", "water"]


# -- captions and dialogues -------------------------------------------------------------------


def test_captions_from_annotations_are_consistent():
    view = _view(OBJS)
    drafts = _run("caption", view)
    assert [d.params["style"] for d in drafts] == ["template", "complex"]
    tpl = drafts[0].answer
    assert "3 ships" in tpl and "1 tank at the top" in tpl
    assert any(tpl.replace("3 ships", "{x}").startswith(t.split("{")[0]) for t in KLIP_TEMPLATES)
    assert "4 targets of 2 categories" in drafts[1].answer and "cells 1, 5 and 9" in drafts[1].answer
    for d in drafts:  # generated text passes the consistency checks
        assert text_problems(d.answer, view, ("ship", "tank")) == []
    assert {d.answer for d in (_run("caption", view, seed=s)[0] for s in range(40))} == {
        t.format(
            objects="3 ships in the center and 1 tank at the top",
            Objects="3 ships in the center and 1 tank at the top",
            be="are",
        )
        for t in KLIP_TEMPLATES
    }


def test_imported_and_structured_captions():
    view = _view(
        [],
        captions=[
            {"text": "A port.", "style": "concise"},
            {"text": "x", "style": "structured", "fields": {"Water": "a river", "Terrain": "flat"}},
        ],
    )
    drafts = _run("caption", view)
    assert drafts[0].messages[0][1] == "<image>\nDescribe the content of this image in one sentence."
    assert drafts[1].answer == "Terrain: flat\nWater: a river" and drafts[1].params["style"] == "structured"


def test_dialogue_from_caption_and_imported():
    text = (
        "A cluster of dark craters lies in the upper right. The center is smooth. Bright scattering appears on "
        "the left slopes. Small craters are everywhere."
    )
    view = _view([], captions=[{"text": text, "style": "complex"}])
    [d] = _run("dialogue", view)
    assert len(d.answer) == 3 and d.answer[0] == "A cluster of dark craters lies in the upper right."
    roles = [r for r, _ in d.messages]
    assert roles == ["user", "assistant"] * 3 and d.messages[0][1].startswith("<image>\n")
    assert set(d.answer[1:]) <= set(sentences(text)[1:])
    view = _view([], captions=[{"text": "Too short.", "style": "concise"}])
    assert _run("dialogue", view) == []
    fields = {"Terrain": "flat", "Functionality": "port", "Water": "sea", "Roads": "none"}
    view = _view([], captions=[{"text": "t", "style": "structured", "fields": fields}])
    [d] = _run("dialogue", view)
    assert len(d.answer) == 3 and set(d.answer) <= set(fields.values())
    view = _view(
        [],
        dialogues=[
            {
                "turns": [
                    {"role": "user", "content": "<image>\nQ1"},
                    {"role": "assistant", "content": "A1"},
                    {"role": "user", "content": "Q2"},
                    {"role": "assistant", "content": "A2"},
                ]
            }
        ],
    )
    [d] = _run("dialogue", view)
    assert d.answer == ["A1", "A2"] and d.messages[0] == ("user", "<image>\nQ1")


def test_text_quality_checks():
    view = _view(OBJS)
    voc = ("ship", "tank")
    assert text_problems("Two red ships.", view, voc) == ["colour_word", "count_mismatch"]
    assert text_problems("3 ships and one tank.", view, voc) == []
    assert text_problems("The tank on the left.", view, voc) == ["position_mismatch"]
    assert text_problems("The tank on the top of the image.", view, voc) == []
    assert text_problems("Bright and dark areas.", view, voc) == []
    assert text_problems("Two ships", _view([]), voc) == []  # no annotations: nothing to contradict


def test_resolve_tasks():
    assert resolve_tasks("fusar-gpt") == ["count", "grid", "classify_box", "detect"]
    assert resolve_tasks("count,sarlang")[:2] == ["count", "identify"]
    # "all" is every task the builder can generate; foundation tasks (retrieval, zero-shot) have no generator
    assert set(resolve_tasks("all")) == {t for t in TASK_NAMES if task_spec(t).generator is not None}
    assert {"retrieval", "zeroshot"} <= set(TASK_NAMES) - set(resolve_tasks("all"))
    with pytest.raises(SarvlmError, match="unknown task 'counting'"):
        resolve_tasks("counting")


def test_generators_are_seeded():
    view = _view(OBJS)
    ctx = TaskContext(coords="pixel", vocabulary=("aircraft", "ship", "tank"), max_per_sample=1, negative_rate=0.5)
    a = [(d.messages, d.answer) for s in range(5) for d in _run("count", view, ctx, seed=s)]
    b = [(d.messages, d.answer) for s in range(5) for d in _run("count", view, ctx, seed=s)]
    assert a == b
    assert len({re.sub(r"\d", "", str(x)) for x in a}) > 1  # seeds do vary the output


# -- properties ----------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(w=st.integers(1, 4000), h=st.integers(1, 4000), fx=st.floats(0, 1), fy=st.floats(0, 1))
def test_grid_cell_contains_the_point(w, h, fx, fy):
    cx, cy = fx * w, fy * h
    cell = grid_cell(cx, cy, w, h)
    x1, y1, x2, y2 = cell_box(cell, w, h)
    assert 1 <= cell <= 9
    # half-open cells, closed at the far image edges
    assert x1 <= cx * (1 + 1e-12) and (cx < x2 or x2 == w) and y1 <= cy * (1 + 1e-12) and (cy < y2 or y2 == h)
    assert region_of(cx, cy, w, h) in ("center", "left", "right", "top", "bottom")


@settings(max_examples=60, deadline=None)
@given(
    boxes=st.lists(
        st.tuples(st.integers(0, 80), st.integers(0, 50), st.integers(1, 10), st.integers(1, 10)),
        min_size=1,
        max_size=8,
    )
)
def test_answers_text_and_structure_agree(boxes):
    view = _view([("ship", [x, y, x + bw, y + bh], None) for x, y, bw, bh in boxes])
    ctx = TaskContext(coords="qwen3", vocabulary=("ship",), max_per_sample=5)
    grid = _run("grid", view, ctx)[0]
    assert [int(c) for c in grid.messages[-1][1].split(", ")] == grid.answer
    det = _run("detect", view, ctx)[0]
    assert len(json.loads(det.messages[-1][1])) == len(det.answer) == len(boxes)
    count = _run("count", view, ctx)[0]
    assert count.answer == len(boxes) and count.messages[-1][1] == str(len(boxes))
