"""Both backbones with priors: identity, ordering (prior cell -> merged token -> M-RoPE position),
mixed batches, several images, generate == manual greedy decode, concat/sum fusions, deepstack."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sarvlm.models.loading import load_model

BACKBONES = ["tiny-qwen2.5-vl", "tiny-qwen3-vl"]


def _image(seed: int, size=(112, 112)) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random(size) * 255).astype(np.uint8))


def _batch(processor, prompts, add_generation_prompt=True):
    """Tensors for equal-length conversations (no padding needed). ``prompts``: [(text, [images])]."""
    encs = [
        processor.encode([{"role": "user", "content": text}], imgs, add_generation_prompt=add_generation_prompt)
        for text, imgs in prompts
    ]
    assert len({len(e["input_ids"]) for e in encs}) == 1
    ids = torch.tensor([e["input_ids"] for e in encs])
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "mm_token_type_ids": torch.tensor([e["mm_token_type_ids"] for e in encs]),
        "pixel_values": torch.cat([e["pixel_values"] for e in encs]),
        "image_grid_thw": torch.cat([e["image_grid_thw"] for e in encs]),
    }


def _priors(n_images, s=16, seed=0, valid=None):
    g = torch.Generator().manual_seed(seed)
    pri = torch.randn(n_images, s, 64, generator=g)
    pos = torch.rand(n_images, s, 2, generator=g)
    mask = torch.ones(n_images, s, dtype=torch.bool) if valid is None else valid
    return {"geo_priors": pri, "geo_positions": pos, "geo_mask": mask}


def _randomise_fusion(model, std=0.5):
    with torch.no_grad():
        for p in model.model.geo_fusion.parameters():
            p.normal_(0, std, generator=torch.Generator().manual_seed(p.numel()))


@pytest.fixture(scope="module", params=BACKBONES)
def tiny(request):
    model, processor = load_model(request.param)
    return request.param, model, processor


def test_fusion_path_and_identity_at_init(tiny):
    _, model, processor = tiny
    assert "model.geo_fusion.mlp.2.weight" in dict(model.named_parameters())
    batch = _batch(processor, [("<image>Count the ships.", [_image(0)])])
    with torch.no_grad():
        plain = model(**batch).logits
        fused = model(**batch, **_priors(1)).logits
    assert torch.equal(plain, fused)


def _language_model_inputs(model, batch, priors):
    captured = {}

    def grab(module, args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"].detach().clone()
        captured["positions"] = kwargs["position_ids"].detach().clone()

    handle = model.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**batch, **priors)
    finally:
        handle.remove()
    return captured["embeds"], captured["positions"]


@pytest.mark.parametrize("cell", [(0, 0), (1, 2), (3, 1)])
def test_ordering_prior_cell_changes_the_token_at_that_cell(tiny, cell):
    """Perturb the prior at merged-grid cell (h, w): the changed LLM input token is the one whose
    M-RoPE (height, width) position is (h, w) — TLM's raster order matches the backbone's."""
    name, model, processor = tiny
    model_copy, _ = load_model(name, settings={"tlm_sigma": 0.25})
    _randomise_fusion(model_copy)
    batch = _batch(processor, [("<image>Where?", [_image(1, size=(150, 100))])])
    _, gh, gw = (int(v) for v in batch["image_grid_thw"][0])
    h_cells, w_cells = gh // 2, gw // 2
    assert h_cells >= 4 and w_cells >= 3 and h_cells != w_cells
    # One prior per merged cell, exactly on the cell.
    ys, xs = torch.meshgrid(torch.arange(h_cells) / (h_cells - 1), torch.arange(w_cells) / (w_cells - 1), indexing="ij")
    pos = torch.stack([ys, xs], -1).reshape(1, -1, 2).float()
    pri = torch.randn(1, pos.shape[1], 64, generator=torch.Generator().manual_seed(3))
    base = {"geo_priors": pri, "geo_positions": pos, "geo_mask": torch.ones(1, pos.shape[1], dtype=torch.bool)}
    changed = dict(base, geo_priors=pri.clone())
    changed["geo_priors"][0, cell[0] * w_cells + cell[1]] += 3.0
    emb_a, positions = _language_model_inputs(model_copy, batch, base)
    emb_b, _ = _language_model_inputs(model_copy, batch, changed)
    image_tokens = batch["mm_token_type_ids"][0] == 1
    delta = (emb_a[0] - emb_b[0]).abs().amax(-1)
    assert delta[~image_tokens].max() == 0
    k = int(delta.argmax())
    assert image_tokens[k]
    # Position ids: (3, B, L) for Qwen2.5-VL; Qwen3-VL adds a leading text row. Take (t, h, w) rows.
    pid = positions[-3:, 0, :]
    first = int(image_tokens.nonzero()[0])
    h_rel = int(pid[1, k] - pid[1, first])
    w_rel = int(pid[2, k] - pid[2, first])
    assert (h_rel, w_rel) == cell
    # Sigma 0.25: neighbours change far less than the cell itself.
    assert delta.sort(descending=True).values[1] < 0.05 * delta[k]


def test_mixed_batch_with_and_without_priors(tiny):
    _, model, processor = tiny
    model_copy = model
    saved = {k: v.clone() for k, v in model.model.geo_fusion.state_dict().items()}
    _randomise_fusion(model_copy)
    try:
        prompt = "<image>Describe."
        batch = _batch(processor, [(prompt, [_image(2)]), (prompt, [_image(3)])])
        valid = torch.ones(2, 16, dtype=torch.bool)
        valid[1] = False  # the second sample has no prior
        pri = _priors(2, valid=valid)
        with torch.no_grad():
            both = model(**batch, **pri).logits
            alone_with = model(
                **_batch(processor, [(prompt, [_image(2)])]), **{k: v[:1] for k, v in pri.items()}
            ).logits
            alone_without = model(**_batch(processor, [(prompt, [_image(3)])])).logits
        torch.testing.assert_close(both[0], alone_with[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(both[1], alone_without[0], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(alone_with[0], model(**_batch(processor, [(prompt, [_image(2)])])).logits[0])
    finally:
        model.model.geo_fusion.load_state_dict(saved)


def test_sar_plus_optical_only_masked_rows_change(tiny):
    _, model, processor = tiny
    saved = {k: v.clone() for k, v in model.model.geo_fusion.state_dict().items()}
    _randomise_fusion(model)
    try:
        batch = _batch(processor, [("SAR <image> optical <image> compare.", [_image(4), _image(5, (84, 84))])])
        valid = torch.ones(2, 16, dtype=torch.bool)
        valid[1] = False  # prior only on the SAR image
        emb_prior, _ = _language_model_inputs(model, batch, _priors(2, valid=valid))
        emb_plain, _ = _language_model_inputs(model, batch, {})
        counts = (batch["image_grid_thw"].prod(-1) // 4).tolist()
        image_pos = (batch["mm_token_type_ids"][0] == 1).nonzero()[:, 0]
        sar, optical = image_pos[: counts[0]], image_pos[counts[0] :]
        assert (emb_prior[0, sar] - emb_plain[0, sar]).abs().max() > 0
        assert torch.equal(emb_prior[0, optical], emb_plain[0, optical])
    finally:
        model.model.geo_fusion.load_state_dict(saved)


def test_generate_equals_manual_greedy_decode(tiny):
    _, model, processor = tiny
    saved = {k: v.clone() for k, v in model.model.geo_fusion.state_dict().items()}
    _randomise_fusion(model)
    try:
        batch = _batch(processor, [("<image>How many ships?", [_image(6)])])
        pri = _priors(1, seed=4)
        steps = 6
        with torch.no_grad():
            generated = model.generate(
                **batch,
                **pri,
                max_new_tokens=steps,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=processor.pad_token_id,
            )
            ids, types, mask = batch["input_ids"], batch["mm_token_type_ids"], batch["attention_mask"]
            for _ in range(steps):
                logits = model(
                    input_ids=ids,
                    attention_mask=mask,
                    mm_token_type_ids=types,
                    use_cache=False,
                    pixel_values=batch["pixel_values"],
                    image_grid_thw=batch["image_grid_thw"],
                    **pri,
                ).logits
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                ids = torch.cat([ids, nxt], 1)
                types = torch.cat([types, torch.zeros_like(nxt)], 1)
                mask = torch.cat([mask, torch.ones_like(nxt)], 1)
        assert generated.tolist() == ids.tolist()
        with torch.no_grad():  # and the priors matter for what is generated
            plain = model.generate(
                **batch, max_new_tokens=steps, do_sample=False, eos_token_id=None, pad_token_id=processor.pad_token_id
            )
        assert plain.tolist() != generated.tolist()
    finally:
        model.model.geo_fusion.load_state_dict(saved)


@pytest.mark.parametrize("name", BACKBONES)
def test_concat_fusion_appends_prior_tokens(name):
    model, processor = load_model(name, settings={"fusion": "concat", "prior_grid": [2, 3]})
    enc = processor.encode([{"role": "user", "content": "<image>Count."}], [_image(7)], add_generation_prompt=True)
    assert enc["input_ids"].count(processor.geo_token_id) == 6
    batch = _batch(processor, [("<image>Count.", [_image(7)])])
    pri = _priors(1, s=6)
    with torch.no_grad():
        without = model(**batch).logits
        invalid = model(**batch, **_priors(1, s=6, valid=torch.zeros(1, 6, dtype=torch.bool))).logits
        with_p = model(**batch, **pri).logits
        fewer = model(**batch, **_priors(1, s=4, valid=torch.zeros(1, 4, dtype=torch.bool))).logits
        out = model.generate(
            **batch, **pri, max_new_tokens=3, do_sample=False, eos_token_id=None, pad_token_id=processor.pad_token_id
        )
    assert torch.equal(without, invalid) and torch.equal(without, fewer)  # invalid slots keep the placeholder
    assert not torch.allclose(without, with_p)
    assert out.shape[1] == batch["input_ids"].shape[1] + 3
    with pytest.raises(ValueError, match="at most S=6"):
        model(**batch, **_priors(1, s=7))


@pytest.mark.parametrize("name", BACKBONES)
def test_sum_and_none_fusions(name):
    batch = None
    for fusion in ("sum", "none"):
        model, processor = load_model(name, settings={"fusion": fusion})
        batch = batch or _batch(processor, [("<image>Count.", [_image(8)])])
        with torch.no_grad():
            assert torch.equal(model(**batch).logits, model(**batch, **_priors(1)).logits)
        if fusion == "sum":
            _randomise_fusion(model)
            with torch.no_grad():
                assert not torch.allclose(model(**batch).logits, model(**batch, **_priors(1)).logits)


def test_qwen3_deepstack_modulation_switch():
    batch = None
    logits = {}
    for flag in (False, True):
        model, processor = load_model("tiny-qwen3-vl", settings={"modulate_deepstack": flag})
        _randomise_fusion(model)
        batch = batch or _batch(processor, [("<image>Count.", [_image(9)])])
        with torch.no_grad():
            out = model.model.get_image_features(batch["pixel_values"], batch["image_grid_thw"], **_priors(1))
            plain = model.model.get_image_features(batch["pixel_values"], batch["image_grid_thw"])
            logits[flag] = model(**batch, **_priors(1)).logits
        assert not torch.equal(out.pooler_output[0], plain.pooler_output[0])
        same = torch.equal(out.deepstack_features[0][0], plain.deepstack_features[0][0])
        assert same is (not flag)
    assert not torch.allclose(logits[False], logits[True])


def test_bad_prior_shapes_are_reported(tiny):
    _, model, processor = tiny
    batch = _batch(processor, [("<image>Count.", [_image(0)])])
    with pytest.raises(ValueError, match="geo_priors must be"):
        model(**batch, **_priors(2))
    with pytest.raises(ValueError, match="geo_positions must be"):
        model(**batch, geo_priors=torch.zeros(1, 4, 64), geo_positions=torch.zeros(1, 3, 2))


def test_gradients_reach_the_fusion_only_through_images_with_priors(tiny):
    """Stage-1 setup (only the fusion trains): the loss on the answer reaches the fusion's output layer
    through images with a valid prior, and nothing reaches it from an image without one."""
    name, _, processor = tiny
    model, _ = load_model(name)
    model.train()
    for n, p in model.named_parameters():
        p.requires_grad_("geo_fusion" in n)
    enc = processor.encode(
        [{"role": "user", "content": "<image>Count."}, {"role": "assistant", "content": "3 ships"}], [_image(10)]
    )
    ids = torch.tensor([enc["input_ids"]])
    labels = torch.where(torch.tensor([enc["assistant_mask"]]), ids, torch.full_like(ids, -100))
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "mm_token_type_ids": torch.tensor([enc["mm_token_type_ids"]]),
        "pixel_values": enc["pixel_values"],
        "image_grid_thw": enc["image_grid_thw"],
    }
    model(**batch, **_priors(1)).loss.backward()
    fusion = model.model.geo_fusion
    assert fusion.mlp[2].weight.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in model.named_parameters() if "geo_fusion" not in n)
    # No valid prior: the fusion is not even in the graph (the loss does not depend on it).
    loss = model(**batch, **_priors(1, valid=torch.zeros(1, 16, dtype=torch.bool))).loss
    assert not loss.requires_grad
