"""Loading stock checkpoints (current and legacy key layouts), sarvlm save/load, PEFT adapters and merges."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from sarvlm.core.errors import SarvlmError
from sarvlm.models.loading import fusion_module, load_model, save_model
from sarvlm.models.settings import SarvlmSettings
from sarvlm.models.tiny import tiny_config, tiny_settings, tiny_tokenizer

BACKBONES = ["tiny-qwen2.5-vl", "tiny-qwen3-vl"]


def _stock_class(name):
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen3VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration if "2.5" in name else Qwen3VLForConditionalGeneration


def _inputs(processor, seed=0):
    img = Image.fromarray((np.random.default_rng(seed).random((112, 112)) * 255).astype(np.uint8))
    enc = processor.encode([{"role": "user", "content": "<image>Count the ships."}], [img], add_generation_prompt=True)
    ids = torch.tensor([enc["input_ids"]])
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "mm_token_type_ids": torch.tensor([enc["mm_token_type_ids"]]),
        "pixel_values": enc["pixel_values"],
        "image_grid_thw": enc["image_grid_thw"],
    }


def _priors():
    g = torch.Generator().manual_seed(11)
    return {
        "geo_priors": torch.randn(1, 16, 64, generator=g),
        "geo_positions": torch.rand(1, 16, 2, generator=g),
        "geo_mask": torch.ones(1, 16, dtype=torch.bool),
    }


def _stock_checkpoint(name, out_dir, legacy_keys=False):
    tokenizer = tiny_tokenizer(name)
    config = tiny_config(name, tiny_settings(name), tokenizer)
    torch.manual_seed(5)
    stock = _stock_class(name)(config).eval()
    stock.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if legacy_keys:  # the layout of the published Qwen2.5-VL checkpoints: model.* = LLM, visual.* = vision
        # (transformers 5 already writes this layout for Qwen2.5-VL; the renaming makes sure of it)
        path = out_dir / "model.safetensors"
        weights = load_file(path)
        renamed = {}
        for key, value in weights.items():
            key = key.replace("model.language_model.", "model.").replace("model.visual.", "visual.")
            renamed[key] = value
        save_file(renamed, path, metadata={"format": "pt"})
    return stock


@pytest.mark.parametrize("name", BACKBONES)
def test_stock_checkpoint_loads_every_base_weight(name, tmp_path):
    stock = _stock_checkpoint(name, tmp_path / "stock")
    model, processor = load_model(tmp_path / "stock")
    stock_state = stock.state_dict()
    ours = model.state_dict()
    assert sorted(k for k in ours if k not in stock_state) == sorted(
        f"model.geo_fusion.{k}" for k in fusion_module(model).state_dict()
    )
    for key, value in stock_state.items():
        assert torch.equal(ours[key], value), key
    batch = _inputs(processor)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, stock(**batch).logits, rtol=0, atol=0)
        torch.testing.assert_close(model(**batch, **_priors()).logits, stock(**batch).logits, rtol=0, atol=0)
    assert model.config.sarvlm["backbone"] == processor.settings.backbone


def test_legacy_qwen2_5_key_layout_is_converted(tmp_path):
    stock = _stock_checkpoint("tiny-qwen2.5-vl", tmp_path / "legacy", legacy_keys=True)
    assert any(k.startswith("visual.") for k in load_file(tmp_path / "legacy" / "model.safetensors"))
    model, processor = load_model(tmp_path / "legacy")
    batch = _inputs(processor)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, stock(**batch).logits, rtol=0, atol=0)


def test_incomplete_checkpoint_is_refused(tmp_path):
    _stock_checkpoint("tiny-qwen2.5-vl", tmp_path / "cut")
    path = tmp_path / "cut" / "model.safetensors"
    weights = load_file(path)
    key = next(k for k in weights if k.endswith("model.norm.weight"))  # saved in the published (legacy) layout
    weights.pop(key)
    save_file(weights, path, metadata={"format": "pt"})
    with pytest.raises(SarvlmError, match=r"lacks weight \S*norm.weight; not a complete qwen2.5-vl checkpoint"):
        load_model(tmp_path / "cut")


@pytest.mark.parametrize("name", BACKBONES)
def test_save_load_round_trip_restores_settings_and_logits(name, tmp_path):
    model, processor = load_model(name, settings={"fusion": "tlm", "tlm_sigma": 1.5, "prior_source": "zarr:/data/aef"})
    with torch.no_grad():
        for p in fusion_module(model).parameters():
            p.normal_(0, 0.3)
    batch = _inputs(processor)
    with torch.no_grad():
        before = model(**batch, **_priors()).logits
    save_model(model, processor, tmp_path / "saved")
    loaded, loaded_proc = load_model(tmp_path / "saved")
    assert loaded_proc.settings == processor.settings and loaded_proc.settings.tlm_sigma == 1.5
    with torch.no_grad():
        torch.testing.assert_close(loaded(**_inputs(loaded_proc), **_priors()).logits, before, rtol=0, atol=0)
    # Deterministic bytes: saving the same weights again gives the same files.
    save_model(loaded, loaded_proc, tmp_path / "again")
    for f in ("model.safetensors", "config.json", "tokenizer.json", "preprocessor_config.json"):
        assert (tmp_path / "saved" / f).read_bytes() == (tmp_path / "again" / f).read_bytes(), f
    with pytest.raises(SarvlmError, match="exists and is not empty"):
        save_model(loaded, loaded_proc, tmp_path / "saved")


def test_tiny_models_are_seeded():
    a, _ = load_model("tiny-qwen2.5-vl", seed=1)
    b, _ = load_model("tiny-qwen2.5-vl", seed=1)
    c, _ = load_model("tiny-qwen2.5-vl", seed=2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("name", BACKBONES)
def test_peft_adapter_and_merged_round_trips(name, tmp_path):
    from peft import LoraConfig, get_peft_model

    base, processor = load_model(name)
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules="all-linear",
        exclude_modules=r".*\.(visual|geo_fusion)\..*",
        modules_to_save=["geo_fusion"],
        init_lora_weights=False,
    )
    peft_model = get_peft_model(base, lora)
    wrapped = [n for n, _ in peft_model.named_modules() if n.endswith("lora_A")]
    assert wrapped and not any(".visual." in n or "geo_fusion" in n for n in wrapped)
    with torch.no_grad():
        for p in fusion_module(peft_model).parameters():
            p.normal_(0, 0.3)
    batch = _inputs(processor)
    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(**batch, **_priors()).logits
    save_model(peft_model, processor, tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == name
    adapter_model, adapter_proc = load_model(tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(adapter_model(**batch, **_priors()).logits, expected, rtol=1e-5, atol=1e-5)
    merged = peft_model.merge_and_unload()
    save_model(merged, processor, tmp_path / "merged")
    merged_model, _ = load_model(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(merged_model(**batch, **_priors()).logits, expected, rtol=1e-4, atol=1e-4)


def test_unsupported_directories_and_settings(tmp_path):
    with pytest.raises(SarvlmError, match="no such model directory"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SarvlmError, match="no config.json"):
        load_model(tmp_path / "empty")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(SarvlmError, match="model_type 'bert' is not a supported backbone"):
        load_model(tmp_path / "bert")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(SarvlmError, match="malformed JSON"):
        load_model(tmp_path / "broken")
    with pytest.raises(SarvlmError, match="fusion"):
        load_model("tiny-qwen2.5-vl", settings={"fusion": "film"})
    with pytest.raises(SarvlmError, match="backbone"):
        load_model("tiny-qwen2.5-vl", settings={"backbone": "qwen3-vl"})
    with pytest.raises(SarvlmError, match="prior_grid"):
        SarvlmSettings.parse({"prior_grid": [0, 4]})
    with pytest.raises(SarvlmError, match="unknown box convention"):
        SarvlmSettings.parse({"coords": "yolo"})


def test_settings_defaults_and_serialisation():
    s = SarvlmSettings(backbone="qwen3-vl")
    assert s.coords == "qwen3" and SarvlmSettings().coords == "qwen2.5"
    assert s.num_prior_tokens == 64
    assert SarvlmSettings.parse(json.loads(s.to_json())) == s


def test_concat_fusion_under_peft_modules_to_save():
    from peft import LoraConfig, get_peft_model

    base, processor = load_model("tiny-qwen3-vl", settings={"fusion": "concat"})
    peft_model = get_peft_model(
        base,
        LoraConfig(
            r=2,
            target_modules=["q_proj"],
            exclude_modules=r".*\.(visual|geo_fusion)\..*",
            modules_to_save=["geo_fusion"],
        ),
    )
    assert type(peft_model.base_model.model.model.geo_fusion).__name__ == "ModulesToSaveWrapper"
    batch = _inputs(processor)
    with torch.no_grad():
        plain = peft_model(**batch).logits
        fused = peft_model(**batch, **_priors()).logits
    assert not torch.allclose(plain, fused)


def test_a_training_run_directory_loads_its_final_model(tmp_path):
    import torch

    from sarvlm.models.loading import load_model, save_model

    model, processor = load_model("tiny-qwen2.5-vl", seed=3)
    save_model(model, processor, tmp_path / "run" / "final")
    loaded, _ = load_model(tmp_path / "run")
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("tied", [False, True])
def test_subclass_sets_up_everything_the_stock_constructor_does(name, tied):
    # The subclasses run the stock constructor and swap only the inner model: every attribute a
    # transformers release sets there (lm_head, tied keys, parallel plans, fp32 and no-split
    # modules, generation config, ...) must match the stock model's, tied embeddings included.
    from sarvlm.models.loading import model_class

    tokenizer = tiny_tokenizer(name)
    config = tiny_config(name, tiny_settings(name), tokenizer)
    config.tie_word_embeddings = tied
    config.text_config.tie_word_embeddings = tied
    stock = _stock_class(name)(config)
    ours = model_class(tiny_settings(name).backbone)(config)
    assert type(ours).__mro__[1:].count(_stock_class(name)) == 1
    stock_vars, our_vars = vars(stock), vars(ours)
    assert sorted(our_vars) == sorted(stock_vars)
    for key, value in stock_vars.items():
        if key != "_modules":
            assert our_vars[key] == value, key
    assert list(ours._modules) == list(stock._modules)
    assert type(ours.lm_head) is type(stock.lm_head)
    assert ours.lm_head.weight.shape == stock.lm_head.weight.shape
    assert type(ours.model).__mro__[1:].count(type(stock.model)) == 1
    stock_params = {k: v.shape for k, v in stock.named_parameters()}
    our_params = {k: v.shape for k, v in ours.named_parameters() if ".geo_fusion." not in k}
    assert our_params == stock_params
    embed = ours.get_input_embeddings().weight
    assert (ours.lm_head.weight.data_ptr() == embed.data_ptr()) is tied
    assert ours.all_tied_weights_keys == stock.all_tied_weights_keys
    assert bool(ours.all_tied_weights_keys) is tied
