"""Answer parsing: hand cases for each task and convention, and hypothesis fuzzing (never raises)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sarvlm.core.coords import smart_resize, to_model_coords
from sarvlm.core.vocabulary import answer_key
from sarvlm.tasks.registry import parse_prediction

TASKS = [
    "count",
    "grid",
    "classify_box",
    "detect",
    "identify",
    "classify",
    "position",
    "refer",
    "landform_main",
    "landform_all",
    "landform_region",
    "caption",
    "dialogue",
    "vqa",
]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("3", 3),
        ("There are 12 ships.", 12),
        ("I count twenty-one vessels", 21),
        ("three", 3),
        ("There are often ships here, about 4.", 4),
        ("No ships are visible.", 0),
        ("none", 0),
        ("1,200 cars", 1200),
        ("The 3x3 grid has 2 planes", 2),
        ("often", None),
        ("ten-ish? maybe", 10),
        ("", None),
        ("no", None),
        ("<think>maybe 7</think> The answer is 5.", 5),
        ("2.5 ships", None),
    ],
)
def test_count(text, expected):
    assert parse_prediction("count", text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Cells 2 and 5.", [2, 5]),
        ("[1, 4, 7]", [1, 4, 7]),
        ("the fifth cell", [5]),
        ("cell five and cell one", [1, 5]),
        ("in grid 9 of the 3x3 grid", [9]),
        ("none", []),
        ("There are no targets.", []),
        ("10", None),
        ("I am unsure", None),
    ],
)
def test_grid(text, expected):
    assert parse_prediction("grid", text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Yes.", "yes"),
        ("No, there is not.", "no"),
        ("There are no ships.", "no"),
        ("Yes, there is one.", "yes"),
        ("maybe", None),
    ],
)
def test_yes_no(text, expected):
    assert parse_prediction("identify", text) == expected


def test_categories_and_positions():
    assert parse_prediction("classify_box", "It is an airplane.") == "aircraft"
    assert parse_prediction("classify_box", "storage tanks") == "tank"
    assert parse_prediction("classify_box", "a harbour") == "harbor"
    assert parse_prediction("landform_all", "urban areas, water and some fields") == ["farmland", "urban", "water"]
    assert parse_prediction("classify", "ship and plane", params={"mode": "all"}) == ["aircraft", "ship"]
    assert parse_prediction("classify_box", "an A320", categories=["A320", "B737"]) == "A320"
    assert parse_prediction("position", "In the upper part of the image.") == "top"
    assert parse_prediction("position", "centre") == "center"
    assert answer_key("Airplanes") == "aircraft"


def test_boxes_in_every_convention_map_back_to_original_pixels():
    w, h = 640, 480
    box = [64.0, 48.0, 320.0, 240.0]
    for conv in ("qwen3", "qwen2.5", "pixel", "geochat"):
        m = to_model_coords(box, conv, w, h)
        got = parse_prediction("detect", f"[{m[0]}, {m[1]}, {m[2]}, {m[3]}]", coords=conv, width=w, height=h)
        assert len(got) == 1 and got[0] == pytest.approx(box, abs=3.5), conv
    rh, rw = smart_resize(h, w)
    q25 = parse_prediction(
        "detect",
        f'```json\n[{{"bbox_2d": [0, 0, {rw}, {rh}], "label": "ship"}}]\n```',
        coords="qwen2.5",
        width=w,
        height=h,
    )
    assert q25 == [[0.0, 0.0, 640.0, 480.0]]
    geo = parse_prediction("detect", "{<10><10><50><50>} and {<60><60><70><70>}", width=w, height=h)
    assert geo == [pytest.approx([64, 48, 320, 240]), pytest.approx([384, 288, 448, 336])]
    norm = parse_prediction("detect", "[0.1, 0.1, 0.5, 0.5]", width=w, height=h)
    assert norm == [pytest.approx([64, 48, 320, 240])]
    qwen_tokens = parse_prediction(
        "detect", "<|box_start|>(100,100),(500,500)<|box_end|>", coords="qwen3", width=w, height=h
    )
    assert qwen_tokens == [pytest.approx([64, 48, 320, 240])]
    assert parse_prediction("detect", "There are no ships in this image.", coords="qwen3", width=w, height=h) == []
    assert parse_prediction("detect", "I cannot tell", coords="qwen3", width=w, height=h) is None
    clipped = parse_prediction("detect", "[-5, -5, 2000, 2000]", coords="pixel", width=w, height=h)
    assert clipped == [[0.0, 0.0, 640.0, 480.0]]


def test_text_tasks():
    assert parse_prediction("caption", "  A harbor with ships. ") == "A harbor with ships."
    assert parse_prediction("caption", "   ") is None
    assert parse_prediction("dialogue", "First answer.\n\nSecond answer.") == ["First answer.", "Second answer."]


@settings(max_examples=300, deadline=None)
@given(
    task=st.sampled_from(TASKS),
    text=st.text(max_size=200),
    coords=st.sampled_from([None, "qwen2.5", "qwen3", "norm", "pixel", "geochat", "bogus"]),
    size=st.sampled_from([(None, None), (0, 0), (1, 1), (640, 480)]),
)
def test_parsers_never_raise(task, text, coords, size):
    parse_prediction(task, text, params={"mode": "all"}, coords=coords, width=size[0], height=size[1])


@settings(max_examples=200, deadline=None)
@given(text=st.from_regex(r"[\[\(\{<]?[-0-9., e+<>{}()\[\]]{0,60}", fullmatch=True))
def test_box_parser_never_raises_on_number_soup(text):
    out = parse_prediction("detect", text, coords="qwen3", width=100, height=100)
    assert out is None or all(len(b) == 4 and b[0] <= b[2] and b[1] <= b[3] for b in out)
