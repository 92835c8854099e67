"""Zero-shot classification with a KLIP model: class prompts from templates (data), ITC similarity.

Each class name is put into every template of ``configs/zeroshot-templates.yaml`` (or a user
YAML with a ``templates`` list); the class embedding is the normalised mean of the templates'
ITC text features; an image's scores are its cosine similarities with the class embeddings.
Reported: top-1 and top-3 accuracy, a per-class table (support, recall = per-class accuracy,
precision) and the confusion matrix (PNG + JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from sarvlm.core.errors import ConfigurationError, InputError, NotFoundError


def load_templates(path: str | Path | None = None) -> list[str]:
    if path is None:
        raw = resources.files("sarvlm.foundation").joinpath("configs", "zeroshot-templates.yaml").read_text("utf-8")
        where = "zeroshot-templates.yaml"
    else:
        p = Path(path)
        if not p.is_file():
            raise NotFoundError(f"{p}: no such templates file")
        raw, where = p.read_text(encoding="utf-8"), str(p)
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    templates = data.get("templates") if isinstance(data, dict) else None
    if not templates or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates):
        raise ConfigurationError(f"{where}: needs a 'templates' list of strings, each with exactly one {{}}")
    return list(templates)


def parse_classes(spec: str | Sequence[str]) -> list[str]:
    """``"port,coast,river"`` (or a list) -> class names; empty or duplicated names fail with one line.

    A class may carry the words to put into the templates instead of its name: ``coast=coastal zone``
    (:func:`class_descriptions`); the name is what labels are matched against.
    """
    names = [c.split("=", 1)[0].strip() for c in (spec.split(",") if isinstance(spec, str) else spec)]
    if not names or any(not n for n in names):
        raise InputError("--classes: give a comma-separated list of non-empty class names")
    seen = set()
    for n in names:
        if n.lower() in seen:
            raise InputError(f"--classes: {n!r} is given twice")
        seen.add(n.lower())
    if len(names) < 2:
        raise InputError("--classes: at least two classes are needed")
    return names


def class_descriptions(spec: str | Sequence[str]) -> dict[str, str]:
    """The ``name=words`` entries of a ``--classes`` spec: class name -> the words its prompts use.

    Why: a model pretrained from scratch only knows the words of its captions. If the captions call
    a coast "a coastal zone", the prompt "The area is coast." spells *coast* out of characters the
    model never learned (see :func:`unseen_words`); ``coast=a coastal zone`` asks in its vocabulary.
    """
    out = {}
    for c in spec.split(",") if isinstance(spec, str) else spec:
        if "=" in c:
            name, words = (x.strip() for x in c.split("=", 1))
            if not words:
                raise InputError(f"--classes: {name!r} has an empty description after '='")
            out[name] = words
    return out


def unseen_words(tokenizer, texts: Sequence[str]) -> list[str]:
    """Words of ``texts`` the tokenizer can only spell letter by letter (never seen as a word or word
    piece when a from-scratch vocabulary was built): prompts with them carry no learned meaning."""
    out: list[str] = []
    for text in texts:
        for word in text.replace(".", " ").replace(",", " ").replace(":", " ").split():
            pieces = tokenizer.tokenize(word)
            if len(pieces) > 1 and all(len(p.removeprefix("##")) == 1 for p in pieces) and word.lower() not in out:
                out.append(word.lower())
    return out


def class_prompts(classes: Sequence[str], templates: Sequence[str], descriptions: dict[str, str] | None = None):
    """Every class's prompts: each template filled with the class's description or its name."""
    descriptions = descriptions or {}
    return {c: [t.format(descriptions.get(c, c.replace("_", " "))) for t in templates] for c in classes}


@torch.no_grad()
def class_embeddings(
    model, classes: Sequence[str], templates: Sequence[str], device="cpu", descriptions: dict[str, str] | None = None
) -> torch.Tensor:
    """``(classes, embed_dim)`` unit vectors (the mean of each class's prompt features)."""
    from sarvlm.foundation.scio import text_features

    out = []
    prompts = class_prompts(classes, templates, descriptions)
    for c in classes:
        feats = text_features(model, prompts[c], device)
        out.append(F.normalize(feats.mean(0), dim=0))
    return torch.stack(out)


@torch.no_grad()
def image_features(model, images: torch.Tensor, device="cpu", chunk: int = 256) -> torch.Tensor:
    """Unit ITC image features ``(N, embed_dim)``."""
    model.eval()
    return torch.cat(
        [model.encode_image(images[s : s + chunk].to(device))[1].float().cpu() for s in range(0, len(images), chunk)]
    )


def topk_scores(scores: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Top-1/top-3 accuracy, per-class table and confusion matrix from ``(N, C)`` scores and label indices."""
    n, c = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    top1 = order[:, 0]
    k3 = min(3, c)
    acc1 = float((top1 == labels).mean()) if n else 0.0
    acc3 = float((order[:, :k3] == labels[:, None]).any(1).mean()) if n else 0.0
    conf = np.zeros((c, c), dtype=np.int64)
    np.add.at(conf, (labels, top1), 1)
    per_class = []
    for k, name in enumerate(classes):
        support = int(conf[k].sum())
        predicted = int(conf[:, k].sum())
        per_class.append(
            {
                "class": name,
                "support": support,
                "recall": conf[k, k] / support if support else None,
                "precision": conf[k, k] / predicted if predicted else None,
            }
        )
    counts = np.bincount(labels, minlength=c)
    return {
        "top1": 100 * acc1,
        "top3": 100 * acc3,
        "chance_top1": 100 * float(counts.max() / n) if n else None,  # always guessing the majority class
        "uniform_top1": 100 / c,
        "per_class": per_class,
        "confusion": {"labels": list(classes), "matrix": conf.tolist()},
        "n": n,
    }


def label_indices(labels: Sequence[str | None], classes: Sequence[str], where: str) -> np.ndarray:
    lookup = {c.lower(): k for k, c in enumerate(classes)}
    out = []
    for i, lab in enumerate(labels):
        if lab is None or lab.lower() not in lookup:
            raise InputError(
                f"{where}: sample {i + 1} has label {lab!r}, which is not among --classes ({', '.join(classes)})"
            )
        out.append(lookup[lab.lower()])
    return np.asarray(out, dtype=np.int64)


def zeroshot(
    model,
    images: torch.Tensor,
    labels: Sequence[str],
    classes: Sequence[str],
    templates: Sequence[str],
    where: str = "data",
    device="cpu",
    descriptions: dict[str, str] | None = None,
) -> dict[str, Any]:
    y = label_indices(labels, classes, where)
    cls = class_embeddings(model, classes, templates, device, descriptions).cpu()
    feats = image_features(model, images, device)
    scores = (feats @ cls.T).numpy()
    out = topk_scores(scores, y, classes)
    out["templates"] = list(templates)
    out["descriptions"] = dict(descriptions or {})
    prompts = class_prompts(classes, templates, descriptions)
    out["unseen_words"] = unseen_words(model.tokenizer, [p for c in classes for p in prompts[c]])
    return out


def plot_confusion(conf: dict[str, Any], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sarvlm.core.atomic import atomic_path

    m = np.asarray(conf["matrix"], dtype=float)
    labels = conf["labels"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(labels), 1 + 0.6 * len(labels)))
    ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for (r, c), v in np.ndenumerate(m):
        ax.text(c, r, int(v), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
