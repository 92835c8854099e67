"""Fragment-level training signals for KLIP: fragment dropout and fragment-swap ITM negatives.

Both work on tokenised batches whose every token carries the index of the caption fragment it
belongs to (``frag``, −1 for [CLS]/[SEP]/padding; :func:`sarvlm.foundation.pretrain.encode_fragments`),
and both are self-supervised: they never read which fragments are wrong.

- :func:`drop_fragments` -- each text keeps each fragment with probability ``keep`` (at least one):
  ITC/ITM/MLM then see texts of 1 to 8 fragments, so a single fragment is an in-distribution text
  (zero-shot prompts and SCIO's fragment-alone scores are short texts) and the image has to be
  matched by every fragment, not only by the one or two that make a whole caption unique.
- :func:`swap_fragment_negatives` -- for each text, one fragment is replaced by the same field's
  fragment of another text in the batch that says something else: an ITM negative that differs
  from the positive in one fragment only (BLIP's negatives are whole other texts, which nothing
  in SCIO's screening resembles). It teaches the image-grounded encoder what a wrong fragment in
  an otherwise right caption looks like -- exactly the question SCIO's phase 2 asks.

Measured effect on the synthetic world: docs/bench/foundation.md ("What made SCIO and zero-shot learn").
"""

from __future__ import annotations

import torch


def _pack(rows: list[torch.Tensor], pad: float | int, length: int, dtype: torch.dtype) -> torch.Tensor:
    out = torch.full((len(rows), length), pad, dtype=dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def drop_fragments(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    frag: torch.Tensor,
    keep: float,
    generator: torch.Generator,
    protect: torch.Tensor | None = None,
    pad_id: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Random fragment subsets of a batch, re-packed to the left.

    ``input_ids``, ``attention_mask``, ``frag`` (and ``protect``) ``(B, L)``; each fragment of each
    row is kept with probability ``keep`` (drawn from ``generator``, on CPU), and a row that would
    lose every fragment keeps one chosen uniformly. Returns the same four tensors ``(B, L')`` with
    ``L'`` the longest kept row; special tokens ([CLS], [SEP]) always stay.
    """
    b = input_ids.shape[0]
    n_frag = int(frag.max()) + 1 if frag.numel() and int(frag.max()) >= 0 else 0
    if keep >= 1.0 or n_frag == 0:
        return input_ids, attention_mask, frag, protect
    present = torch.zeros(b, n_frag, dtype=torch.bool)
    for j in range(n_frag):
        present[:, j] = (frag == j).any(1).cpu()
    draw = torch.rand(b, n_frag, generator=generator) < keep
    fallback = torch.randint(n_frag, (b,), generator=generator)
    kept = draw & present
    for i in range(b):
        if not kept[i].any():
            choices = present[i].nonzero().view(-1)
            kept[i, choices[int(fallback[i]) % len(choices)]] = True
    ids_rows, att_rows, frag_rows, prot_rows = [], [], [], []
    for i in range(b):
        f = frag[i].cpu()
        tok = (attention_mask[i].cpu() > 0) & ((f < 0) | kept[i][f.clamp_min(0)])
        ids_rows.append(input_ids[i].cpu()[tok])
        att_rows.append(attention_mask[i].cpu()[tok])
        frag_rows.append(f[tok])
        if protect is not None:
            prot_rows.append(protect[i].cpu()[tok])
    length = max(len(r) for r in ids_rows)
    dev = input_ids.device
    out_prot = _pack(prot_rows, False, length, torch.bool).to(dev) if protect is not None else None
    return (
        _pack(ids_rows, pad_id, length, input_ids.dtype).to(dev),
        _pack(att_rows, 0, length, attention_mask.dtype).to(dev),
        _pack(frag_rows, -1, length, frag.dtype).to(dev),
        out_prot,
    )


def swap_fragment_negatives(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    frag: torch.Tensor,
    field_of: torch.Tensor,
    idx: torch.Tensor,
    generator: torch.Generator,
    pad_id: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One negative text per row: one of its fragments swapped for a different one of the same field.

    ``input_ids``, ``attention_mask``, ``frag`` ``(B, L)``; ``field_of`` ``(B, F)`` the field id of
    each row's fragment ``j`` (−1 where absent; the same field has the same id in every row);
    ``idx`` ``(B,)`` sample indices (rows of the same sample are never donors). For row ``i`` a
    fragment ``j`` and a donor row ``k`` are drawn uniformly among the pairs whose fragment of the
    same field has other tokens. Returns ``(neg_ids, neg_att, rows)``: the ``(R, L')`` negative
    texts and the ``(R,)`` row each belongs to (rows with no possible swap get none).
    """
    b = input_ids.shape[0]
    # plain Python lists: a batch is a few thousand tokens, and per-element tensor ops would cost ~70 ms a step
    ids_l, att_l, frag_l = input_ids.tolist(), attention_mask.tolist(), frag.tolist()
    field_l, idx_l = field_of.tolist(), idx.tolist()
    spans: list[dict[int, list[int]]] = []
    for i in range(b):
        row: dict[int, list[int]] = {}
        for tok, a, j in zip(ids_l[i], att_l[i], frag_l[i]):
            if a and j >= 0:
                row.setdefault(j, []).append(tok)
        spans.append(row)
    by_field = [{f: j for j, f in enumerate(field_l[k]) if f >= 0} for k in range(b)]
    out_rows, out_ids = [], []
    order = torch.rand(b, generator=generator).tolist()  # one draw per row: the stream does not depend on the data
    for i in range(b):
        options = []
        for j, mine in spans[i].items():
            field = field_l[i][j] if j < len(field_l[i]) else -1
            if field < 0:
                continue
            for k in range(b):
                if idx_l[k] == idx_l[i]:
                    continue
                theirs = spans[k].get(by_field[k].get(field, -1))
                if theirs is not None and theirs != mine:
                    options.append((j, theirs))
        if not options:
            continue
        j, theirs = options[min(int(order[i] * len(options)), len(options) - 1)]
        toks = [t for t, a in zip(ids_l[i], att_l[i]) if a]
        owner = [f for f, a in zip(frag_l[i], att_l[i]) if a]
        first = owner.index(j)
        last = len(owner) - 1 - owner[::-1].index(j)
        out_ids.append(torch.tensor(toks[:first] + theirs + toks[last + 1 :], dtype=input_ids.dtype))
        out_rows.append(i)
    dev = input_ids.device
    if not out_rows:
        empty = torch.empty(0, 1, dtype=input_ids.dtype, device=dev)
        return empty, empty.clone(), torch.empty(0, dtype=torch.long, device=dev)
    length = max(len(r) for r in out_ids)
    neg_ids = _pack(out_ids, pad_id, length, input_ids.dtype)
    neg_att = _pack([torch.ones(len(r), dtype=attention_mask.dtype) for r in out_ids], 0, length, attention_mask.dtype)
    return neg_ids.to(dev), neg_att.to(dev), torch.tensor(out_rows, dtype=torch.long, device=dev)
