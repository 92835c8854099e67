"""Segmentation heads on the (frozen or fine-tuned) KLIP image tower: ViT + a linear or mask-transformer decoder.

``SegmentationModel``: the ViT's patch tokens ``(B, (S/p)², D)`` -> a decoder -> logits
``(B, C, S/p, S/p)`` -> bilinear upsampling to ``(B, C, S, S)``. Decoders (``head``):

- ``linear``: a 1×1 linear classifier per patch (SETR-naive / Segmenter's linear decoder);
- ``mask-transformer``: Segmenter's mask transformer (:mod:`sarvlm.foundation.mask_transformer`):
  class embeddings processed jointly with the patch tokens, masks = patch · class products.

Trained with per-pixel cross-entropy against the land-cover masks (nearest-resized to ``S``); the
backbone is frozen unless ``train_backbone``. :func:`save_head` / :func:`load_head` keep a trained
decoder beside an exported backbone (``seg_head.json`` + ``seg_head.safetensors``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sarvlm.core.errors import ConfigurationError, InputError

HEADS = ("linear", "mask-transformer")
HEAD_CONFIG = "seg_head.json"
HEAD_WEIGHTS = "seg_head.safetensors"


class LinearDecoder(nn.Module):
    """One linear classifier per patch token: ``(B, N, D)`` -> ``(B, K, g, g)``, ``g = sqrt(N)``."""

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.head = nn.Linear(in_dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, _ = tokens.shape
        g = int(round(n**0.5))
        return self.head(tokens).transpose(1, 2).reshape(b, self.num_classes, g, g)


def build_decoder(head: str, hidden: int, num_classes: int, **options: Any) -> nn.Module:
    """``linear`` or ``mask-transformer`` (``options``: ``d_model``, ``layers``, ``heads``)."""
    if head == "linear":
        return LinearDecoder(hidden, num_classes)
    if head == "mask-transformer":
        from sarvlm.foundation.mask_transformer import MaskTransformerDecoder

        return MaskTransformerDecoder(hidden, num_classes, **options)
    raise InputError(f"--head: unknown segmentation head {head!r} (expected one of {', '.join(HEADS)})")


class SegmentationModel(nn.Module):
    def __init__(
        self, backbone: nn.Module, hidden: int, patch: int, num_classes: int, head: str = "linear", **options: Any
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.patch = patch
        self.head_name = head
        self.head_options = dict(options)
        self.num_classes = num_classes
        self.decoder = build_decoder(head, hidden, num_classes, **options)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, S, S)`` -> class logits ``(B, num_classes, S, S)``."""
        tokens = self.backbone(pixel_values=pixel_values).last_hidden_state[:, 1:]
        logits = self.decoder(tokens)
        return F.interpolate(logits, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)


def save_head(model: SegmentationModel, directory: str | Path, classes: dict[int, str] | None = None) -> None:
    """Write the decoder (not the backbone) as ``seg_head.json`` + ``seg_head.safetensors`` into ``directory``."""
    from safetensors.torch import save_file

    from sarvlm.core.atomic import atomic_open, atomic_path

    directory = Path(directory)
    meta = {
        "head": model.head_name,
        "options": model.head_options,
        "num_classes": model.num_classes,
        "classes": {str(k): v for k, v in (classes or {}).items()},
        "patch": model.patch,
    }
    with atomic_path(directory / HEAD_WEIGHTS) as tmp:
        save_file({k: v.detach().contiguous() for k, v in model.decoder.state_dict().items()}, str(tmp))
    with atomic_open(directory / HEAD_CONFIG) as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")


def load_head(directory: str | Path, backbone: nn.Module | None = None) -> SegmentationModel:
    """A :class:`SegmentationModel` from an exported backbone directory with a saved head.

    ``backbone`` defaults to the directory's own ``ViTModel``."""
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path = directory / HEAD_CONFIG
    if not cfg_path.is_file() or not (directory / HEAD_WEIGHTS).is_file():
        raise ConfigurationError(f"{directory}: no segmentation head ({HEAD_CONFIG} + {HEAD_WEIGHTS})")
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
        head, options, k, patch = meta["head"], meta.get("options", {}), int(meta["num_classes"]), int(meta["patch"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"{cfg_path}: not a segmentation head description ({exc})") from None
    if backbone is None:
        from transformers import ViTModel

        backbone = ViTModel.from_pretrained(str(directory), add_pooling_layer=False)
    hidden = backbone.config.hidden_size
    model = SegmentationModel(backbone, hidden, patch, k, head, **options)
    try:
        model.decoder.load_state_dict(load_file(str(directory / HEAD_WEIGHTS)))
    except RuntimeError as exc:
        raise ConfigurationError(
            f"{directory / HEAD_WEIGHTS}: does not fit the {head} head ({str(exc).splitlines()[0]})"
        ) from None
    return model


def load_masks(items, image_size: int) -> tuple[torch.Tensor, dict[int, str]]:
    """Land-cover masks of the items' records, nearest-resized to ``image_size``: ``(N, S, S)`` long.

    Every record must carry a mask, the same non-empty class list as the first record, and only pixel
    values of that list; otherwise one line names the record (and the file)."""
    from sarvlm.io.raster import read_raster

    out = torch.empty(len(items), image_size, image_size, dtype=torch.long)
    classes: dict[int, str] | None = None
    first = ""
    for i, it in enumerate(items):
        rec = it.record
        if rec is None or rec.landcover is None or it.base is None:
            raise InputError(f"record {it.id!r}: no land-cover mask (segmentation needs `landcover`)")
        these = {int(k): v for k, v in rec.landcover.classes.items()}
        if not these:
            raise InputError(f"record {it.id!r}: land-cover `classes` is empty (name the mask's class values)")
        if classes is None:
            classes, first = these, it.id
        elif these != classes:
            raise InputError(
                f"record {it.id!r}: land-cover classes {these} differ from those of record {first!r}, {classes} "
                "(one class list per segmentation set)"
            )
        path = it.base / rec.landcover.mask
        m = read_raster(path, bands=1)[0]
        if not np.issubdtype(m.dtype, np.integer):
            raise InputError(f"record {it.id!r}: mask {path} holds {m.dtype} pixels, not integer class values")
        values = np.unique(m)
        unknown = [int(v) for v in values if int(v) not in classes]
        if unknown:
            raise InputError(
                f"record {it.id!r}: mask {path} holds values {unknown[:5]} outside its classes {sorted(classes)}"
            )
        t = torch.from_numpy(np.ascontiguousarray(m).astype(np.int64))[None, None].float()
        out[i] = F.interpolate(t, size=(image_size, image_size), mode="nearest")[0, 0].long()
    return out, classes or {}


def train_head(
    model: SegmentationModel,
    images: torch.Tensor,
    masks: torch.Tensor,
    steps: int = 200,
    batch_size: int = 8,
    lr: float | None = None,
    seed: int = 0,
    train_backbone: bool = False,
) -> list[float]:
    """Fit the head (and optionally the backbone); returns the loss per step.

    ``lr`` defaults to 1e-2 for the linear head and 1e-3 for the mask transformer (AdamW)."""
    if lr is None:
        lr = 1e-2 if model.head_name == "linear" else 1e-3
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
