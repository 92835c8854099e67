"""Batch collation for supervised fine-tuning: pad text, concatenate images, pad priors.

Each feature (one example, see :mod:`sarvlm.training.dataset`) holds 1-D ``input_ids``,
``labels`` (``-100`` outside assistant tokens) and ``mm_token_type_ids``; the flattened
Qwen-VL patches ``pixel_values`` (P, C) with ``image_grid_thw`` (N_img, 3); and, when
the recipe uses priors, ``geo_priors`` (N_img, S, D), ``geo_positions`` (N_img, S, 2)
and ``geo_mask`` (N_img, S). Examples differ in length, image count and size, and in
the number of prior nodes S; the collator pads each to the batch maximum. Padded
prior nodes are masked out; an image without a prior has an all-False mask row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

IGNORE_INDEX = -100  # the label value transformers' causal-LM loss ignores


@dataclass
class SftCollator:
    """Right-pads a list of features into one batch the sarvlm Qwen-VL forward accepts."""

    pad_token_id: int

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        lengths = [int(f["input_ids"].shape[0]) for f in features]
        width = max(lengths)
        n = len(features)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        mm_token_type_ids = torch.zeros((n, width), dtype=torch.long)
        for i, (f, length) in enumerate(zip(features, lengths, strict=True)):
            input_ids[i, :length] = f["input_ids"]
            labels[i, :length] = f["labels"]
            attention_mask[i, :length] = 1
            mm_token_type_ids[i, :length] = f["mm_token_type_ids"]
        batch: dict[str, torch.Tensor] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "mm_token_type_ids": mm_token_type_ids,
        }
        with_images = [f for f in features if f.get("pixel_values") is not None and f["pixel_values"].shape[0] > 0]
        if with_images:
            # Qwen-VL takes all images of the batch as one flat patch sequence, in placeholder order.
            batch["pixel_values"] = torch.cat([f["pixel_values"] for f in with_images], dim=0)
            batch["image_grid_thw"] = torch.cat([f["image_grid_thw"] for f in with_images], dim=0)
        if any(f.get("geo_priors") is not None for f in with_images):
            batch.update(self._collate_priors(with_images))
        return batch

    @staticmethod
    def _collate_priors(features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        present = [f for f in features if f.get("geo_priors") is not None]
        dim = int(present[0]["geo_priors"].shape[-1])
        nodes = max(1, max(int(f["geo_priors"].shape[1]) for f in present))
        rows = sum(int(f["image_grid_thw"].shape[0]) for f in features)
        priors = torch.zeros((rows, nodes, dim), dtype=torch.float32)
        positions = torch.zeros((rows, nodes, 2), dtype=torch.float32)
        mask = torch.zeros((rows, nodes), dtype=torch.bool)
        row = 0
        for f in features:
            n_img = int(f["image_grid_thw"].shape[0])
            if f.get("geo_priors") is not None:
                p = f["geo_priors"]
                if p.shape[0] != n_img or p.shape[-1] != dim:
                    raise ValueError(
                        f"geo_priors of shape {tuple(p.shape)} do not match {n_img} image(s) with prior dim {dim}"
                    )
                s = int(p.shape[1])
                priors[row : row + n_img, :s] = p
                positions[row : row + n_img, :s] = f["geo_positions"]
                mask[row : row + n_img, :s] = f["geo_mask"]
            row += n_img
        return {"geo_priors": priors, "geo_positions": positions, "geo_mask": mask}
