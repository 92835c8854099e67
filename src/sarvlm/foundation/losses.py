"""KLIP's three objectives (paper 004 Eq. 4-7), in BLIP/ALBEF form.

- :class:`ContrastiveLoss` -- ITC: symmetric InfoNCE of online features against the momentum
  features of the batch and the queue, with soft targets
  ``alpha * softmax(momentum similarities) + (1 - alpha) * ground truth`` (same-sample entries in
  the queue count as positives);
- :func:`sample_hard_negatives` -- ITM negatives drawn from ``softmax(similarity)`` with
  positives zeroed, one negative image per text and one negative text per image;
- :func:`itm_loss` -- cross-entropy on B positives + 2B negatives;
- :func:`mask_tokens` -- MLM inputs: 15 % of maskable tokens chosen, of which 80 % become
  [MASK], 10 % a random token and 10 % stay (ALBEF/BERT).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn


class ContrastiveLoss(nn.Module):
    """ITC with a learnable temperature, a momentum queue and soft targets.

    Shapes: ``image_feat``/``text_feat`` ``(B, D)`` L2-normalised online features;
    ``image_feat_all``/``text_feat_all`` ``(D, B + Q)`` momentum features of the batch then the
    queue; ``idx`` ``(B,)`` sample indices; ``idx_all`` ``(B + Q,)`` (−1 for empty queue slots).
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        self.temp = nn.Parameter(torch.tensor(float(temperature)))

    def clamped_temp(self) -> torch.Tensor:
        """The temperature limited to [0.001, 0.5] (not in place: several forwards may share one backward)."""
        return self.temp.clamp(0.001, 0.5)

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep the parameter itself in range; the trainer calls this after each optimiser step (as BLIP does)."""
        self.temp.clamp_(0.001, 0.5)

    def forward(
        self,
        image_feat: torch.Tensor,
        text_feat: torch.Tensor,
        image_feat_m: torch.Tensor,
        text_feat_m: torch.Tensor,
        image_feat_all: torch.Tensor,
        text_feat_all: torch.Tensor,
        idx: torch.Tensor,
        idx_all: torch.Tensor,
        alpha: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(loss, sim_i2t, sim_t2i)``; the similarities ``(B, B + Q)`` are online vs all."""
        temp = self.clamped_temp()
        with torch.no_grad():
            pos = (idx.view(-1, 1) == idx_all.view(1, -1)).float()
            sim_targets = pos / pos.sum(1, keepdim=True)
            sim_i2t_m = image_feat_m @ text_feat_all / temp
            sim_t2i_m = text_feat_m @ image_feat_all / temp
            i2t_targets = alpha * F.softmax(sim_i2t_m, dim=1) + (1 - alpha) * sim_targets
            t2i_targets = alpha * F.softmax(sim_t2i_m, dim=1) + (1 - alpha) * sim_targets
        sim_i2t = image_feat @ text_feat_all / temp
        sim_t2i = text_feat @ image_feat_all / temp
        loss_i2t = -(F.log_softmax(sim_i2t, dim=1) * i2t_targets).sum(1).mean()
        loss_t2i = -(F.log_softmax(sim_t2i, dim=1) * t2i_targets).sum(1).mean()
        return (loss_i2t + loss_t2i) / 2, sim_i2t, sim_t2i


@torch.no_grad()
def sample_hard_negatives(
    sim_i2t: torch.Tensor, sim_t2i: torch.Tensor, idx: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one hard negative per row from the in-batch part ``(B, B)`` of the similarities.

    Returns ``(neg_image_for_text, neg_text_for_image)``, each ``(B,)`` batch indices. Rows are
    sampled from ``softmax(sim)`` with every same-sample entry set to zero, so a negative is
    never a positive; a row with no negative left (all one sample) falls back to uniform over others.
    """
    same = idx.view(-1, 1) == idx.view(1, -1)
    b = idx.shape[0]

    def draw(sim: torch.Tensor) -> torch.Tensor:
        w = F.softmax(sim.float(), dim=1) + 1e-5
        w = w.masked_fill(same, 0.0)
        empty = w.sum(1) <= 0
        if empty.any():
            w[empty] = (~torch.eye(b, dtype=torch.bool, device=w.device))[empty].float()
        return torch.multinomial(w, 1, generator=generator).view(-1)

    return draw(sim_t2i[:, :b]), draw(sim_i2t[:, :b])


def itm_loss(logits: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cross-entropy of ITM logits ``(B + M, 2)`` ordered [B positives, M negatives] (Eq. 5; BLIP: M = 2B,
    plus one fragment-swap negative per text when ``train.itm_fragment_negatives`` is on)."""
    n_neg = logits.shape[0] - batch_size
    labels = torch.cat([torch.ones(batch_size), torch.zeros(n_neg)]).long().to(logits.device)
    return F.cross_entropy(logits, labels)


def mask_tokens(
    input_ids: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Iterable[int],
    probability: float = 0.15,
    generator: torch.Generator | None = None,
    protect: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT/ALBEF masking. Returns ``(masked_ids, labels)``, labels −100 where not chosen.

    ``protect`` ``(B, L)`` bool marks further tokens never to choose (e.g. SCIO's dropped fragments,
    which phase 2 excludes from the MLM targets).
    """
    ids = input_ids.clone()
    labels = input_ids.clone()
    dev = ids.device
    chosen = torch.rand(ids.shape, generator=generator, device="cpu").to(dev) < probability
    for s in special_ids:
        chosen &= ids != s
    if protect is not None:
        chosen &= ~protect
    labels[~chosen] = -100
    as_mask = (torch.rand(ids.shape, generator=generator, device="cpu").to(dev) < 0.8) & chosen
    ids[as_mask] = mask_token_id
    as_random = (torch.rand(ids.shape, generator=generator, device="cpu").to(dev) < 0.5) & chosen & ~as_mask
    random_words = torch.randint(vocab_size, ids.shape, generator=generator, device="cpu").to(dev)
    ids[as_random] = random_words[as_random]
    return ids, labels


def fragment_itc_loss(
    image_feat: torch.Tensor,
    fragment_feat: torch.Tensor,
    fragment_row: torch.Tensor,
    fragment_field: torch.Tensor,
    fragment_value: torch.Tensor,
    temp: torch.Tensor,
) -> torch.Tensor:
    """Fragment-level ITC: each image against the batch's fragments of one field at a time.

    ``image_feat`` ``(B, D)`` and ``fragment_feat`` ``(M, D)`` unit features; ``fragment_row`` ``(M,)``
    the batch row each fragment comes from, ``fragment_field`` ``(M,)`` its field id and
    ``fragment_value`` ``(M,)`` an id equal for equal (field, text) pairs. For every field and every
    image holding it, image -> fragments is InfoNCE over that field's fragments in the batch with
    every fragment of the same value as a positive (targets spread evenly over them), and
    fragment -> images likewise over the images; the loss is the mean of both directions over all
    (image, field) and (fragment) rows. Self-supervised: it only uses the captions as written.
    """
    losses = []
    for field in fragment_field.unique().tolist():
        cols = (fragment_field == field).nonzero().view(-1)
        rows = fragment_row[cols]
        values = fragment_value[cols]
        sim = image_feat[rows] @ fragment_feat[cols].T / temp  # (Mf images, Mf fragments); row k = image of cols[k]
        same = (values.view(-1, 1) == values.view(1, -1)).float()
        targets = same / same.sum(1, keepdim=True)
        losses.append(-(F.log_softmax(sim, dim=1) * targets).sum(1))
        losses.append(-(F.log_softmax(sim.T, dim=1) * targets).sum(1))
    return torch.cat(losses).mean()
