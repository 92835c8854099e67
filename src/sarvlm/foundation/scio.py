"""SCIO, Self-Consistent Iterative Optimization (paper 004 §3.4, Algorithm 1): phases 2 and 3.

Phase 1 is ordinary pretraining (ITC + ITM + MLM on the full texts; :mod:`.pretrain`).

Phase 2, screening (:func:`screen`): for every image ``v`` and each fragment ``p_j`` of its text
``t``, with ``t^(-j)`` the text without ``p_j``:

- ``ΔL_ITC = L_ITC(v, t^(-j)) − L_ITC(v, t)`` (Eq. 10), where ``L_ITC(v, x)`` is the image-to-text
  InfoNCE loss of ``x`` against the full texts of all other images (the bank), at the model's
  temperature;
- ``Δs_ITM = s(v, t^(-j)) − s(v, t)`` (Eq. 11), ``s`` the ITM match probability.

A fragment is dropped when ``ΔL_ITC < −itc_margin`` and ``Δs_ITM > itm_margin`` (margins 0 = the
paper's rule). At least one fragment of every text is kept. The fragment-alone ITC similarity and
ITM probability are recorded as well (they are what a reader looks at first). In phase 2 the
dropped fragments are excluded from the MLM targets; ITC and ITM still see the full text.

Phase 3, reconstruction (:func:`reconstruct`): each dropped fragment's value is replaced by as many
[MASK] tokens as it had, inside the kept context; the image-grounded MLM head fills them in
(argmax, special tokens excluded). The reconstruction is accepted only when the text with it beats
the original text on both ITC (lower loss, Eq. 14) and ITM (higher probability, Eq. 15);
otherwise the fragment stays dropped. Training then continues on the refined texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch

from sarvlm.core.progress import track
from sarvlm.foundation.data import KlipItem, render_fragment


@dataclass
class FragmentDecision:
    """One (sample, field) line of ``scio/fragments.jsonl``."""

    id: str
    field: str
    index: int
    itc: float  # cosine similarity of the fragment alone with the image (ITC space)
    itm: float  # ITM match probability of the fragment alone
    delta_itc: float  # Eq. 10
    delta_itm: float  # Eq. 11
    # proofreading against the field's other values in the data set (rule "alternatives"): own − best other
    alt_itc: float | None = None  # ITC similarity of the fragment alone minus that of the best other value
    alt_itm: float | None = None  # ITM probability of the fragment alone minus that of the same best other value
    alternative: str | None = None  # that best other value
    action: str = "kept"  # kept | dropped | reconstructed
    original: str = ""
    reconstructed: str | None = None
    recon_delta_itc: float | None = None  # Eq. 14 (vs the original text)
    recon_delta_itm: float | None = None  # Eq. 15
    corrupted: bool | None = None  # ground truth when the records carry it (synthetic world)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        return d


@torch.no_grad()
def _image_embeds(model, images: torch.Tensor, index: Sequence[int], device) -> tuple[torch.Tensor, torch.Tensor]:
    return model.encode_image(images[list(index)].to(device))


@torch.no_grad()
def text_features(model, texts: Sequence[str], device, chunk: int = 256) -> torch.Tensor:
    """Unit ITC features ``(len(texts), embed_dim)`` of texts, in chunks."""
    out = []
    for s in range(0, len(texts), chunk):
        ids, att = model.tokenize(list(texts[s : s + chunk]), device)
        out.append(model.encode_text(ids, att).float())
    return torch.cat(out) if out else torch.empty(0, model.config.embed_dim)


@torch.no_grad()
def bank_logsumexp(image_feats: torch.Tensor, bank: torch.Tensor, temp: float, chunk: int = 1024) -> torch.Tensor:
    """``(N,)``: ``log Σ_{k≠i} exp(s(v_i, bank_k)/τ)`` -- the negatives of each image's ITC loss."""
    out = []
    for s in range(0, image_feats.shape[0], chunk):
        sim = image_feats[s : s + chunk] @ bank.T / temp
        rows = torch.arange(sim.shape[0])
        sim[rows, rows + s] = float("-inf")
        out.append(torch.logsumexp(sim, dim=1))
    return torch.cat(out)


