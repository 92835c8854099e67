"""Image-text retrieval recall (FUSAR-KLIP Table 6: TXT R1/5/10, IMG R1/5/10, mean R)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def retrieval_scores(
    similarity: np.ndarray, text_to_image: Sequence[int], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, Any]:
    """Recall@K both ways from an (images, texts) similarity matrix.

    ``text_to_image[j]`` is the image index text ``j`` describes (several texts may share
    an image, as in COCO-style retrieval). Image->text: an image is a hit when any of its
    texts ranks in the top K (``img_r*``). Text->image: the text's image ranks in the top K
    (``txt_r*``). Ties are broken against the truth (a tie with the correct item counts as
    ranked above it), so constant scores never look good. Values are percentages; ``r_mean``
    is the mean of the six, FUSAR-KLIP's "R".
    """
    sim = np.asarray(similarity, dtype=np.float64)
    n_img, n_txt = sim.shape
    t2i = np.asarray(text_to_image, dtype=np.int64)
    if t2i.shape != (n_txt,):
        raise ValueError(f"retrieval: {n_txt} texts in the matrix but {t2i.size} text->image labels")
    if n_txt and (t2i.min() < 0 or t2i.max() >= n_img):
        raise ValueError("retrieval: text->image label out of range")
    out: dict[str, Any] = {}
    # text -> image: rank of the true image among all images for this text.
    true_t = sim[t2i, np.arange(n_txt)]
    rank_t = (sim >= true_t[None, :]).sum(0) - 1  # number of images scoring >= truth, excluding itself
    # image -> text: best rank among the image's texts.
    rank_i = np.full(n_img, np.iinfo(np.int64).max)
    for j in range(n_txt):
        i = t2i[j]
        r = int((sim[i] >= sim[i, j]).sum() - 1)
        rank_i[i] = min(rank_i[i], r)
    has_text = rank_i < np.iinfo(np.int64).max
    for k in ks:
        out[f"txt_r{k}"] = 100.0 * float(np.mean(rank_t < k)) if n_txt else float("nan")
        out[f"img_r{k}"] = 100.0 * float(np.mean(rank_i[has_text] < k)) if has_text.any() else float("nan")
    out["r_mean"] = float(np.mean([out[f"{d}_r{k}"] for d in ("txt", "img") for k in ks]))
    return out
