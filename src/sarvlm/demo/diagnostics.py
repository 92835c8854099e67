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


def word_token_mask(token_texts: list[str], words: tuple[str, ...]) -> np.ndarray:
    """Which tokens belong to one of ``words``: ``token_texts`` are the decoded response tokens in
    order (their concatenation is the response text); a token is marked when its characters overlap a
    whole-word, case-insensitive match of any of ``words`` (multi-word names included). Shape ``(T,)``."""
    import re

    text = "".join(token_texts)
    starts = np.cumsum([0] + [len(t) for t in token_texts[:-1]]) if token_texts else np.zeros(0, int)
    ends = starts + np.array([len(t) for t in token_texts], dtype=int)
    marked = np.zeros(len(token_texts), dtype=bool)
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    for m in re.finditer(rf"(?<![A-Za-z])(?:{alternatives})(?![A-Za-z])", text, flags=re.IGNORECASE):
        marked |= (starts < m.end()) & (ends > m.start())
    return marked


def caption_word_loss(
    run_dir: str | Path,
    stage: str | None,
    examples_jsonl: str | Path,
    priors_dir: str | Path | None,
    *,
    words: tuple[str, ...] | None = None,
    task: str = "caption",
    batch_size: int = 8,
) -> dict[str, float]:
    """Cross-entropy of a training run's model on the ``task`` answers of ``examples_jsonl``, on the
    tokens of land-cover words alone and on every other answer token.

    The model is the run's starting model (``run_dir/run.yaml``) with its finished stage ``stage``
    applied (``None``: the starting model itself, i.e. before stage 1). Priors are used when the run's
    fusion uses them and ``priors_dir`` is given. Returns the mean loss (nats per token) over
    ``land-cover words`` and ``other tokens``, and both token counts.
    """
    import torch
    import yaml

    from sarvlm.core.vocabulary import LANDCOVER_SYNONYMS
    from sarvlm.models.loading import load_model
    from sarvlm.priors.cache import PriorCache
    from sarvlm.training.collator import SftCollator
    from sarvlm.training.dataset import SftDataset
    from sarvlm.training.trainer import apply_stage_result

    if words is None:
        words = tuple(w for canon, forms in LANDCOVER_SYNONYMS.items() for w in (canon, *forms))
    run_dir = Path(run_dir)
    try:
        identity = yaml.safe_load((run_dir / "run.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SarvlmError(f"{run_dir / 'run.yaml'}: cannot read the run's identity ({exc})") from None
    settings = identity.get("model_settings") or {}
    model, processor = load_model(identity["model"], settings=settings)
    if stage is not None:
        model = apply_stage_result(model, run_dir / stage)
    model.eval()
    use_priors = settings.get("fusion", "none") != "none" and priors_dir is not None
    ds = SftDataset(
        examples_jsonl,
        processor,
        tasks=[task],
        priors=PriorCache(priors_dir) if use_priors and priors_dir is not None else None,
        use_priors=use_priors,
        allow_missing_priors=True,
        length_cache=False,
        allow_outside_root=True,
        max_length=4096,
    )
    collate = SftCollator(pad_token_id=int(processor.pad_token_id))
    tokenizer = processor.tokenizer
    sums = {"word": 0.0, "other": 0.0}
    counts = {"word": 0, "other": 0}
    for first in range(0, len(ds), batch_size):
        batch = collate([ds[i] for i in range(first, min(first + batch_size, len(ds)))])
        labels = batch.pop("labels")
        with torch.no_grad():
            logits = model(**batch).logits.float()
        # position t predicts token t+1
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none"
        )
        for row in range(labels.shape[0]):
            where = torch.nonzero(labels[row, 1:] != -100).flatten()
            if not len(where):
                continue
            ids = labels[row, 1:][where].tolist()
            marked = word_token_mask([tokenizer.decode([t]) for t in ids], words)
            row_loss = losses[row, where].numpy()
            sums["word"] += float(row_loss[marked].sum())
            counts["word"] += int(marked.sum())
            sums["other"] += float(row_loss[~marked].sum())
            counts["other"] += int((~marked).sum())
    out: dict[str, float] = {"land-cover word tokens": float(counts["word"]), "other tokens": float(counts["other"])}
    if counts["word"]:
        out["land-cover words loss"] = sums["word"] / counts["word"]
    if counts["other"]:
        out["other tokens loss"] = sums["other"] / counts["other"]
    return out
