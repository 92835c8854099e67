"""KLIP model, losses, momentum/queue, configs and checkpoints (tiny sizes, CPU)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from sarvlm.core.errors import ConfigurationError, NotFoundError, SarvlmError
from sarvlm.foundation.config import load_config
from sarvlm.foundation.losses import ContrastiveLoss, itm_loss, mask_tokens, sample_hard_negatives
from sarvlm.foundation.model import KlipModel, build_model

torch.set_num_threads(1)

TEXTS = [
    f"Terrain: The terrain is mainly {w}. Water: Water covers {n} percent of the scene."
    for w in ("farmland", "forest", "urban area", "bare ground")
    for n in (0, 10, 40)
]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(load_config("tiny-klip"), TEXTS)


def test_named_configs_validate_and_base_matches_paper():
    base = load_config("base-klip")
    assert (base.vision.image_size, base.vision.patch_size, base.vision.hidden_size) == (224, 16, 768)
    assert (base.text.hidden_size, base.text.num_hidden_layers) == (768, 12)
    assert (base.train.batch_size, base.train.lr, base.train.warmup_steps, base.train.weight_decay) == (
        32,
        3e-4,
        3000,
        0.05,
    )
    assert base.train.lr_decay_rate == 0.9 and base.train.warmup_lr == 1e-6 and base.alpha == 0.4
    assert base.queue_size % base.train.batch_size == 0


def test_config_errors_are_one_line(tmp_path):
    with pytest.raises(NotFoundError, match="no such named config"):
        load_config("huge-klip")
    bad = tmp_path / "bad.yaml"
    bad.write_text("vision: {image_size: 60, patch_size: 16}\n")
    with pytest.raises(ConfigurationError, match="multiple of patch_size"):
        load_config(bad)
    bad.write_text("visoin: {}\n")
    with pytest.raises(ConfigurationError, match="visoin"):
        load_config(bad)
    with pytest.raises(ConfigurationError, match="multiple of train.batch_size"):
        load_config("tiny-klip", {"queue_size": 100})


def _itc_reference(img, txt, img_m, txt_m, img_all, txt_all, idx, idx_all, alpha, temp):
    pos = (idx[:, None] == idx_all[None, :]).float()
    gt = pos / pos.sum(1, keepdim=True)
    t_i2t = alpha * F.softmax(img_m @ txt_all / temp, 1) + (1 - alpha) * gt
    t_t2i = alpha * F.softmax(txt_m @ img_all / temp, 1) + (1 - alpha) * gt
    li = -(F.log_softmax(img @ txt_all / temp, 1) * t_i2t).sum(1).mean()
    lt = -(F.log_softmax(txt @ img_all / temp, 1) * t_t2i).sum(1).mean()
    return (li + lt) / 2


def test_itc_hard_targets_equal_cross_entropy_and_queue_positives_count():
    g = torch.Generator().manual_seed(1)
    b, d, q = 4, 8, 6
    img = F.normalize(torch.randn(b, d, generator=g), dim=1)
    txt = F.normalize(torch.randn(b, d, generator=g), dim=1)
    queue_i = F.normalize(torch.randn(d, q, generator=g), dim=0)
    queue_t = F.normalize(torch.randn(d, q, generator=g), dim=0)
    idx = torch.tensor([0, 1, 2, 3])
    loss_fn = ContrastiveLoss(0.1)
    empty = torch.full((q,), -1)
    all_i, all_t = torch.cat([img.T, queue_i], 1), torch.cat([txt.T, queue_t], 1)
    loss, sim_i2t, _ = loss_fn(img, txt, img, txt, all_i, all_t, idx, torch.cat([idx, empty]), 0.0)
    # alpha = 0, no queue positives: plain InfoNCE over batch + queue, the diagonal being the target.
    ce = (F.cross_entropy(img @ all_t / 0.1, torch.arange(b)) + F.cross_entropy(txt @ all_i / 0.1, torch.arange(b))) / 2
    assert torch.allclose(loss, ce, atol=1e-5)
    assert sim_i2t.shape == (b, b + q)
    # a queue slot holding sample 2 is a second positive for row 2: the loss changes and matches the reference.
    idx_all = torch.cat([idx, torch.tensor([2, -1, -1, -1, -1, -1])])
    loss2, _, _ = loss_fn(img, txt, img, txt, all_i, all_t, idx, idx_all, 0.0)
    assert not torch.allclose(loss2, loss)
    assert torch.allclose(loss2, _itc_reference(img, txt, img, txt, all_i, all_t, idx, idx_all, 0.0, 0.1), atol=1e-5)


def test_itc_soft_targets_follow_momentum_similarities():
    g = torch.Generator().manual_seed(2)
    b, d = 4, 8
    img, txt, img_m, txt_m = (F.normalize(torch.randn(b, d, generator=g), dim=1) for _ in range(4))
    idx = torch.arange(b)
    loss_fn = ContrastiveLoss(0.07)
    args = (img, txt, img_m, txt_m, img_m.T.clone(), txt_m.T.clone(), idx, idx)
    losses = {a: loss_fn(*args, a)[0] for a in (0.0, 0.4, 1.0)}
    for a, v in losses.items():
        assert torch.allclose(v, _itc_reference(*args, a, 0.07), atol=1e-5)
    assert len({round(float(v), 4) for v in losses.values()}) == 3  # alpha changes the target
    # the temperature is learnable and receives a gradient
    losses[0.4].backward()
    assert loss_fn.temp.grad is not None and loss_fn.temp.grad != 0


def test_hard_negatives_never_positive_and_prefer_similar():
    b = 6
    idx = torch.tensor([0, 1, 2, 3, 3, 5])  # rows 3 and 4 are the same sample
    sim = torch.zeros(b, b)
    sim[:, 5] = 8.0  # everyone finds item 5 most similar
    g = torch.Generator().manual_seed(0)
    picks_img, picks_txt = [], []
    for _ in range(200):
        ni, nt = sample_hard_negatives(sim, sim, idx, g)
        picks_img.append(ni)
        picks_txt.append(nt)
    ni, nt = torch.stack(picks_img), torch.stack(picks_txt)
    for picks in (ni, nt):
        assert not (idx[picks] == idx[None, :]).any()  # never the same sample (incl. 3 <-> 4)
        assert (picks[:, :5] == 5).float().mean() > 0.9  # the hardest negative dominates
    assert itm_loss(torch.tensor([[0.0, 9.0]] * 2 + [[9.0, 0.0]] * 4), 2) < 1e-3


def test_mlm_masking_rates_and_protected_tokens():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 1000, (400, 500), generator=g)
    ids[:, 0] = 2  # [CLS]
    ids[:, -5:] = 0  # padding
    protect = torch.zeros_like(ids, dtype=torch.bool)
    protect[:, 1:51] = True
    masked, labels = mask_tokens(ids, 4, 1000, (0, 2, 3), 0.15, g, protect)
    chosen = labels != -100
    eligible = (ids != 0) & (ids != 2) & ~protect
    assert not chosen[~eligible].any()
    rate = chosen.sum() / eligible.sum()
    assert abs(float(rate) - 0.15) < 0.005
    to_mask = (masked == 4) & chosen
    kept = (masked == ids) & chosen
    frac_mask, frac_kept = to_mask.sum() / chosen.sum(), kept.sum() / chosen.sum()
    assert abs(float(frac_mask) - 0.8) < 0.01
    assert abs(float(frac_kept) - 0.1) < 0.01  # unchanged (+ the rare random pick of the same token)
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(masked[~chosen], ids[~chosen])


def test_momentum_update_and_queue_ring(tiny):
    p, p_m = next(iter(tiny.vision_proj.parameters())), next(iter(tiny.vision_proj_m.parameters()))
    with torch.no_grad():
        p.add_(1.0)
    before = p_m.detach().clone()
    tiny.momentum_update()
    m = tiny.momentum
    assert torch.allclose(p_m, m * before + (1 - m) * p.detach(), atol=1e-6)
    tiny.copy_params()
    assert torch.equal(p_m, p) and not p_m.requires_grad
    q = tiny.config.queue_size
    tiny.queue_ptr.zero_()
    feats = F.normalize(torch.randn(8, tiny.config.embed_dim), dim=1)
    for k in range(q // 8):
        tiny.dequeue_and_enqueue(feats, feats, torch.arange(8) + 8 * k)
    assert int(tiny.queue_ptr) == 0
    assert torch.equal(tiny.idx_queue[0, -8:], torch.arange(8) + q - 8)
    assert torch.allclose(tiny.text_queue[:, :8].T, feats)


def test_training_steps_reduce_loss_and_save_load_is_exact(tmp_path):
    torch.manual_seed(0)
    model = build_model(load_config("tiny-klip"), TEXTS)
    px = torch.randn(8, 1, 64, 64)
    ids, att = model.tokenize(TEXTS[:8])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    first = None
    for _ in range(15):
        out = model(px, ids, att, torch.arange(8))
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        first = first if first is not None else float(out.loss)
    assert float(out.loss) < first
    model.save_pretrained(tmp_path)
    back = KlipModel.from_pretrained(tmp_path)
    a, b = model.state_dict(), back.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model.eval()
    back.eval()
    with torch.no_grad():
        emb, f1 = model.encode_image(px)
        _, f2 = back.encode_image(px)
        assert torch.equal(f1, f2)
        assert torch.equal(model.itm_probability(ids, att, emb), back.itm_probability(ids, att, emb))
    assert back.tokenizer.get_vocab() == model.tokenizer.get_vocab()


def test_wrong_checkpoint_directories(tmp_path):
    with pytest.raises(NotFoundError):
        KlipModel.from_pretrained(tmp_path / "nope")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ConfigurationError, match="wrong architecture 'vit'"):
        KlipModel.from_pretrained(tmp_path)


def test_towers_from_local_hf_checkpoints(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast, ViTConfig, ViTModel

    torch.manual_seed(0)
    tiny_cfg = load_config("tiny-klip")  # checkpoints of tiny-klip's tower sizes
    v, t = tiny_cfg.vision, tiny_cfg.text
    vit = ViTModel(
        ViTConfig(
            image_size=v.image_size,
            patch_size=v.patch_size,
            num_channels=3,
            hidden_size=v.hidden_size,
            num_hidden_layers=v.num_hidden_layers,
            num_attention_heads=v.num_attention_heads,
            intermediate_size=v.intermediate_size,
        ),
        add_pooling_layer=False,
    )
    vit.save_pretrained(tmp_path / "vit")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(
        {w.strip(".:").lower() for t in TEXTS for w in t.split()}
    )
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(tmp_path / "bert" / "vocab.txt")).save_pretrained(tmp_path / "bert")
    bert = BertModel(
        BertConfig(
            vocab_size=len(vocab),
            hidden_size=t.hidden_size,
            num_hidden_layers=t.num_hidden_layers,
            num_attention_heads=t.num_attention_heads,
            intermediate_size=t.intermediate_size,
            max_position_embeddings=256,
        )
    ).eval()
    bert.save_pretrained(tmp_path / "bert")
    cfg = load_config(
        "tiny-klip", {"vision.init_from": str(tmp_path / "vit"), "text.init_from": str(tmp_path / "bert")}
    )
    model = build_model(cfg)
    # 1-channel SAR input == the RGB model on the repeated band
    px = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        ours = model.visual_encoder(pixel_values=px).last_hidden_state
        ref = vit(pixel_values=px.repeat(1, 3, 1, 1)).last_hidden_state
    assert torch.allclose(ours, ref, atol=1e-4)
    assert torch.equal(
        model.text.bert.encoder.layer[0].attention.self.query.weight, bert.encoder.layer[0].attention.self.query.weight
    )
    assert len(model.tokenizer) == len(vocab) + 2  # [ENC], [DEC]
    # the unimodal (ITC) mode of the text tower is the checkpoint's BERT itself, padding included
    ids, att = model.tokenize(TEXTS)
    with torch.no_grad():
        ours_text = model.text.bert(input_ids=ids, attention_mask=model._bidirectional(att)).last_hidden_state
        ref_text = bert(input_ids=ids, attention_mask=att).last_hidden_state
    assert att.sum() < att.numel()  # the texts differ in length: padding is exercised
    assert torch.allclose(ours_text[att.bool()], ref_text[att.bool()], atol=1e-5)
    # a checkpoint of the other tower's type is refused with one line
    bad = load_config("tiny-klip", {"vision.init_from": str(tmp_path / "bert")})
    with pytest.raises(SarvlmError, match="wrong architecture 'bert'"):
        build_model(bad, TEXTS)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_one_text_tower_attends_both_ways_or_causally_per_call(attention):
    # the unimodal and image-grounded modes see the whole text; the decoder mode only what came before
    torch.manual_seed(0)
    model = build_model(load_config("tiny-klip", {"text.attention": attention}), TEXTS).eval()
    ids, att = model.tokenize(TEXTS[:1])
    changed = ids.clone()
    changed[0, -2] = ids[0, 1]  # alter a late token (before [SEP])
    image = torch.randn(1, 17, model.config.vision.hidden_size)
    with torch.no_grad():
        both = [
            model.text.bert(input_ids=x, attention_mask=model._bidirectional(att)).last_hidden_state
            for x in (ids, changed)
        ]
        fused = [model.fuse(x, att, image) for x in (ids, changed)]
        causal = [
            model.text.bert(input_ids=x, attention_mask=att, encoder_hidden_states=image).last_hidden_state
            for x in (ids, changed)
        ]
    early = slice(0, 3)
    assert not torch.allclose(both[0][0, early], both[1][0, early])
    assert not torch.allclose(fused[0][0, early], fused[1][0, early])
    assert torch.allclose(causal[0][0, early], causal[1][0, early])
    # padding is masked in the bidirectional mode: extra [PAD]s change no real token's state
    padded = torch.cat([ids, torch.full((1, 5), model.ids["pad"])], dim=1)
    padded_att = torch.cat([att, torch.zeros(1, 5, dtype=att.dtype)], dim=1)
    with torch.no_grad():
        out = model.text.bert(input_ids=padded, attention_mask=model._bidirectional(padded_att)).last_hidden_state
    assert torch.allclose(out[0, : ids.shape[1]], both[0][0], atol=1e-5)


def test_image_and_text_towers_of_different_widths_meet_through_image_to_text(tmp_path):
    from sarvlm.foundation.decoder_model import KlipDecoderModel

    torch.manual_seed(0)
    cfg = load_config("tiny-klip", {"vision.hidden_size": 32, "vision.intermediate_size": 64})
    model = build_model(cfg, TEXTS)
    assert model.image_to_text.in_features == 32 and model.image_to_text.out_features == cfg.text.hidden_size != 32
    assert build_model(load_config("tiny-klip"), TEXTS).image_to_text is None  # equal widths: no extra layer
    ids, att = model.tokenize(TEXTS * 3)
    px = torch.randn(8, 1, 64, 64)
    out = model(px, ids[:8], att[:8], torch.arange(8))
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.image_to_text.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path)
    again = KlipModel.from_pretrained(tmp_path)
    assert torch.equal(again.image_to_text.weight, model.image_to_text.weight)
    vqa = KlipDecoderModel.from_klip(model, "vqa")
    assert torch.equal(vqa.image_to_text.weight, model.image_to_text.weight)
    q_ids, q_mask = vqa.tokenize(["how many ships?"] * 2, 16)
    a_ids, a_mask = vqa.tokenize(["two"] * 2, 8)
    assert torch.isfinite(vqa(px[:2], a_ids, a_mask, q_ids, q_mask))


def test_checkpoint_without_a_segment_embedding_loads_with_it_zero(tmp_path, tiny):
    # KLIP checkpoints written while the text tower was BlipText (no segment embedding) still load
    from safetensors.torch import load_file, save_file

    model = tiny
    with torch.no_grad():
        model.text.bert.embeddings.token_type_embeddings.weight.zero_()
        model.text_encoder_m.embeddings.token_type_embeddings.weight.zero_()
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    state = {k: v for k, v in load_file(str(weights)).items() if "token_type_embeddings" not in k}
    save_file(state, str(weights))
    again = KlipModel.from_pretrained(tmp_path)
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    state.pop("itm_head.weight")  # anything else missing is still refused
    save_file(state, str(weights))
    with pytest.raises(SarvlmError, match="1 missing"):
        KlipModel.from_pretrained(tmp_path)


def test_cached_greedy_generation_equals_the_uncached_argmax_loop(tiny):
    from sarvlm.foundation.decoder_model import KlipDecoderModel

    torch.manual_seed(0)
    dec = KlipDecoderModel.from_klip(tiny, "caption").eval()
    px = torch.randn(2, 1, 64, 64)
    got = dec.generate(px, num_beams=1, max_new_tokens=6, min_new_tokens=6)
    context, context_mask = dec._context(px)
    ids = torch.full((2, 1), dec.ids["dec"])
    with torch.no_grad():
        for _ in range(6):
            logits = dec.text_decoder(
                input_ids=ids, encoder_hidden_states=context, encoder_attention_mask=context_mask, use_cache=False
            ).logits[:, -1]
            logits[:, dec.ids["sep"]] = float("-inf")  # min_new_tokens keeps [SEP] out
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    want = [t.strip() for t in dec.tokenizer.batch_decode(ids[:, 1:], skip_special_tokens=True)]
    assert got == want


def test_a_config_with_a_base_changes_only_what_it_lists(tmp_path):
    tiny, frag = load_config("tiny-klip").to_dict(), load_config("tiny-klip-fragments").to_dict()
    changed = {
        (section, key)
        for section in tiny
        for key in (tiny[section] if isinstance(tiny[section], dict) else [None])
        if (tiny[section] if key is None else tiny[section][key])
        != (frag[section] if key is None else frag[section][key])
    }
    assert changed == {
        ("name", None),
        ("train", "loss_weights"),
        ("train", "itm_fragment_negatives"),
        ("scio", "rule"),
        ("scio", "use_itm"),
        ("scio", "itc_margin"),
        ("scio", "phases"),
    }
    assert frag["train"]["loss_weights"]["fragment_itc"] > 0 and "fragment_itc" not in tiny["train"]["loss_weights"]
    # a user's file builds on a named config or on another file next to it; overrides still apply last
    (tmp_path / "mine.yaml").write_text("base: tiny-klip\nname: mine\ntrain: {lr: 0.001}\n")
    (tmp_path / "child.yaml").write_text("base: mine.yaml\nname: child\nscio: {itc_margin: 0.2}\n")
    child = load_config(tmp_path / "child.yaml", {"train.epochs": 2})
    assert (child.name, child.train.lr, child.scio.itc_margin, child.train.epochs) == ("child", 0.001, 0.2, 2)
    assert child.vision == load_config("tiny-klip").vision
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigurationError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "bad.yaml").write_text("base: [tiny-klip]\n")
    with pytest.raises(ConfigurationError, match="base must name"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "gone.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(NotFoundError, match="nowhere.yaml"):
        load_config(tmp_path / "gone.yaml")
