"""Momentum distillation and the shared feature queue, as small mixins (after LAVIS' base model).

A model using them lists ``self.model_pairs = [(online_module, momentum_module), ...]`` and
registers ``image_queue``/``text_queue`` ``(embed_dim, queue_size)``, ``idx_queue`` ``(1, queue_size)``
and ``queue_ptr`` buffers. Momentum modules never receive gradients; they follow the online
weights as an exponential moving average (``momentum`` 0.995 in BLIP/ALBEF).
"""

from __future__ import annotations

import torch
from torch import nn


class MomentumDistillationMixin:
    """EMA copies of selected sub-modules."""

    model_pairs: list[tuple[nn.Module, nn.Module]]
    momentum: float

    @torch.no_grad()
    def copy_params(self) -> None:
        """Make every momentum module an exact, frozen copy of its online module."""
        for online, ema in self.model_pairs:
            for p, p_m in zip(online.parameters(), ema.parameters(), strict=True):
                p_m.data.copy_(p.data)
                p_m.requires_grad = False

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``p_m <- m * p_m + (1 - m) * p`` for every pair."""
        online_params, ema_params = [], []
        for online, ema in self.model_pairs:
            for p, p_m in zip(online.parameters(), ema.parameters(), strict=True):
                online_params.append(p.detach())
                ema_params.append(p_m.detach())
        # one fused multi-tensor op instead of two small ops per parameter
        torch._foreach_lerp_(ema_params, online_params, 1.0 - self.momentum)


def gather_across_processes(t: torch.Tensor) -> torch.Tensor:
    """All processes' rows concatenated (no gradient); the tensor itself on one process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return t
    world = torch.distributed.get_world_size()
    if world == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(world)]
    torch.distributed.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=0)


class SharedQueueMixin:
    """A ring buffer of momentum features (and the sample index each came from), shared by all processes."""

    image_queue: torch.Tensor  # (embed_dim, queue_size)
    text_queue: torch.Tensor  # (embed_dim, queue_size)
    idx_queue: torch.Tensor  # (1, queue_size), -1 = empty slot
    queue_ptr: torch.Tensor  # (1,) long

    @torch.no_grad()
    def dequeue_and_enqueue(self, image_feat: torch.Tensor, text_feat: torch.Tensor, idxs: torch.Tensor) -> None:
        """Write a batch ``(B, D)`` of features at the pointer (batches of every process, in rank order)."""
        image_feats = gather_across_processes(image_feat)
        text_feats = gather_across_processes(text_feat)
        all_idx = gather_across_processes(idxs.view(-1, 1))
        n = image_feats.shape[0]
        size = self.image_queue.shape[1]
        ptr = int(self.queue_ptr[0])
        if size % n:
            raise ValueError(f"queue size {size} is not a multiple of the global batch {n}")
        self.image_queue[:, ptr : ptr + n] = image_feats.T.to(self.image_queue.dtype)
        self.text_queue[:, ptr : ptr + n] = text_feats.T.to(self.text_queue.dtype)
        self.idx_queue[:, ptr : ptr + n] = all_idx.T
        self.queue_ptr[0] = (ptr + n) % size
