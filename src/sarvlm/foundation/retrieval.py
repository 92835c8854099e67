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


class ScoreRows:
    """Row access to a score matrix ``(n, m)`` with some entries overridden, without copying it.

    ``base`` is any 2-D array (a float32 matrix, its ``.T`` view, or an ``np.memmap``);
    ``candidates`` ``(n, k)`` column indices and ``candidate_scores`` ``(n, k)`` replace those
    entries (the ITM re-rank). :meth:`rows` returns a copy of the requested rows only: float32, or
    float64 with overrides (they sit above an offset of 100, where float32 keeps only ~1e-5 of them).
    """

    def __init__(
        self, base: np.ndarray, candidates: np.ndarray | None = None, candidate_scores: np.ndarray | None = None
    ) -> None:
        self.base = base
        self.shape = tuple(base.shape)
        self.candidates = candidates
        self.candidate_scores = candidate_scores

    def rows(self, index: np.ndarray) -> np.ndarray:
        if self.candidates is None:
            return np.array(self.base[index], dtype=np.float32)
        out = np.array(self.base[index], dtype=np.float64)
        np.put_along_axis(out, self.candidates[index], self.candidate_scores[index].astype(np.float64), axis=1)
        return out


def _as_rows(scores) -> ScoreRows:
    return scores if isinstance(scores, ScoreRows) else ScoreRows(np.asarray(scores))


def recall_at_k(scores_i2t, scores_t2i, txt2img: Sequence[int], ks=(1, 5, 10), chunk: int = 1024) -> dict[str, Any]:
    """BLIP's ``itm_eval`` recall (percent) from scores ``(images, texts)`` and ``(texts, images)``.

    Either may be an array (``sim.T`` views are fine) or a :class:`ScoreRows`; rows are read
    ``chunk`` at a time, so memory beyond the inputs is ``chunk × max(images, texts)`` floats.
    """
    s_i2t, s_t2i = _as_rows(scores_i2t), _as_rows(scores_t2i)
    t2i = np.asarray(txt2img, dtype=np.int64)
    n_img, n_txt = s_i2t.shape
    if s_t2i.shape != (n_txt, n_img) or t2i.shape != (n_txt,):
        raise ValueError("retrieval: score matrices and text->image labels disagree in size")
    # image -> text: rank of the best of its texts (ties count against the truth)
    ranks_i = np.full(n_img, n_txt, dtype=np.int64)
    for s in range(0, n_txt, chunk):
        js = np.arange(s, min(n_txt, s + chunk))
        rows = s_i2t.rows(t2i[js])  # (len, n_txt): the row of each text's image
        true = rows[np.arange(len(js)), js]
        r = (rows >= true[:, None]).sum(1) - 1
        np.minimum.at(ranks_i, t2i[js], r)
    ranks_t = np.empty(n_txt, dtype=np.int64)
    for s in range(0, n_txt, chunk):
        js = np.arange(s, min(n_txt, s + chunk))
        rows = s_t2i.rows(js)  # (len, n_img)
        true = rows[np.arange(len(js)), t2i[js]]
        ranks_t[js] = (rows >= true[:, None]).sum(1) - 1
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
def itc_matrix(
    image_feats: torch.Tensor, text_feats: torch.Tensor, chunk: int = 4096, out: np.ndarray | None = None
) -> np.ndarray:
    """``(images, texts)`` float32 cosine similarities, computed ``chunk`` rows at a time straight into
    ``out`` (a new array, or e.g. an ``np.memmap`` of a ``.npy`` file), so the matrix exists once."""
    n_img, n_txt = image_feats.shape[0], text_feats.shape[0]
    if out is None:
        out = np.empty((n_img, n_txt), dtype=np.float32)
    t = text_feats.float().T
    for s in range(0, n_img, chunk):
        out[s : s + chunk] = (image_feats[s : s + chunk].float() @ t).cpu().numpy()
    return out


def _topk_rows(scores: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Column indices ``(n, k)`` of each row's ``k`` largest scores (best first), read ``chunk`` rows at a time."""
    n = scores.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, chunk):
        out[s : s + chunk] = torch.from_numpy(np.array(scores[s : s + chunk], dtype=np.float32)).topk(k, dim=1).indices
    return out


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
    similarity_out: np.ndarray | None = None,
) -> dict[str, Any]:
    """Full retrieval: returns metrics for ITC alone and ITC + ITM re-rank, plus the ITC matrix
    ``(images, texts)`` float32 -- the only N × N array it holds (written into ``similarity_out``,
    e.g. an ``np.memmap``, when given)."""
    from sarvlm.core.progress import track

    model.eval()
    embeds_cpu, feats = [], []
    for s in range(0, images.shape[0], chunk):
        e, f = model.encode_image(images[s : s + chunk].to(device))
        embeds_cpu.append(e.cpu())
        feats.append(f.float())
    image_embeds = torch.cat(embeds_cpu)
    image_feats = torch.cat(feats)
    del embeds_cpu, feats
    from sarvlm.foundation.scio import text_features

    text_feats = text_features(model, list(texts), device, chunk)
    n_img, n_txt = image_feats.shape[0], text_feats.shape[0]
    sim = itc_matrix(image_feats, text_feats, out=similarity_out)
    k_t, k_i = min(k, n_txt), min(k, n_img)
    # ITM re-rank of each image's top-k texts and each text's top-k images; the re-ranked scores
    # are kept as (n, k) overrides of the one ITC matrix (t2i is its transpose view), never as copies.
    offset = 100.0
    top_t = _topk_rows(sim, k_t)  # (n_img, k)
    top_i = _topk_rows(sim.T, k_i)  # (n_txt, k)
    ids_all, att_all = model.tokenize(list(texts), "cpu")
    pairs_i = [(i, int(j)) for i in range(n_img) for j in top_t[i]]
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
    # float64: ITM margins finer than float32's step at 100 (~8e-6) must still order the candidates
    itm_i2t = np.array([[offset + scores[(i, int(j))] for j in top_t[i]] for i in range(n_img)], dtype=np.float64)
    itm_t2i = np.array([[offset + scores[(int(i), j)] for i in top_i[j]] for j in range(n_txt)], dtype=np.float64)
    itc_metrics = recall_at_k(sim, sim.T, txt2img)
    itm_metrics = recall_at_k(ScoreRows(sim, top_t, itm_i2t), ScoreRows(sim.T, top_i, itm_t2i), txt2img)
    return {
        "itc": itc_metrics,
        "itc+itm": itm_metrics,
        "k": k,
        "itm_pairs": len(todo),
        "similarity": sim,
        # the re-rank as overrides of ``similarity`` (rows: images) and of its transpose (rows: texts)
        "candidates_i2t": top_t,
        "rerank_i2t": itm_i2t,
        "candidates_t2i": top_i,
        "rerank_t2i": itm_t2i,
        "images": n_img,
        "texts": n_txt,
    }
