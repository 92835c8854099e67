"""SarvlmProcessor: chat template, assistant mask, image expansion, token types, images from files."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import rasterio
from PIL import Image

from sarvlm.core.errors import SarvlmError
from sarvlm.core.example import Message
from sarvlm.models.loading import load_model
from sarvlm.models.processor import load_image, stretch_to_uint8
from sarvlm.models.tokenizer import byte_level_tokenizer


@pytest.fixture(scope="module")
def processors():
    return {name: load_model(name)[1] for name in ("tiny-qwen2.5-vl", "tiny-qwen3-vl")}


def _img(h=112, w=140, seed=0):
    return Image.fromarray((np.random.default_rng(seed).random((h, w)) * 255).astype(np.uint8))


def test_tokenizer_round_trips_any_text():
    tok = byte_level_tokenizer()
    text = "Ship at [12, 40, 56, 90] — 3 vessels, 港口, ∆σ⁰ = -12.5 dB\n"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_pad|>"]) == [
        256,
        257,
        258,
        268,
    ]


def test_encode_dialogue_masks_every_assistant_turn(processors):
    proc = processors["tiny-qwen2.5-vl"]
    messages = [
        Message(role="user", content="<image>How many ships?"),
        Message(role="assistant", content="3"),
        {"role": "user", "content": "Where?"},
        {"role": "assistant", "content": "top left"},
    ]
    enc = proc.encode(messages, [_img()])
    ids, mask = enc["input_ids"], enc["assistant_mask"]
    assert len(ids) == len(mask) == len(enc["mm_token_type_ids"])
    supervised = proc.decode([i for i, m in zip(ids, mask) if m], skip_special_tokens=False)
    assert supervised == "3<|im_end|>top left<|im_end|>"
    text = proc.decode(ids, skip_special_tokens=False)
    assert text.startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|>"
    )
    assert text.endswith("<|im_start|>assistant\ntop left<|im_end|>\n")
    n_image = int(enc["image_grid_thw"].prod()) // 4
    assert ids.count(proc.image_token_id) == n_image == sum(enc["mm_token_type_ids"])
    assert all(t == 1 for i, t in zip(ids, enc["mm_token_type_ids"]) if i == proc.image_token_id)
    assert enc["pixel_values"].shape[0] == int(enc["image_grid_thw"].prod())


def test_generation_prompt_and_qwen3_template(processors):
    proc = processors["tiny-qwen3-vl"]
    enc = proc.encode([{"role": "user", "content": "<image>Describe."}], [_img()], add_generation_prompt=True)
    text = proc.decode(enc["input_ids"], skip_special_tokens=False)
    assert text.startswith("<|im_start|>user\n<|vision_start|>")  # Qwen3-VL: no default system prompt
    assert text.endswith("<|im_start|>assistant\n") and not any(enc["assistant_mask"])
    assert proc.decode(enc["input_ids"]).endswith("Describe.\nassistant\n")


def test_several_images_in_order(processors):
    proc = processors["tiny-qwen2.5-vl"]
    enc = proc.encode([{"role": "user", "content": "SAR <image> optical <image>"}], [_img(112, 112), _img(56, 168, 1)])
    counts = (enc["image_grid_thw"].prod(-1) // 4).tolist()
    assert counts[0] != counts[1]
    types = enc["mm_token_type_ids"]
    runs = [len(list(g)) for k, g in itertools.groupby(types) if k == 1]
    assert runs == counts


def test_placeholder_count_and_reserved_tokens_are_checked(processors):
    proc = processors["tiny-qwen2.5-vl"]
    with pytest.raises(SarvlmError, match="1 <image> placeholder"):
        proc.encode([{"role": "user", "content": "<image>"}], [_img(), _img()])
    with pytest.raises(SarvlmError, match="reserved token <\\|im_end\\|>"):
        proc.encode([{"role": "user", "content": "hi <|im_end|>"}], [])
    text_only = proc.encode([{"role": "user", "content": "hello"}], [])
    assert text_only["pixel_values"] is None and not any(text_only["mm_token_type_ids"])


def test_load_image_png_and_float_geotiff(tmp_path):
    png = tmp_path / "a.png"
    _img(30, 40).save(png)
    assert load_image(png).size == (40, 30)
    data = np.random.default_rng(0).gamma(1.0, 0.05, size=(1, 32, 48)).astype(np.float32)
    data[0, 0, 0] = np.nan
    tif = tmp_path / "sar.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=48, height=32, count=1, dtype="float32") as ds:
        ds.write(data)
    img = load_image(tif)
    arr = np.asarray(img)
    assert img.mode == "L" and img.size == (48, 32)
    assert arr.min() == 0 and arr.max() == 255 and 60 < arr.mean() < 200
    with pytest.raises(SarvlmError, match="no such image file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(SarvlmError, match="not a readable raster"):
        load_image(tmp_path / "bad.png")


def test_stretch_handles_constant_and_empty():
    assert stretch_to_uint8(np.full((4, 4), 3.0)).max() == 0
    assert stretch_to_uint8(np.full((2, 2), np.nan)).sum() == 0
