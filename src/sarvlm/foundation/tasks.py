"""The foundation model's tasks end to end (model dir + sample records -> report directory).

Each function reads a trained model (``RUN/final``) and sample records, runs one task and writes
its report atomically (the directory appears complete or not at all):

- :func:`run_retrieval` -> ``metrics.json`` (ITC and ITC+ITM), ``similarity.npy`` (ITC, images × texts);
- :func:`run_zeroshot`  -> ``metrics.json``, ``per_class.csv``, ``confusion.png``;
- :func:`run_probe`     -> ``metrics.json``, ``per_class.csv``, ``confusion_linear.png``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarvlm.core.atomic import atomic_dir


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model_and_data(
    model_dir: str | Path, data: str | Path, text_field: str = "structured", label_field: str | None = None
):
    from sarvlm.foundation.data import load_images, load_items
    from sarvlm.foundation.model import KlipModel

    model = KlipModel.from_pretrained(model_dir).to(_device())
    model.eval()
    items = load_items(data, text_field, label_field)
    cfg = model.config
    images = load_images(items, cfg.vision.image_size, cfg.vision.num_channels, cfg.db_window)
    return model, items, images


def _json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")


def _per_class_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["class", "support", "recall", "precision"], lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})


def run_retrieval(
    model_dir, data, out, *, k: int = 16, text_field: str = "structured", overwrite: bool = False
) -> dict[str, Any]:
    from sarvlm.core.errors import InputError
    from sarvlm.foundation.retrieval import chance_recall, retrieve

    if k <= 0:
        raise InputError(f"--k must be positive, got {k}")
    model, items, images = load_model_and_data(model_dir, data, text_field)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        n = len(items)
        # the ITC matrix is written straight into the report's .npy (memory-mapped): one N × N copy, on disk
        sim = np.lib.format.open_memmap(tmp / "similarity.npy", mode="w+", dtype=np.float32, shape=(n, n))
        res = retrieve(
            model, images, [it.text() for it in items], list(range(n)), k=k, device=_device(), similarity_out=sim
        )
        for key in ("similarity", "candidates_i2t", "rerank_i2t", "candidates_t2i", "rerank_t2i"):
            res.pop(key)
        sim.flush()
        del sim
        res["chance"] = chance_recall(len(items), len(items))
        res["ids"] = [it.id for it in items]
        _json(tmp / "metrics.json", res)
    return res


def run_zeroshot(
    model_dir,
    data,
    out,
    classes: list[str],
    *,
    label_field: str = "meta.kind",
    templates: str | None = None,
    text_field: str = "structured",
    overwrite: bool = False,
    descriptions: dict[str, str] | None = None,
) -> dict[str, Any]:
    from sarvlm.foundation.zeroshot import load_templates, plot_confusion, zeroshot

    tmpl = load_templates(templates)
    model, items, images = load_model_and_data(model_dir, data, text_field, label_field)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        res = zeroshot(model, images, [it.label for it in items], classes, tmpl, str(data), _device(), descriptions)
        _json(tmp / "metrics.json", res)
        _per_class_csv(tmp / "per_class.csv", res["per_class"])
        plot_confusion(res["confusion"], f"zero-shot, top-1 {res['top1']:.1f}%", tmp / "confusion.png")
    return res


def run_probe(
    model_dir,
    data,
    out,
    *,
    label_field: str = "meta.kind",
    features: str = "itc",
    k: int = 5,
    seed: int = 0,
    text_field: str = "structured",
    overwrite: bool = False,
) -> dict[str, Any]:
    from sarvlm.foundation.probe import frozen_features, probe
    from sarvlm.foundation.zeroshot import plot_confusion

    model, items, images = load_model_and_data(model_dir, data, text_field, label_field)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        feats = frozen_features(model, images, features, _device())
        res = probe(feats, [it.label for it in items], [it.record.split for it in items], seed=seed, k=k)
        res["features"] = features
        _json(tmp / "metrics.json", res)
        _per_class_csv(tmp / "per_class.csv", res["linear"]["per_class"])
        plot_confusion(
            res["linear"]["confusion"],
            f"linear probe, top-1 {res['linear']['top1']:.1f}%",
            tmp / "confusion_linear.png",
        )
    return res


def check_segmentation_options(steps: int, head: str, lr: float | None) -> None:
    """Refuse bad head options before any work: ``steps`` > 0, a known ``head``, ``lr`` > 0."""
    from sarvlm.core.errors import InputError
    from sarvlm.foundation.segmentation import HEADS

    if steps <= 0:
        raise InputError(f"--seg-steps must be positive, got {steps}")
    if head not in HEADS:
        raise InputError(f"--head: unknown segmentation head {head!r} (expected one of {', '.join(HEADS)})")
    if lr is not None and lr <= 0:
        raise InputError(f"--seg-lr must be positive, got {lr}")


def load_segmentation_data(model, data, text_field: str = "structured"):
    """The records of ``data`` as model inputs and land-cover masks, every record checked (file, captions,
    images, masks) before any training: ``(items, images (N, C, S, S), masks (N, S, S), classes)``."""
    from sarvlm.core.errors import InputError
    from sarvlm.foundation.data import load_images, load_items
    from sarvlm.foundation.segmentation import load_masks

    cfg = model.config
    items = load_items(data, text_field)
    if len(items) < 2:
        raise InputError(
            f"{data}: {len(items)} record; the segmentation check needs at least 2 (half train, half test)"
        )
    masks, classes = load_masks(items, cfg.vision.image_size)  # masks first: cheap, and the likelier mistake
    images = load_images(items, cfg.vision.image_size, cfg.vision.num_channels, cfg.db_window)
    return items, images, masks, classes


def segmentation_check(
    model,
    images: torch.Tensor,
    masks: torch.Tensor,
    classes: dict[int, str],
    out,
    steps: int = 200,
    seed: int = 0,
    head: str = "linear",
    lr: float | None = None,
) -> dict[str, Any]:
    """Train a segmentation head (``linear`` or ``mask-transformer``) on the frozen image tower (half the
    records), score OA/mIoU on the other half against the majority class, and write
    ``out/segmentation.json`` and the trained head (``out/seg_head.json`` + ``seg_head.safetensors``)
    into the existing directory ``out``. The head's initial weights come from torch's global generator:
    seed it (callers here seed it before loading the model, so results repeat run to run)."""
    from sarvlm.core.atomic import atomic_open
    from sarvlm.foundation.segmentation import SegmentationModel, predict_masks, save_head, split_half, train_head
    from sarvlm.metrics.segmentation import segmentation_scores

    check_segmentation_options(steps, head, lr)
    v = model.config.vision
    n_cls = max(classes) + 1
    options = {"d_model": v.hidden_size, "layers": 2, "heads": v.num_attention_heads} if head != "linear" else {}
    seg = SegmentationModel(model.visual_encoder, v.hidden_size, v.patch_size, n_cls, head, **options)
    tr, te = split_half(len(images), seed)
    losses = train_head(seg, images[tr], masks[tr], steps=steps, seed=seed, lr=lr)
    pred = predict_masks(seg, images[te])
    names = [classes.get(i, str(i)) for i in range(n_cls)]
    scores = segmentation_scores(zip(masks[te].numpy(), pred), n_cls, class_names=names)
    majority = int(masks[tr].flatten().mode().values)
    base = segmentation_scores(((m, np.full_like(m, majority)) for m in masks[te].numpy()), n_cls, class_names=names)
    result = {
        **scores,
        "majority_class_oa": base["oa"],
        "majority_class_miou": base["miou"],
        "train": len(tr),
        "test": len(te),
        "steps": steps,
        "final_loss": losses[-1],
        "resolution": v.image_size,
        "head": head,
        "head_description": "linear classifier per patch token"
        if head == "linear"
        else "Segmenter mask transformer (2 layers, class embeddings, patch-class products)",
        "backbone": "frozen",
        "upsampling": "bilinear",
    }
    save_head(seg, out, classes)
    with atomic_open(Path(out) / "segmentation.json") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    return result


def run_segmentation_check(
    model_dir,
    data,
    out,
    steps: int = 200,
    seed: int = 0,
    text_field: str = "structured",
    head: str = "linear",
    lr: float | None = None,
) -> dict[str, Any]:
    """:func:`segmentation_check` of the checkpoint ``model_dir`` on ``data``, written into ``out``
    (an existing directory, e.g. an exported backbone). ``sarvlm export-backbone --seg-data`` uses
    :func:`sarvlm.foundation.backbone.export_backbone` instead, which checks everything first and
    writes the backbone and the head together, atomically."""
    from sarvlm.foundation.model import KlipModel

    check_segmentation_options(steps, head, lr)
    torch.manual_seed(seed)
    model = KlipModel.from_pretrained(model_dir).to(_device())
    model.eval()
    _, images, masks, classes = load_segmentation_data(model, data, text_field)
    return segmentation_check(model, images, masks, classes, out, steps, seed, head, lr)
