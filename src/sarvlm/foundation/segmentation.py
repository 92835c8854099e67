"""A segmentation head on the (frozen or fine-tuned) KLIP image tower: ViT + linear decoder.

``SegmentationModel``: the ViT's patch tokens ``(B, (S/p)², D)`` -> a 1×1 linear classifier per
patch -> logits ``(B, C, S/p, S/p)`` -> bilinear upsampling to ``(B, C, S, S)`` (SETR-naive /
Segmenter's linear decoder). Trained with per-pixel cross-entropy against the land-cover masks
(nearest-resized to ``S``); the backbone is frozen unless ``train_backbone``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sarvlm.core.errors import InputError


class SegmentationModel(nn.Module):
    def __init__(self, backbone: nn.Module, hidden: int, patch: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.patch = patch
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, S, S)`` -> class logits ``(B, num_classes, S, S)``."""
        tokens = self.backbone(pixel_values=pixel_values).last_hidden_state[:, 1:]
        b, n, _ = tokens.shape
        g = int(round(n**0.5))
        logits = self.head(tokens).transpose(1, 2).reshape(b, -1, g, g)
        return F.interpolate(logits, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)


def load_masks(items, image_size: int) -> tuple[torch.Tensor, dict[int, str]]:
    """Land-cover masks of the items' records, nearest-resized to ``image_size``: ``(N, S, S)`` long."""
    from sarvlm.io.raster import read_raster

    out = torch.empty(len(items), image_size, image_size, dtype=torch.long)
    classes: dict[int, str] | None = None
    for i, it in enumerate(items):
        rec = it.record
        if rec is None or rec.landcover is None or it.base is None:
            raise InputError(f"record {it.id!r}: no land-cover mask (segmentation needs `landcover`)")
        classes = classes or {int(k): v for k, v in rec.landcover.classes.items()}
        m = read_raster(it.base / rec.landcover.mask, bands=1)[0]
        t = torch.from_numpy(np.ascontiguousarray(m).astype(np.int64))[None, None].float()
        out[i] = F.interpolate(t, size=(image_size, image_size), mode="nearest")[0, 0].long()
    return out, classes or {}


def train_head(
    model: SegmentationModel,
    images: torch.Tensor,
    masks: torch.Tensor,
    steps: int = 200,
    batch_size: int = 8,
    lr: float = 1e-2,
    seed: int = 0,
    train_backbone: bool = False,
) -> list[float]:
    """Fit the head (and optionally the backbone); returns the loss per step."""
    for p in model.backbone.parameters():
        p.requires_grad = train_backbone
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng([seed, 5])
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.from_numpy(rng.choice(len(images), size=min(batch_size, len(images)), replace=False))
        loss = F.cross_entropy(model(images[idx]), masks[idx])
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    return losses


@torch.no_grad()
def predict_masks(model: SegmentationModel, images: torch.Tensor, chunk: int = 32) -> np.ndarray:
    model.eval()
    return np.concatenate([model(images[s : s + chunk]).argmax(1).numpy() for s in range(0, len(images), chunk)])


def split_half(n: int, seed: int = 0) -> tuple[Sequence[int], Sequence[int]]:
    perm = np.random.default_rng([seed, 6]).permutation(n)
    return sorted(perm[n // 2 :].tolist()), sorted(perm[: n // 2].tolist())
