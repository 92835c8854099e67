"""The on-disk form every KLIP model shares: ``config.json`` + ``model.safetensors`` + ``tokenizer/``.

:class:`~sarvlm.foundation.model.KlipModel` (pretraining) and
:class:`~sarvlm.foundation.decoder_model.KlipDecoderModel` (caption/VQA fine-tuning) differ only in the
metadata they put beside the config and in which architectures they accept; writing, reading and the
one-line errors for a directory that is not such a checkpoint live here once. So does the resumable state
both training loops leave in ``RUN/checkpoint/`` and their ``RUN/loss.csv``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sarvlm.core.atomic import atomic_dir, atomic_open
from sarvlm.core.errors import ConfigurationError, NotFoundError
from sarvlm.foundation.config import KlipConfig

WEIGHTS_NAME = "model.safetensors"
LEGACY_ZERO_SUFFIX = "embeddings.token_type_embeddings.weight"


def portable_config(config: KlipConfig) -> dict[str, Any]:
    """The config as saved: ``init_from`` paths dropped (the weights are in the checkpoint itself)."""
    cfg = config.to_dict()
    cfg["vision"]["init_from"] = None
    cfg["text"]["init_from"] = None
    return cfg


def write_checkpoint(model: nn.Module, tokenizer: Any, directory: str | Path, meta: dict[str, Any]) -> None:
    """Write ``meta`` as ``config.json``, the weights and the tokenizer into ``directory`` (must exist)."""
    from safetensors.torch import save_model

    directory = Path(directory)
    with open(directory / "config.json", "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")
    save_model(model, str(directory / WEIGHTS_NAME))
    tokenizer.save_pretrained(str(directory / "tokenizer"))


def read_checkpoint_meta(directory: Path, what: str, hint: str = "") -> Any:
    """``config.json`` of a checkpoint directory, parsed; a missing directory or file, or bad JSON, fails
    with one line (``what``: e.g. "a KLIP checkpoint"; ``hint`` follows the list of needed files)."""
    if not directory.is_dir():
        raise NotFoundError(f"{directory}: no such model directory")
    cfg_path = directory / "config.json"
    if not cfg_path.is_file() or not (directory / WEIGHTS_NAME).is_file():
        raise ConfigurationError(f"{directory}: not {what} (needs config.json and {WEIGHTS_NAME}{hint})")
    try:
        return json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{cfg_path}: not valid JSON ({exc})") from None


def load_checkpoint_weights(model: nn.Module, directory: Path, map_location: str) -> None:
    """Load ``model.safetensors`` into ``model``; unreadable or mismatching weights fail with one line."""
    from safetensors.torch import load_model

    path = directory / WEIGHTS_NAME
    try:
        missing, unexpected = load_model(model, str(path), strict=False, device=map_location)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds for bad files
        raise ConfigurationError(f"{path}: cannot load ({str(exc).splitlines()[0]})") from None
    # KLIP checkpoints written before the text tower became transformers' BERT (BlipText has no
    # segment embedding) lack it; a zero segment embedding is exactly what they computed
    legacy = [k for k in missing if k.endswith(LEGACY_ZERO_SUFFIX)]
    if legacy:
        state = model.state_dict()
        with torch.no_grad():
            for key in legacy:
                state[key].zero_()
        missing = [k for k in missing if k not in legacy]
    if missing or unexpected:
        what = (list(missing) + list(unexpected))[0]
        raise ConfigurationError(
            f"{path}: weights do not match the config ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, e.g. {what!r})"
        )


def write_loss_csv(run: Path, rows: list[dict], columns: Sequence[str]) -> None:
    """``RUN/loss.csv``: one row per optimiser step, ``columns`` in order (written atomically)."""
    with atomic_open(run / "loss.csv") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def write_training_checkpoint(
    run: Path, model: Any, optimizer: torch.optim.Optimizer, state: dict, rows: list[dict], columns: Sequence[str]
) -> None:
    """The resumable state of a KLIP training loop (pretraining or decoder fine-tuning): ``RUN/checkpoint/``
    with the model (its ``save_pretrained``), ``optimizer.pt``, ``state.json`` and the loss rows so far
    (``loss.json``), replaced as a whole; then ``RUN/loss.csv``."""
    with atomic_dir(run / "checkpoint", overwrite=True) as tmp:
        model.save_pretrained(tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
        (tmp / "loss.json").write_text(json.dumps(rows), encoding="utf-8")
    write_loss_csv(run, rows, columns)
