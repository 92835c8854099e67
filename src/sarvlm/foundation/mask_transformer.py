"""Segmenter's mask-transformer decoder (Strudel et al. 2021, §3.2) on the KLIP image tower.

Shapes (``B`` images, ``N = g²`` patch tokens of width ``D`` from the ViT, ``K`` classes, decoder
width ``d``):

1. patch tokens ``(B, N, D)`` -> linear -> ``(B, N, d)``;
2. ``K`` learnable class embeddings ``(K, d)`` are appended: ``(B, N + K, d)``;
3. ``layers`` standard transformer encoder layers (``torch.nn.TransformerEncoderLayer``, pre-norm,
   ``heads`` heads) process patches and classes jointly, then a LayerNorm;
4. patch embeddings ``(B, N, d)`` and class embeddings ``(B, K, d)`` each go through a linear
   projection and are L2-normalised; masks = their scalar products ``(B, N, K)``, followed by a
   LayerNorm over ``K`` (Segmenter's ``mask_norm``);
5. reshaped to ``(B, K, g, g)`` and bilinearly upsampled to the input size by the caller
   (:class:`sarvlm.foundation.segmentation.SegmentationModel`).

The attention is PyTorch's; nothing here is a hand-written attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskTransformerDecoder(nn.Module):
    """Patch tokens ``(B, N, in_dim)`` -> class masks ``(B, num_classes, g, g)`` with ``g = sqrt(N)``."""

    def __init__(self, in_dim: int, num_classes: int, d_model: int = 64, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"mask-transformer width {d_model} is not divisible by {heads} heads")
        self.num_classes = num_classes
        self.proj_dec = nn.Linear(in_dim, d_model)
        self.cls_emb = nn.Parameter(torch.randn(1, num_classes, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            heads,
            dim_feedforward=4 * d_model,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.decoder_norm = nn.LayerNorm(d_model)
        self.proj_patch = nn.Linear(d_model, d_model, bias=False)
        self.proj_classes = nn.Linear(d_model, d_model, bias=False)
        self.mask_norm = nn.LayerNorm(num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, _ = tokens.shape
        g = int(round(n**0.5))
        if g * g != n:
            raise ValueError(f"{n} patch tokens do not form a square grid")
        x = torch.cat([self.proj_dec(tokens), self.cls_emb.expand(b, -1, -1)], dim=1)  # (B, N + K, d)
        x = self.decoder_norm(self.blocks(x))
        patches = F.normalize(self.proj_patch(x[:, :n]), dim=-1)  # (B, N, d)
        classes = F.normalize(self.proj_classes(x[:, n:]), dim=-1)  # (B, K, d)
        masks = self.mask_norm(patches @ classes.transpose(1, 2))  # (B, N, K)
        return masks.transpose(1, 2).reshape(b, self.num_classes, g, g)
