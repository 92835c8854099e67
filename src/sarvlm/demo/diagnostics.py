"""Where is the prior's information lost? Diagnostics for the demo report.

:func:`linear_probe` answers "are two classes linearly separable in these features?" with
held-out accuracy: a ridge-regularised least-squares classifier on standardised features,
k-fold cross-validated with a fixed fold assignment (deterministic). Used on the merged visual
tokens after the TLM (what the LLM receives) with farmland vs grassland labels: if they are
separable there but the answers do not improve, the loss happens in the LLM; if not, in the
fusion.
"""

from __future__ import annotations

from pathlib import Path

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


def visual_token_diagnostics(
    model_dir: str | Path,
    scenes_jsonl: str | Path,
    scene_ids: list[str],
    priors_dir: str | Path,
    classes: tuple[str, str] = ("farmland", "grassland"),
) -> dict[str, float]:
    """What the LLM receives, with and without the prior, on the tokens of two land covers.

    For every scene in ``scene_ids`` (test scenes): the merged visual tokens ``(H/28·W/28, C)``
    of a trained model, once with the scene's prior (after the fusion) and once without (the
    vision tower alone). Each token is labelled by the land-cover mask at its centre; tokens of
    ``classes`` are kept. Returns the linear-probe accuracy before/after the fusion, the number of
    tokens, and the TLM's relative modulation ``‖after − before‖ / ‖before‖`` per class.
    """
    import torch
    from PIL import Image

    from sarvlm.core.record import read_samples
    from sarvlm.models.geo_inputs import sample_prior_rows
    from sarvlm.models.loading import load_model
    from sarvlm.models.processor import load_image
    from sarvlm.priors.cache import PriorCache

    scenes_jsonl = Path(scenes_jsonl)
    model, processor = load_model(str(model_dir))
    cache = PriorCache(priors_dir)
    wanted = set(scene_ids)
    before: list[np.ndarray] = []
    after: list[np.ndarray] = []
    labels: list[str] = []
    for rec in read_samples(scenes_jsonl):
        if rec.id not in wanted or rec.landcover is None or rec.id not in cache:
            continue
        image = load_image(scenes_jsonl.parent / rec.image)
        inputs = processor.image_inputs([image])
        grid_thw = inputs["image_grid_thw"]
        pri, pos, msk = sample_prior_rows(cache.get(rec.id), 1, prior_dim=cache.prior_dim)
        with torch.no_grad():
            plain = model.get_image_features(inputs["pixel_values"], grid_thw).pooler_output[0]
            fused = model.get_image_features(
                inputs["pixel_values"], grid_thw, geo_priors=pri, geo_positions=pos, geo_mask=msk
            ).pooler_output[0]
        merge = processor.merge_size
        _, h, w = (int(v) // (merge if i else 1) for i, v in enumerate(grid_thw[0]))
        mask = np.asarray(Image.open(scenes_jsonl.parent / rec.landcover.mask))
        rows = ((np.arange(h) + 0.5) * mask.shape[0] / h).astype(int)
        cols = ((np.arange(w) + 0.5) * mask.shape[1] / w).astype(int)
        token_class = mask[rows[:, None], cols[None, :]].reshape(-1)  # raster order, as the merged tokens
        names = {int(k): v for k, v in rec.landcover.classes.items()}
        for t, c in enumerate(token_class):
            name = names.get(int(c))
            if name in classes:
                before.append(plain[t].float().numpy())
                after.append(fused[t].float().numpy())
                labels.append(name)
    out: dict[str, float] = {"tokens": float(len(labels))}
    if len(set(labels)) < 2 or len(labels) < 10:
        return out
    xb, xa, y = np.stack(before), np.stack(after), np.asarray(labels)
    out["probe before fusion"] = linear_probe(xb, y)
    out["probe after fusion"] = linear_probe(xa, y)
    rel = np.linalg.norm(xa - xb, axis=1) / (np.linalg.norm(xb, axis=1) + 1e-12)
    for name in classes:
        out[f"modulation {name}"] = float(rel[y == name].mean()) if (y == name).any() else float("nan")
    return out
