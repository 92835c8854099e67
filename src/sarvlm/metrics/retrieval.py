"""Image-text retrieval recall in FUSAR-KLIP's layout (Table 6), as its released code computes it.

FUSAR-KLIP's retrieval evaluation is BLIP's ``itm_eval`` (``train_retrieval.py``):

- ``txt_r1/5/10`` — **text retrieval, image → text**: for each image, the best rank among
  all of its texts; an image is a hit at K when that rank is < K.
- ``img_r1/5/10`` — **image retrieval, text → image**: for each text, the rank of its one image.
- ``txt_r_mean`` / ``img_r_mean`` — the mean of the three recalls of each direction;
  ``r_mean`` — the mean of those two means (Table 6's "R").

Values are percentages. One deliberate difference from the released code: BLIP ranks with
``np.argsort(score)[::-1]``, so a tie between the true item and another is broken by array
order; sarvlm breaks ties *against* the truth (a tied competitor counts as ranked above it),
so constant or degenerate scores never look good. With continuous scores (no ties) the two
agree exactly (tests/test_protocols.py holds this against an independent ``itm_eval`` oracle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def retrieval_scores(
    similarity: np.ndarray, text_to_image: Sequence[int], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, Any]:
    """Recall@K both ways from an ``(images, texts)`` similarity matrix.

    Args:
        similarity: ``(n_images, n_texts)`` scores, higher = more similar (ITC cosine, or
            ITM-re-ranked scores with non-candidates set very low, as BLIP does).
        text_to_image: ``(n_texts,)`` index of the image each text describes (several texts
            may share one image, as in COCO-style retrieval).
        ks: the cut-offs K.

    Returns ``txt_r{K}``, ``img_r{K}``, ``txt_r_mean``, ``img_r_mean``, ``r_mean`` (see the
    module docstring for which direction is which) and the counts ``n_images``/``n_texts``.
    Images without any text are left out of the image → text recall.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"retrieval: similarity must be a 2-D (images, texts) matrix, got shape {sim.shape}")
    n_img, n_txt = sim.shape
    t2i = np.asarray(text_to_image, dtype=np.int64)
    if t2i.shape != (n_txt,):
        raise ValueError(f"retrieval: {n_txt} texts in the matrix but {t2i.size} text->image labels")
    if n_txt and (t2i.min() < 0 or t2i.max() >= n_img):
        raise ValueError("retrieval: text->image label out of range")
    # text -> image ("img_r"): rank of the true image among all images for this text.
    true_t = sim[t2i, np.arange(n_txt)]
    rank_t2i = (sim >= true_t[None, :]).sum(0) - 1  # images scoring >= the truth, excluding itself
    # image -> text ("txt_r"): best rank among the image's texts.
    rank_i2t = np.full(n_img, np.iinfo(np.int64).max)
    for j in range(n_txt):
        i = t2i[j]
        rank_i2t[i] = min(rank_i2t[i], int((sim[i] >= sim[i, j]).sum() - 1))
    has_text = rank_i2t < np.iinfo(np.int64).max
    out: dict[str, Any] = {}
    for k in ks:
        out[f"txt_r{k}"] = 100.0 * float(np.mean(rank_i2t[has_text] < k)) if has_text.any() else float("nan")
    for k in ks:
        out[f"img_r{k}"] = 100.0 * float(np.mean(rank_t2i < k)) if n_txt else float("nan")
    out["txt_r_mean"] = float(np.mean([out[f"txt_r{k}"] for k in ks]))
    out["img_r_mean"] = float(np.mean([out[f"img_r{k}"] for k in ks]))
    out["r_mean"] = (out["txt_r_mean"] + out["img_r_mean"]) / 2
    out["n_images"] = int(has_text.sum())
    out["n_texts"] = int(n_txt)
    return out
