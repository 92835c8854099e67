"""Export of the KLIP image tower as a backbone, and the hand-off format for other frameworks.

``export_backbone(model_dir, out)`` writes a plain transformers ``ViTModel`` directory
(``config.json`` + ``model.safetensors``; ``ViTModel.from_pretrained(out)`` loads it with no sarvlm
code) plus ``handoff.json``, which says how to feed it and what comes out:

- input: ``(B, num_channels, image_size, image_size)`` float32; SAR band 1 in dB clipped to
  ``db_window`` and mapped to [−1, 1] (:mod:`sarvlm.foundation.transforms`), integer images by
  their type range;
- output: ``last_hidden_state`` ``(B, 1 + (image_size/patch)², hidden)``: token 0 is [CLS], tokens
  1… are patches in row-major order on a ``(image_size/patch)²`` grid (stride = patch pixels).

Detection heads are left to detection frameworks: take the patch tokens, reshape to
``(B, hidden, H/p, W/p)`` as a single stride-``p`` feature map (a ViTDet-style simple pyramid
builds the other strides from it), and train the detector there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sarvlm.core.atomic import atomic_dir, check_output_dir
from sarvlm.core.errors import InputError


def handoff(model) -> dict[str, Any]:
    v = model.config.vision
    grid = v.image_size // v.patch_size
    return {
        "format": "transformers ViTModel (add_pooling_layer=False)",
        "source": "sarvlm FUSAR-KLIP image tower",
        "input": {
            "shape": ["B", v.num_channels, v.image_size, v.image_size],
            "dtype": "float32",
            "sar_float": f"10*log10(intensity) clipped to {model.config.db_window} dB, scaled to [-1, 1]",
            "sar_integer": "value / dtype max, scaled to [-1, 1]",
            "band": "1 (co-polarised)",
        },
        "output": {
            "last_hidden_state": ["B", 1 + grid * grid, v.hidden_size],
            "cls_token": 0,
            "patch_grid": [grid, grid],
            "patch_order": "row-major",
            "stride_px": v.patch_size,
        },
        "detection_handoff": "patch tokens 1.. reshaped to (B, hidden, grid, grid) = one stride-`stride_px` feature map",
    }


def _refuse_model_inside_out(model_dir: Path, out: Path) -> None:
    """Replacing ``out`` must not delete the checkpoint being exported."""
    m, o = model_dir.resolve(), out.resolve()
    if m == o or o in m.parents:
        raise InputError(f"--out {out}: would replace the model directory {model_dir} itself; choose another directory")


def export_backbone(
    model_dir: str | Path,
    out: str | Path,
    overwrite: bool = False,
    *,
    seg_data: str | Path | None = None,
    seg_steps: int = 200,
    seg_head: str = "linear",
    seg_lr: float | None = None,
    seed: int = 0,
    text_field: str = "structured",
) -> dict[str, Any]:
    """Write the image tower of a KLIP checkpoint as a stand-alone ViTModel directory ``out``.

    With ``seg_data`` (sample records with land-cover masks), also train and score a segmentation
    head (:func:`sarvlm.foundation.tasks.segmentation_check`) and keep it beside the backbone.
    Everything that can be checked is checked before anything is written (output directory,
    checkpoint, options, records, captions, images, masks); the directory is built beside ``out``
    and renamed into place at the end, so a failure at any point leaves ``out`` as it was (absent,
    or the user's directory untouched). Returns the hand-off description, plus ``"segmentation"``
    (the head's scores) with ``seg_data``.
    """
    import torch

    from sarvlm.foundation.model import KlipModel

    model_dir, out = Path(model_dir), Path(out)
    check_output_dir(out, overwrite)
    _refuse_model_inside_out(model_dir, out)
    if seg_data is not None:
        from sarvlm.foundation.tasks import check_segmentation_options, load_segmentation_data

        check_segmentation_options(seg_steps, seg_head, seg_lr)
        torch.manual_seed(seed)  # before loading: the same head initialisation as run_segmentation_check
    model = KlipModel.from_pretrained(model_dir)
    info = handoff(model)
    seg = load_segmentation_data(model, seg_data, text_field) if seg_data is not None else None
    with atomic_dir(out, overwrite=overwrite) as tmp:
        model.visual_encoder.save_pretrained(str(tmp))
        with open(tmp / "handoff.json", "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=2)
            fh.write("\n")
        if seg is not None:
            from sarvlm.foundation.tasks import _device, segmentation_check

            _, images, masks, classes = seg
            model.to(_device()).eval()
            info = {
                **info,
                "segmentation": segmentation_check(
                    model, images, masks, classes, tmp, seg_steps, seed, seg_head, seg_lr
                ),
            }
    return info
