"""The demo's prior-dependent question family (`landcover_point`) and the stage-1 word-loss helper."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

from sarvlm.core.coords import from_model_coords
from sarvlm.core.record import parse_sample
from sarvlm.demo.diagnostics import word_token_mask
from sarvlm.priors.anchor_grid import anchor_nodes, node_pixels
from sarvlm.tasks.base import SampleView, TaskContext
from sarvlm.tasks.landcover_point import TRAIN_MAX, anchor_pixels
from sarvlm.tasks.registry import GENERATORS, TASKS, answer_is_correct, parse_prediction

W = H = 112
BOX = [119.0, 35.0, 119.001, 35.001]
# the synthetic world's georeference: UTM affine transform plus a stated WGS84 box
SYNTH_GEOREF = {
    "crs": "EPSG:32650",
    "transform": [2.0, 0.0, 742462.0, 0.0, -2.0, 3979148.0],
    "gcp_crs": "EPSG:4326",
    "bbox_wgs84": [119.68734202, 35.92455238, 119.68989066, 35.92662534],
}


def _view(tmp_path, split=None, georef=None):
    mask = np.zeros((H, W), np.uint8)
    mask[:, :56] = 2  # farmland: left half
    mask[:, 56:] = 3  # grassland: right half
    mask[:8, :] = 0  # water: a strip along the top
    Image.fromarray(mask).save(tmp_path / "m.png")
    rec = parse_sample(
        {
            "id": "s",
            "image": "s.png",
            "width": W,
            "height": H,
            "split": split,
            "georef": georef or {"bbox_wgs84": BOX},
            "landcover": {"mask": "m.png", "classes": {"0": "water", "2": "farmland", "3": "grassland"}},
        }
    )
    return SampleView(rec, tmp_path, [], {})


def _drafts(view, ctx=None, seed=0):
    ctx = ctx or TaskContext(coords="pixel")
    return list(GENERATORS["landcover_point"]("landcover_point", view, ctx, random.Random(seed)))


def test_one_question_per_unambiguous_anchor_node_with_the_mask_answer(tmp_path):
    drafts = _drafts(_view(tmp_path, split="test"))
    # 8 x 8 nodes at x = i*16: the node column at x = 48 sees 8 px of farmland only, x = 64 grassland only;
    # the top row (y = 0) sits on the water strip. No node straddles a boundary here, so all 64 are asked.
    assert len(drafts) == 64
    for d in drafts:
        x, y = d.params["point"]
        node = d.params["node"]
        assert (node % 8, node // 8) == (round(x / 16), round((H - y) / 16))  # the priors' node order
        assert d.answer == ("water" if y < 8 else "farmland" if x < 56 else "grassland")
        assert d.messages[-1][1] == d.answer
        # the question's region is the box around the node, in the build's convention
        x1, y1, x2, y2 = d.params["region"]
        assert x1 <= x <= x2 and y1 <= y <= y2 and x2 - x1 <= 8.0 + 1e-6
        assert f"[{round(x1)}, {round(y1)}, {round(x2)}, {round(y2)}]" in d.messages[0][1].replace(".0", "")
    assert sum(d.answer in ("farmland", "grassland") for d in drafts) == 56


def test_ambiguous_regions_are_skipped_and_training_scenes_are_capped(tmp_path):
    view = _view(tmp_path, split="test")
    mask = np.asarray(Image.open(tmp_path / "m.png")).copy()
    mask[:, 44:52] = np.where(np.arange(8) % 2 == 0, 2, 3)[None, :]  # a striped column around x = 48
    Image.fromarray(mask).save(tmp_path / "m.png")
    asked = {tuple(d.params["point"]) for d in _drafts(view)}
    assert not any(abs(x - 48) < 1 and y > 8 for x, y in asked)  # 50/50 farmland/grassland: not asked
    train = _drafts(_view(tmp_path, split="train"))
    assert len(train) == TRAIN_MAX
    assert train == _drafts(_view(tmp_path, split="train"))  # the sample's RNG: deterministic
    assert len(_drafts(view, TaskContext(coords="pixel", extra={"landcover_point_max": 3}))) == 3


def test_nodes_match_the_priors_anchor_grid_for_a_projected_georeference(tmp_path):
    view = _view(tmp_path, georef=SYNTH_GEOREF)
    x, y = anchor_pixels(view.record)
    lon, lat = anchor_nodes(SYNTH_GEOREF["bbox_wgs84"], 8, 8)
    px, py = node_pixels(lon, lat, W, H, SYNTH_GEOREF["bbox_wgs84"], view.record.georef)
    np.testing.assert_allclose(x, px, atol=1e-6)
    np.testing.assert_allclose(y, py, atol=1e-6)
    # the UTM grid is slightly rotated against the lon/lat box, so nodes are near, not on, i*16
    assert np.abs(x.reshape(8, 8)[0] - np.arange(8) * 16).max() < 4.0
    assert len(_drafts(view)) > 50


def test_registry_parses_and_scores_the_family_like_other_land_cover_answers(tmp_path):
    spec = TASKS["landcover_point"]
    assert spec.metrics == ("n", "top1") and not spec.free_text
    d = _drafts(_view(tmp_path, split="test"), TaskContext(coords="qwen2.5"))[20]
    region = d.messages[0][1].split("region ")[1].split("]")[0] + "]"
    assert from_model_coords([float(v) for v in region.strip("[]").split(",")], "qwen2.5", W, H)
    for text, ok in (
        ("farmland", d.answer == "farmland"),
        ("Cropland.", d.answer == "farmland"),
        ("meadow", d.answer == "grassland"),
    ):
        parsed = parse_prediction("landcover_point", text)
        assert answer_is_correct("landcover_point", parsed, d.answer) == ok


def test_no_georeference_or_no_mask_gives_no_question(tmp_path):
    view = _view(tmp_path)
    view.record = view.record.model_copy(update={"georef": None})
    assert _drafts(view) == []
    view = _view(tmp_path)
    view.record = view.record.model_copy(update={"landcover": None})
    assert _drafts(view) == []


def test_word_token_mask_marks_tokens_overlapping_land_cover_words():
    tokens = ["Land", " cover", ":", " farm", "land", ",", " grass", "land", " and", " bare", " land", "."]
    marked = word_token_mask(tokens, ("farmland", "grassland", "bare land", "land"))
    # "Land" is a whole word here too; " cover" and punctuation are not marked
    assert marked.tolist() == [True, False, False, True, True, False, True, True, False, True, True, False]
    assert not word_token_mask(["Farm", "lands", "cape"], ("farmland",)).any()  # not a whole word
    assert word_token_mask([], ("farmland",)).shape == (0,)
