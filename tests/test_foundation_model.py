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
    vit = ViTModel(
        ViTConfig(
            image_size=64,
            patch_size=16,
            num_channels=3,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
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
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=256,
        )
    )
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
    # a checkpoint of the other tower's type is refused with one line
    bad = load_config("tiny-klip", {"vision.init_from": str(tmp_path / "bert")})
    with pytest.raises(SarvlmError, match="wrong architecture 'bert'"):
        build_model(bad, TEXTS)
