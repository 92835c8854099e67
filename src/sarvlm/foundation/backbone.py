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

from sarvlm.core.atomic import atomic_dir


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


def export_backbone(model_dir: str | Path, out: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Write the image tower of a KLIP checkpoint as a stand-alone ViTModel directory."""
    from sarvlm.foundation.model import KlipModel

    model = KlipModel.from_pretrained(model_dir)
    info = handoff(model)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        model.visual_encoder.save_pretrained(str(tmp))
        with open(tmp / "handoff.json", "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=2)
            fh.write("\n")
    return info
