"""Image-text retrieval with a KLIP model (paper 004 Table 6): ITC top-k, then ITM re-rank.

Metric definitions are BLIP's ``itm_eval`` (used by FUSAR-KLIP's released ``train_retrieval.py``):

- ``txt_r1/5/10``: image -> text. An image is a hit at K when the best-ranked of its texts is
  within the top K texts;
- ``img_r1/5/10``: text -> image. A text is a hit when its image is within the top K images;
- ``txt_r_mean``, ``img_r_mean`` and ``r_mean`` (the mean of the two means). Percentages.

Ties count against the truth (an item scoring the same as the true one ranks above it).
``sarvlm.metrics.retrieval.retrieval_scores`` uses the same definitions on one matrix (tested to agree).

Scores: the ITC similarity matrix ``(images, texts)`` is computed in chunks; for every image the
``k`` best texts by ITC (and for every text the ``k`` best images) are re-scored with the ITM
head; re-ranked candidates get ``ITM logit-score + large offset`` so they stay above the
others. ITM passes: ``k × (images + texts)``, never images × texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def recall_at_k(
    scores_i2t: np.ndarray, scores_t2i: np.ndarray, txt2img: Sequence[int], ks=(1, 5, 10)
) -> dict[str, Any]:
    """BLIP's ``itm_eval`` recall (percent) from score matrices ``(images, texts)`` and ``(texts, images)``."""
    s_i2t = np.asarray(scores_i2t, dtype=np.float64)
    s_t2i = np.asarray(scores_t2i, dtype=np.float64)
    t2i = np.asarray(txt2img, dtype=np.int64)
    n_img, n_txt = s_i2t.shape
    if s_t2i.shape != (n_txt, n_img) or t2i.shape != (n_txt,):
        raise ValueError("retrieval: score matrices and text->image labels disagree in size")
    # image -> text: rank of the best of its texts
    ranks_i = np.full(n_img, n_txt, dtype=np.int64)
    for j in range(n_txt):
        i = t2i[j]
        r = int((s_i2t[i] >= s_i2t[i, j]).sum() - 1)
        ranks_i[i] = min(ranks_i[i], r)
    true_t = s_t2i[np.arange(n_txt), t2i]
    ranks_t = (s_t2i >= true_t[:, None]).sum(1) - 1
    out: dict[str, Any] = {}
    for k in ks:
        out[f"txt_r{k}"] = 100.0 * float((ranks_i < k).mean())
        out[f"img_r{k}"] = 100.0 * float((ranks_t < k).mean())
    out["txt_r_mean"] = float(np.mean([out[f"txt_r{k}"] for k in ks]))
    out["img_r_mean"] = float(np.mean([out[f"img_r{k}"] for k in ks]))
    out["r_mean"] = (out["txt_r_mean"] + out["img_r_mean"]) / 2
    out["image_to_text"] = {f"R@{k}": out[f"txt_r{k}"] for k in ks}
    out["text_to_image"] = {f"R@{k}": out[f"img_r{k}"] for k in ks}
    return out


def chance_recall(n_img: int, n_txt: int, texts_per_image: float = 1.0, ks=(1, 5, 10)) -> dict[str, float]:
    """Expected recall of random scores (1 text per image: K/N both ways)."""
    return {
        **{f"txt_r{k}": 100.0 * min(1.0, 1 - _none_in_top(n_txt, texts_per_image, k)) for k in ks},
        **{f"img_r{k}": 100.0 * min(1.0, k / n_img) for k in ks},
    }


def _none_in_top(n: int, good: float, k: int) -> float:
    p = 1.0
    for m in range(min(k, n)):
        p *= max(0.0, (n - good - m) / (n - m))
    return p


@torch.no_grad()
def itc_matrix(image_feats: torch.Tensor, text_feats: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``(images, texts)`` cosine similarities, computed in row chunks (float32)."""
    rows = [image_feats[s : s + chunk].float() @ text_feats.float().T for s in range(0, image_feats.shape[0], chunk)]
    return torch.cat(rows) if rows else torch.empty(0, text_feats.shape[0])


@torch.no_grad()
def retrieve(
    model,
    images: torch.Tensor,
    texts: Sequence[str],
    txt2img: Sequence[int],
    k: int = 16,
    chunk: int = 256,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Full retrieval: returns metrics for ITC alone and ITC + ITM re-rank, plus the ITC matrix."""
    from sarvlm.core.progress import track

    model.eval()
    embeds_cpu, feats = [], []
    for s in range(0, images.shape[0], chunk):
        e, f = model.encode_image(images[s : s + chunk].to(device))
        embeds_cpu.append(e.cpu())
        feats.append(f.float())
    image_embeds = torch.cat(embeds_cpu)
    image_feats = torch.cat(feats)
    from sarvlm.foundation.scio import text_features

    text_feats = text_features(model, list(texts), device, chunk)
    sim = itc_matrix(image_feats, text_feats).cpu()
    n_img, n_txt = sim.shape
    k_t, k_i = min(k, n_txt), min(k, n_img)
    rerank_i2t = sim.clone()
    rerank_t2i = sim.T.clone().contiguous()
    # image -> text: ITM on each image's top-k texts
    offset = 100.0
    top_t = sim.topk(k_t, dim=1).indices  # (n_img, k)
    ids_all, att_all = model.tokenize(list(texts), "cpu")
    pairs_i = [(i, int(j)) for i in range(n_img) for j in top_t[i]]
    top_i = sim.T.topk(k_i, dim=1).indices  # (n_txt, k)
    pairs_t = [(int(i), j) for j in range(n_txt) for i in top_i[j]]
    scores: dict[tuple[int, int], float] = {}
    todo = sorted(set(pairs_i) | set(pairs_t))
    it = range(0, len(todo), chunk)
    for s in track(it, description="ITM re-rank", total=len(it)) if progress else it:
        batch = todo[s : s + chunk]
        ii = torch.tensor([p[0] for p in batch])
        jj = torch.tensor([p[1] for p in batch])
        ids, att = ids_all[jj], att_all[jj]
        cols = int(att.sum(1).max())
        logits = model.itm_logits(ids[:, :cols].to(device), att[:, :cols].to(device), image_embeds[ii].to(device))
        score = (logits[:, 1] - logits[:, 0]).float().cpu()
        for p, v in zip(batch, score.tolist()):
            scores[p] = v
    for i, j in pairs_i:
        rerank_i2t[i, j] = offset + scores[(i, j)]
    for i, j in pairs_t:
        rerank_t2i[j, i] = offset + scores[(i, j)]
    itc_metrics = recall_at_k(sim.numpy(), sim.T.numpy(), txt2img)
    itm_metrics = recall_at_k(rerank_i2t.numpy(), rerank_t2i.numpy(), txt2img)
    return {
        "itc": itc_metrics,
        "itc+itm": itm_metrics,
        "k": k,
        "itm_pairs": len(todo),
        "similarity": sim.numpy(),
        "images": n_img,
        "texts": n_txt,
    }
