"""Where is the prior's information lost? Diagnostics for the demo report.

:func:`linear_probe` answers "are two classes linearly separable in these features?" with
held-out accuracy: a ridge-regularised least-squares classifier on standardised features,
k-fold cross-validated with a fixed fold assignment (deterministic). Used on the merged visual
tokens after the TLM (what the LLM receives) with farmland vs grassland labels: if they are
separable there but the answers do not improve, the loss happens in the LLM; if not, in the
fusion.
"""

from __future__ import annotations

import numpy as np

from sarvlm.core.errors import SarvlmError


def linear_probe(features: np.ndarray, labels: np.ndarray, *, folds: int = 5, ridge: float = 1.0) -> float:
    """Cross-validated accuracy of a linear classifier.

    ``features``: ``(N, D)``; ``labels``: ``(N,)`` with two distinct values. Sample ``i`` is held
    out in fold ``i % folds`` (shuffle the rows beforehand if their order carries the label).
    """
    x = np.asarray(features, dtype=np.float64)
    y_raw = np.asarray(labels)
    classes = np.unique(y_raw)
    if x.ndim != 2 or len(x) != len(y_raw):
        raise SarvlmError(f"linear probe: features {x.shape} and labels {y_raw.shape} do not match")
    if len(classes) != 2:
        raise SarvlmError(f"linear probe: needs exactly two classes, got {len(classes)}")
    if len(x) < 2 * folds:
        raise SarvlmError(f"linear probe: {len(x)} samples are too few for {folds} folds")
    y = np.where(y_raw == classes[1], 1.0, -1.0)
    fold = np.arange(len(x)) % folds
    hits = 0
    for k in range(folds):
        tr, te = fold != k, fold == k
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-8
        a = np.hstack([(x[tr] - mu) / sd, np.ones((tr.sum(), 1))])
        w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ y[tr])
        b = np.hstack([(x[te] - mu) / sd, np.ones((te.sum(), 1))])
        hits += int(np.sum(((b @ w) > 0) == (y[te] > 0)))
    return hits / len(x)
