"""Linear probe and k-NN on frozen KLIP image features (the standard foundation-model comparison).

Features: the ITC image feature (unit norm, ``embed_dim``) or the image tower's [CLS] hidden
state (``--features cls``), extracted once with the model frozen. Train/test: the records'
``split`` field when both ``train`` and ``test`` occur, else a deterministic 50/50 split
stratified by label (``seed``). The linear probe is multinomial logistic regression (full-batch
L-BFGS, L2 ``weight_decay``, standardised features); k-NN is cosine-similarity majority vote
(k = 5 by default, ties to the nearer neighbour). Top-1 and top-3 are reported for both, with the
majority-class rate as the chance level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sarvlm.core.errors import InputError
from sarvlm.foundation.zeroshot import topk_scores


@torch.no_grad()
def frozen_features(model, images: torch.Tensor, kind: str = "itc", device="cpu", chunk: int = 256) -> torch.Tensor:
    model.eval()
    out = []
    for s in range(0, len(images), chunk):
        emb, feat = model.encode_image(images[s : s + chunk].to(device))
        out.append((feat if kind == "itc" else emb[:, 0]).float().cpu())
    return torch.cat(out)


def split_indices(labels: np.ndarray, splits: Sequence[str | None], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    if "train" in splits and "test" in splits:
        tr = np.array([i for i, s in enumerate(splits) if s == "train"])
        te = np.array([i for i, s in enumerate(splits) if s == "test"])
        return tr, te
    rng = np.random.default_rng([seed, 99])
    tr, te = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        half = len(idx) // 2
        tr += idx[half:].tolist()
        te += idx[:half].tolist()
    return np.array(sorted(tr)), np.array(sorted(te))


def linear_probe(
    x_tr: torch.Tensor, y_tr: np.ndarray, x_te: torch.Tensor, classes: int, weight_decay: float = 1e-3, seed: int = 0
) -> np.ndarray:
    """Scores ``(n_test, classes)`` of a logistic regression fitted on the training features."""
    mean, std = x_tr.mean(0), x_tr.std(0).clamp_min(1e-6)
    a, b = (x_tr - mean) / std, (x_te - mean) / std
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(a.shape[1], classes)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.01)
        lin.bias.zero_()
    y = torch.as_tensor(y_tr)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(a), y) + weight_decay * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return F.softmax(lin(b), dim=1).numpy()


def knn_scores(x_tr: torch.Tensor, y_tr: np.ndarray, x_te: torch.Tensor, classes: int, k: int = 5) -> np.ndarray:
    """Similarity-weighted vote ``(n_test, classes)`` of the k nearest training features (cosine)."""
    sim = F.normalize(x_te, dim=1) @ F.normalize(x_tr, dim=1).T
    k = min(k, x_tr.shape[0])
    top = sim.topk(k, dim=1)
    votes = np.zeros((x_te.shape[0], classes))
    for r in range(x_te.shape[0]):
        for rank, (j, s) in enumerate(zip(top.indices[r].tolist(), top.values[r].tolist())):
            votes[r, y_tr[j]] += 1.0 + 1e-3 * (k - rank) + 1e-6 * s
    return votes


def probe(
    features: torch.Tensor, labels: Sequence[str], splits: Sequence[str | None], seed: int = 0, k: int = 5
) -> dict[str, Any]:
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise InputError(f"probe: need at least two label values, found {classes}")
    y = np.array([classes.index(lab) for lab in labels])
    tr, te = split_indices(y, splits, seed)
    if len(tr) == 0 or len(te) == 0:
        raise InputError("probe: the train or test split is empty")
    x_tr, x_te = features[tr], features[te]
    lin = topk_scores(linear_probe(x_tr, y[tr], x_te, len(classes), seed=seed), y[te], classes)
    nn_ = topk_scores(knn_scores(x_tr, y[tr], x_te, len(classes), k), y[te], classes)
    train_counts = np.bincount(y[tr], minlength=len(classes))
    chance = 100.0 * float((y[te] == train_counts.argmax()).mean())
    return {
        "classes": classes,
        "train": int(len(tr)),
        "test": int(len(te)),
        "linear": lin,
        "knn": {**nn_, "k": k},
        "chance_top1": chance,
    }