def itc_loss_against_bank(sim: torch.Tensor, neg_lse: torch.Tensor, temp: float) -> torch.Tensor:
    """``L_ITC(v, x) = −a + log(e^a + Σ_neg)`` with ``a = s(v, x)/τ``; ``sim`` and ``neg_lse`` broadcast."""
    a = sim / temp
    return -a + torch.logaddexp(a, neg_lse)


@torch.no_grad()
def _scores(model, item_index: Sequence[int], texts: Sequence[str], image_embeds_by_item, image_feat_by_item, device):
    """ITC similarity and ITM probability of each text with its item's image."""
    ids, att = model.tokenize(list(texts), device)
    tf = model.encode_text(ids, att).float()
    emb = torch.stack([image_embeds_by_item[i] for i in item_index])
    feat = torch.stack([image_feat_by_item[i] for i in item_index]).float()
    itm = model.itm_probability(ids, att, emb).float()
    return (tf * feat).sum(-1), itm


@torch.no_grad()
def screen(
    model,
    items: Sequence[KlipItem],
    images: torch.Tensor,
    itc_margin: float = 0.0,
    itm_margin: float = 0.0,
    chunk: int = 256,
    device: torch.device | str = "cpu",
    rule: str = "leave_one_out",
    use_itm: bool = True,
) -> tuple[list[list[FragmentDecision]], list[list[bool]]]:
    """Phase 2 over all items. Returns per-item decisions and keep masks (``True`` = kept).

    ``rule``: ``leave_one_out`` drops on Eq. 10/11 (the paper); ``alternatives`` drops a fragment when
    another value of the same field, taken from the other texts of the data set, matches the image
    better by more than ``itc_margin`` in ITC similarity and (``use_itm``) by more than ``itm_margin``
    in ITM probability. Both sets of statistics are computed and recorded either way.
    """
    if rule not in ("leave_one_out", "alternatives"):
        raise ValueError(f"unknown SCIO screening rule {rule!r}")
    model.eval()
    temp = float(model.itc.clamped_temp())
    full_texts = [it.text() for it in items]
    bank = text_features(model, full_texts, device, chunk)
    feats = []
    for s in range(0, len(items), chunk):
        feats.append(_image_embeds(model, images, range(s, min(s + chunk, len(items))), device)[1].float())
    image_feats = torch.cat(feats)
    neg_lse = bank_logsumexp(image_feats, bank, temp)

    alternatives = _best_alternatives(model, items, image_feats, device, chunk)
    decisions: list[list[FragmentDecision]] = []
    keeps: list[list[bool]] = []
    per_item = 1 + 3 * max(len(it.fields) for it in items)
    group = max(1, chunk // per_item)
    for start in track(range(0, len(items), group), description="SCIO screening", total=-(-len(items) // group)):
        idx = list(range(start, min(start + group, len(items))))
        emb, feat = _image_embeds(model, images, idx, device)
        emb_by = {i: emb[k] for k, i in enumerate(idx)}
        feat_by = {i: feat[k] for k, i in enumerate(idx)}
        owners, texts, roles = [], [], []
        for i in idx:
            it = items[i]
            n = len(it.fields)
            owners.append(i)
            texts.append(full_texts[i])
            roles.append(("full", -1))
            for j in range(n):
                alt = alternatives[i][j] or it.values[j]  # no other value: compare with itself (Δ = 0)
                owners += [i, i, i]
                texts += [
                    it.text(keep=[k != j for k in range(n)]),
                    render_fragment(it.fields[j], it.values[j]),
                    render_fragment(it.fields[j], alt),
                ]
                roles += [("without", j), ("alone", j), ("alternative", j)]
        sims, itms = _scores(model, owners, texts, emb_by, feat_by, device)
        losses = itc_loss_against_bank(sims, neg_lse[owners].to(sims.device), temp)
        k = 0
        for i in idx:
            it = items[i]
            full_loss, full_itm = float(losses[k]), float(itms[k])
            k += 1
            rows = []
            for j in range(len(it.fields)):
                without_loss, without_itm = float(losses[k]), float(itms[k])
                alone_sim, alone_itm = float(sims[k + 1]), float(itms[k + 1])
                alt_itc, alt_itm = alone_sim - float(sims[k + 2]), alone_itm - float(itms[k + 2])
                k += 3
                d_itc, d_itm = without_loss - full_loss, without_itm - full_itm
                if rule == "leave_one_out":
                    drop = d_itc < -itc_margin and d_itm > itm_margin
                else:
                    drop = alt_itc < -itc_margin and (not use_itm or alt_itm < -itm_margin)
                rows.append(
                    FragmentDecision(
                        id=it.id,
                        field=it.fields[j] or f"sentence_{j + 1}",
                        index=j,
                        itc=round(alone_sim, 6),
                        itm=round(alone_itm, 6),
                        delta_itc=round(d_itc, 6),
                        delta_itm=round(d_itm, 6),
                        alt_itc=round(alt_itc, 6) if alternatives[i][j] else None,
                        alt_itm=round(alt_itm, 6) if alternatives[i][j] else None,
                        alternative=alternatives[i][j],
                        action="dropped" if drop else "kept",
                        original=it.values[j],
                    )
                )
            if all(r.action == "dropped" for r in rows):  # never empty a text: keep its best-matching fragment
                max(rows, key=lambda r: r.itm).action = "kept"
            decisions.append(rows)
            keeps.append([r.action == "kept" for r in rows])
    return decisions, keeps


@torch.no_grad()
def _best_alternatives(
    model, items: Sequence[KlipItem], image_feats: torch.Tensor, device, chunk: int
) -> list[list[str | None]]:
    """For each item's fragment j: the other value of the same field (among all items' values) whose
    fragment alone is most ITC-similar to the item's image; ``None`` when the field has no other value.

    One text pass per distinct (field, value) and one ``(N, values)`` matmul per field, so the cost is
    that of encoding the data set's distinct fragments, not N × values passes.
    """
    by_field: dict[str, list[str]] = {}
    for it in items:
        for f, v in zip(it.fields, it.values):
            if not f:  # sentence captions: no field to compare within
                continue
            by_field.setdefault(f, [])
            if v not in by_field[f]:
                by_field[f].append(v)
    best: dict[str, torch.Tensor] = {}
    order: dict[str, list[str]] = {}
    for f, values in by_field.items():
        values = sorted(values)
        order[f] = values
        if len(values) < 2:
            continue
        feats = text_features(model, [render_fragment(f, v) for v in values], device, chunk)
        best[f] = (image_feats.to(feats.device) @ feats.T).float()  # (N, values)
    out: list[list[str | None]] = []
    for i, it in enumerate(items):
        row: list[str | None] = []
        for f, v in zip(it.fields, it.values):
            if f not in best:
                row.append(None)
                continue
            sims = best[f][i].clone()
            sims[order[f].index(v)] = float("-inf")
            row.append(order[f][int(sims.argmax())])
        out.append(row)
    return out


@torch.no_grad()
def _fill_masks(model, text: str, emb: torch.Tensor, device) -> list[int]:
    ids, att = model.tokenize([text], device)
    logits = model.mlm_logits(ids, att, emb[None]).float()[0]
    special = [v for k, v in model.ids.items()] + [model.tokenizer.unk_token_id]
    logits[:, special] = float("-inf")
    pos = (ids[0] == model.ids["mask"]).nonzero().view(-1)
    return logits[pos].argmax(-1).tolist()


@torch.no_grad()
def reconstruct(
    model,
    items: Sequence[KlipItem],
    images: torch.Tensor,
    decisions: list[list[FragmentDecision]],
    keeps: list[list[bool]],
    device: torch.device | str = "cpu",
    chunk: int = 256,
) -> list[KlipItem]:
    """Phase 3: try to regenerate every dropped fragment; returns the refined items.

    Updates ``decisions`` in place (``reconstructed`` text, Eq. 14/15 deltas, action).
    """
    model.eval()
    temp = float(model.itc.clamped_temp())
    full_texts = [it.text() for it in items]
    bank = text_features(model, full_texts, device, chunk)
    refined: list[KlipItem] = []
    todo = [i for i, keep in enumerate(keeps) if not all(keep)]
    image_feats = {}
    for i in todo:
        image_feats[i] = _image_embeds(model, images, [i], device)
    if todo:
        # negatives of image i: every other image's full text
        sims_all = torch.cat([image_feats[i][1].float() for i in todo]) @ bank.T / temp
        for r, i in enumerate(todo):
            sims_all[r, i] = float("-inf")
        lse = torch.logsumexp(sims_all, dim=1)
    lse_by = {i: lse[r] for r, i in enumerate(todo)} if todo else {}
    accepted: dict[int, dict[int, str]] = {}
    mask_tok = model.tokenizer.mask_token
    for i in track(todo, description="SCIO reconstruction", total=len(todo)):
        it = items[i]
        emb, feat = image_feats[i]
        keep = keeps[i]
        candidates = {}
        for j in (j for j, k in enumerate(keep) if not k):
            n_tok = max(1, len(model.tokenizer(it.values[j], add_special_tokens=False)["input_ids"]))
            masks = " ".join([mask_tok] * n_tok)
            ctx = [k == j or keep[k] for k in range(len(keep))]
            text = it.text(keep=ctx, replace={j: masks})
            new_ids = _fill_masks(model, text, emb[0], device)
            value = model.tokenizer.decode(new_ids, skip_special_tokens=True).strip()
            candidates[j] = value
        # score every candidate text against the original text (Eq. 14, 15)
        texts = [full_texts[i]] + [
            it.text(keep=[k == j or keep[k] for k in range(len(keep))], replace={j: v}) for j, v in candidates.items()
        ]
        ids, att = model.tokenize(texts, device)
        tf = model.encode_text(ids, att).float()
        sims = tf @ feat[0].float()
        losses = itc_loss_against_bank(sims, lse_by[i], temp)
        itms = model.itm_probability(ids, att, emb.expand(len(texts), -1, -1)).float()
        for r, (j, v) in enumerate(candidates.items(), start=1):
            d_itc, d_itm = float(losses[r] - losses[0]), float(itms[r] - itms[0])
            dec = decisions[i][j]
            dec.reconstructed = v
            dec.recon_delta_itc, dec.recon_delta_itm = round(d_itc, 6), round(d_itm, 6)
            if v and d_itc < 0 and d_itm > 0:
                dec.action = "reconstructed"
                accepted.setdefault(i, {})[j] = v
    for i, it in enumerate(items):
        keep = keeps[i]
        acc = accepted.get(i, {})
        fields = [f for j, f in enumerate(it.fields) if keep[j] or j in acc]
        values = [acc.get(j, v) for j, v in enumerate(it.values) if keep[j] or j in acc]
        refined.append(
            KlipItem(id=it.id, image=it.image, fields=fields, values=values, label=it.label, record=it.record)
        )
    return refined


def attach_truth(decisions: list[list[FragmentDecision]], items: Sequence[KlipItem]) -> bool:
    """Mark ``corrupted`` from ``meta.geovl_corruptions`` when the records carry it; True if any did."""
    any_truth = False
    for rows, it in zip(decisions, items):
        meta = it.record.meta if it.record is not None else {}
        if "geovl_corruptions" not in meta:
            continue
        any_truth = True
        bad = {c["field"] for c in meta["geovl_corruptions"]}
        for r in rows:
            r.corrupted = r.field in bad
    return any_truth


def screening_quality(decisions: list[list[FragmentDecision]]) -> dict:
    """Precision/recall/F1 of phase-2 drops against the recorded corruptions (fragments with truth only)."""
    tp = fp = fn = tn = 0
    for rows in decisions:
        for r in rows:
            if r.corrupted is None:
                continue
            flagged = r.action != "kept"
            tp += flagged and r.corrupted
            fp += flagged and not r.corrupted
            fn += (not flagged) and r.corrupted
            tn += (not flagged) and not r.corrupted
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    base = (tp + fn) / n if n else None  # precision of flagging at random
    return {
        "fragments": n,
        "corrupted": tp + fn,
        "dropped": tp + fp,
        "true_positives": tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "chance_precision": base,
    }
