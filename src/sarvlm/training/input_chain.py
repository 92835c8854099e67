"""What a trained model keeps of its training inputs: the preprocessing and the prior settings.

Written by ``sarvlm train`` into ``RUN/final/inference.json`` and replayed at inference by
:mod:`sarvlm.inference.chain` (``sarvlm ask`` on a raw scene).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHAIN_FILE = "inference.json"


def chain_for_training(data_dir: str | Path, prior_settings: dict[str, Any] | None) -> dict[str, Any]:
    """What ``sarvlm train`` saves with the model: the dataset's preprocessing and the prior settings."""
    manifest_path = Path(data_dir) / "manifest.json"
    preprocess = None
    if manifest_path.is_file():
        try:
            preprocess = json.loads(manifest_path.read_text(encoding="utf-8")).get("preprocess")
        except json.JSONDecodeError:
            preprocess = None
    priors = None
    if prior_settings:
        keys = ("source", "grid", "year_policy", "edge_tolerance", "anchors", "prior_dim")
        priors = {k: prior_settings[k] for k in keys if k in prior_settings}
        source = str(priors.get("source") or "")
        kind, _, rest = source.partition(":")
        if kind in ("aef-cog", "aef-zarr") and rest:
            priors["source"] = f"{kind}:{Path(rest).resolve()}"  # valid from any working directory
    return {"preprocess": preprocess, "priors": priors}
