"""Segmentation decoders on the KLIP image tower: Segmenter's mask transformer beside the linear head."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _foundation_data import fields_for, make_world
from sarvlm.cli.main import main
from sarvlm.core.errors import ConfigurationError, InputError
from sarvlm.foundation.config import load_config
from sarvlm.foundation.mask_transformer import MaskTransformerDecoder
from sarvlm.foundation.model import build_model
from sarvlm.foundation.segmentation import (
    SegmentationModel,
    build_decoder,
    load_head,
    predict_masks,
    save_head,
    train_head,
)

torch.set_num_threads(1)


def _vit(size: int = 32, patch: int = 8):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(
        image_size=size,
        patch_size=patch,
        num_channels=1,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
    )
    return ViTModel(cfg, add_pooling_layer=False)


def _planted(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose pixels left of a random column are dark (class 0) and right of it bright (class 1)."""
    rng = np.random.default_rng(seed)
    images = torch.empty(n, 1, size, size)
    masks = torch.empty(n, size, size, dtype=torch.long)
    for i in range(n):
        col = int(rng.integers(1, 4)) * (size // 4)
        m = np.zeros((size, size), dtype=np.int64)
        m[:, col:] = 1
        img = np.where(m == 1, 0.6, -0.6) + rng.normal(0, 0.2, (size, size))
        images[i, 0] = torch.from_numpy(img.astype(np.float32))
        masks[i] = torch.from_numpy(m)
    return images, masks


def test_mask_transformer_shapes_and_unknown_head():
    dec = MaskTransformerDecoder(in_dim=48, num_classes=3, d_model=32, layers=2, heads=4)
    tokens = torch.randn(2, 16, 48)
    with torch.no_grad():
        out = dec(tokens)
        assert out.shape == (2, 3, 4, 4)
        # the class embeddings take part: changing them changes the masks
        dec.cls_emb.add_(torch.randn_like(dec.cls_emb))
        assert not torch.allclose(dec(tokens), out)
    seg = SegmentationModel(_vit(), 32, 8, 3, "mask-transformer", d_model=32, layers=1, heads=4)
    assert seg(torch.randn(2, 1, 32, 32)).shape == (2, 3, 32, 32)
    assert isinstance(seg.decoder.blocks.layers[0], torch.nn.TransformerEncoderLayer)
    with pytest.raises(InputError, match="unknown segmentation head"):
        build_decoder("fcn", 32, 2)
    with pytest.raises(ValueError, match="do not form a square grid"):
        dec(torch.randn(1, 15, 48))


@pytest.mark.parametrize("head", ["linear", "mask-transformer"])
def test_heads_learn_a_planted_two_class_mask_and_round_trip(head, tmp_path):
    from sarvlm.metrics.segmentation import segmentation_scores

    images, masks = _planted(24)
    options = {"d_model": 32, "layers": 2, "heads": 4} if head == "mask-transformer" else {}
    torch.manual_seed(0)
    seg = SegmentationModel(_vit(), 32, 8, 2, head, **options)
    losses = train_head(seg, images[:16], masks[:16], steps=60, seed=0)
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])
    pred = predict_masks(seg, images[16:])
    scores = segmentation_scores(zip(masks[16:].numpy(), pred), 2)
    majority = float((masks[16:] == int(masks[:16].flatten().mode().values)).float().mean())
    assert scores["oa"] > max(0.85, majority + 0.2), (scores, majority)
    assert scores["miou"] > 0.7
    # the backbone stayed frozen
    assert all(not p.requires_grad for p in seg.backbone.parameters())

    save_head(seg, tmp_path, {0: "dark", 1: "bright"})
    back = load_head(tmp_path, backbone=seg.backbone)
    assert back.head_name == head
    np.testing.assert_array_equal(predict_masks(back, images[16:]), pred)
    meta = json.loads((tmp_path / "seg_head.json").read_text())
    assert meta["classes"] == {"0": "dark", "1": "bright"} and meta["num_classes"] == 2


def test_load_head_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="no segmentation head"):
        load_head(tmp_path, backbone=_vit())
    seg = SegmentationModel(_vit(), 32, 8, 2, "linear")
    save_head(seg, tmp_path)
    meta = json.loads((tmp_path / "seg_head.json").read_text())
    meta["head"] = "mask-transformer"
    (tmp_path / "seg_head.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigurationError, match="does not fit"):
        load_head(tmp_path, backbone=_vit())


def test_export_backbone_with_mask_transformer_head(tmp_path, capsys):
    data = make_world(tmp_path / "w", n=12)
    torch.manual_seed(0)
    cfg = load_config("tiny-klip", {"vision.image_size": 32, "queue_size": 64})
    texts = ["\n".join(f"{k}: {v}." for k, v in fields_for(kind).items()) for kind in ("coast", "port")]
    model = build_model(cfg, texts)
    (tmp_path / "model").mkdir()
    model.save_pretrained(tmp_path / "model")
    out = tmp_path / "backbone"
    argv = ["export-backbone", "--model", str(tmp_path / "model"), "--out", str(out), "--seg-data", str(data)]
    assert main([*argv, "--head", "mask-transformer", "--seg-steps", "40"]) == 0
    assert "mask-transformer segmentation head OA" in capsys.readouterr().out
    seg = json.loads((out / "segmentation.json").read_text())
    assert seg["head"] == "mask-transformer" and seg["train"] + seg["test"] == 12
    assert 0.0 <= seg["miou"] <= seg["oa"] <= 1.0
    assert seg["oa"] > seg["majority_class_oa"]
    head = load_head(out)  # the exported ViTModel + the saved decoder
    assert head.head_name == "mask-transformer" and head(torch.randn(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    assert main([*argv[:4], str(tmp_path / "b2"), "--seg-data", str(data), "--seg-lr", "0"]) == 2
    assert "--seg-lr must be positive" in capsys.readouterr().err
