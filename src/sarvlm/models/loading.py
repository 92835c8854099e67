"""Load and save sarvlm models: tiny named models, stock Qwen-VL checkpoints, sarvlm checkpoints, adapters.

- ``tiny-qwen2.5-vl`` / ``tiny-qwen3-vl``: a seeded tiny model (see :mod:`sarvlm.models.tiny`).
- A stock Hugging Face Qwen2.5-VL / Qwen3-VL directory (e.g. a downloaded Qwen2.5-VL-7B-Instruct):
  every base weight loads; only the fusion weights are new (identity at start).
- A directory written by :func:`save_model`: its settings come from ``config.json`` (key ``sarvlm``).
- A PEFT adapter directory (``adapter_config.json``): the base model is loaded, then the adapter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sarvlm.core.errors import ConfigurationError, InputError, NotFoundError
from sarvlm.models.geo_vlm import GEO_FUSION_ATTR
from sarvlm.models.settings import CONFIG_KEY, Backbone, SarvlmSettings
from sarvlm.models.tiny import TINY_MODELS

MODEL_TYPES: dict[str, Backbone] = {"qwen2_5_vl": "qwen2.5-vl", "qwen3_vl": "qwen3-vl"}


def model_class(backbone: str) -> Any:
    """The sarvlm model class of a backbone."""
    if backbone == "qwen2.5-vl":
        from sarvlm.models.qwen2_5_vl import SarvlmQwen2_5_VLForConditionalGeneration

        return SarvlmQwen2_5_VLForConditionalGeneration
    if backbone == "qwen3-vl":
        from sarvlm.models.qwen3_vl import SarvlmQwen3VLForConditionalGeneration

        return SarvlmQwen3VLForConditionalGeneration
    raise ConfigurationError(f"backbone: {backbone!r} is not supported (expected qwen2.5-vl or qwen3-vl)")


def _set_generation_defaults(model: Any, processor: Any) -> None:
    gen = model.generation_config
    if gen.eos_token_id is None:
        gen.eos_token_id = [processor.eos_token_id, processor.pad_token_id]
    if gen.pad_token_id is None:
        gen.pad_token_id = processor.pad_token_id


def _finish(model: Any, processor: Any, dtype: Any, device: Any, attention: str | None = None) -> tuple[Any, Any]:
    _set_generation_defaults(model, processor)
    if dtype is not None:
        model = model.to(dtype=_dtype(dtype))
    if device is not None:
        model = model.to(device)
    if attention is not None:
        from sarvlm.models.device import resolve_attention

        param = next(model.parameters())
        model.set_attn_implementation(resolve_attention(attention, param.device, param.dtype))
    model.eval()
    return model, processor


def _dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in names:
        raise InputError(f"dtype: unknown dtype {dtype!r} (expected one of {', '.join(names)})")
    return names[dtype]


def build_tiny(
    name: str, settings: SarvlmSettings | dict | None = None, seed: int = 0, tokenizer: Any = None
) -> tuple[Any, Any]:
    """A freshly initialised tiny model and its processor (same seed → same weights).

    ``tokenizer``: the model's tokenizer (e.g. :func:`sarvlm.models.tokenizer.bpe_tokenizer`);
    default the offline byte-level one. The embedding table is sized to it."""
    from sarvlm.models.processor import SarvlmProcessor, make_image_processor
    from sarvlm.models.tiny import tiny_config, tiny_settings, tiny_tokenizer

    resolved = tiny_settings(name, settings)
    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer(name)
    config = tiny_config(name, resolved, tokenizer)
    setattr(config, CONFIG_KEY, resolved.to_dict())
    config._name_or_path = name
    cls = model_class(resolved.backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    image_processor = make_image_processor(
        resolved, patch_size=config.vision_config.patch_size, merge_size=config.vision_config.spatial_merge_size
    )
    return model, SarvlmProcessor(tokenizer, image_processor, resolved)


def read_checkpoint_settings(path: str | Path, overrides: SarvlmSettings | dict | None = None) -> SarvlmSettings:
    """Settings of a checkpoint directory: saved sarvlm settings, or defaults for a stock backbone."""
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise NotFoundError(f"{path}: not a model directory (no config.json) and not one of {', '.join(TINY_MODELS)}")
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{cfg_path}: malformed JSON ({exc.msg})") from None
    backbone = MODEL_TYPES.get(data.get("model_type"))
    if backbone is None:
        raise InputError(
            f"{cfg_path}: model_type {data.get('model_type')!r} is not a supported backbone "
            f"(expected one of {', '.join(MODEL_TYPES)})"
        )
    stored = data.get(CONFIG_KEY)
    base = (
        SarvlmSettings.parse(stored, where=f"{cfg_path}: {CONFIG_KEY}") if stored else SarvlmSettings(backbone=backbone)
    )
    if base.backbone != backbone:
        raise InputError(
            f"{cfg_path}: {CONFIG_KEY}.backbone is {base.backbone} but model_type is {data.get('model_type')}"
        )
    return base.merged(overrides, where=str(path))


def _load_adapter(
    path: Path, settings: Any, dtype: Any, device: Any, seed: int, attention: str | None = None
) -> tuple[Any, Any]:
    from peft import PeftModel

    from sarvlm.models.peft_warnings import peft_checkpointing_notice_silenced

    try:
        adapter_cfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path / 'adapter_config.json'}: malformed JSON ({exc.msg})") from None
    base = adapter_cfg.get("base_model_name_or_path")
    if not base:
        raise InputError(f"{path / 'adapter_config.json'}: base_model_name_or_path is empty")
    model, processor = load_model(base, settings=settings, seed=seed)
    with peft_checkpointing_notice_silenced():
        model = PeftModel.from_pretrained(model, str(path))
    return _finish(model, processor, dtype, device, attention)


def load_model(
    name_or_path: str | Path,
    *,
    settings: SarvlmSettings | dict | None = None,
    dtype: Any = None,
    device: Any = None,
    seed: int = 0,
    attention: str | None = None,
) -> tuple[Any, Any]:
    """Load a sarvlm model and its :class:`~sarvlm.models.processor.SarvlmProcessor`.

    Args:
        name_or_path: ``tiny-qwen2.5-vl``, ``tiny-qwen3-vl``, a stock Qwen2.5-VL / Qwen3-VL directory,
            a directory written by :func:`save_model`, a PEFT adapter directory, or a ``sarvlm train``
            run directory (its ``final`` model).
        settings: overrides of the saved (or default) :class:`SarvlmSettings`, e.g. ``{"fusion": "sum"}``.
        dtype: ``torch.bfloat16``, ``"bf16"``, ..., or ``"auto"`` (bf16 on CUDA GPUs that support it,
            fp32 elsewhere; :func:`sarvlm.models.device.resolve_dtype`). Default: as built / as saved.
        device: where to move the model: ``"auto"`` (CUDA → MPS → CPU), ``"cpu"``, ``"cuda:1"``, a
            ``torch.device``; default: stay on the CPU.
        seed: seed of the tiny models' initial weights (and of the new fusion weights of a stock checkpoint).
        attention: ``"auto"`` (FlashAttention 2 where installed and usable, else SDPA), ``"sdpa"``,
            ``"flash_attention_2"`` or ``"eager"``; default: the transformers default (SDPA).

    Returns:
        ``(model, processor)``, the model in eval mode.
    """
    from sarvlm.models.device import resolve_device, resolve_dtype

    if device is not None:
        device = resolve_device(device)
    dtype = resolve_dtype(dtype, device if device is not None else torch.device("cpu"))
    name = str(name_or_path)
    if name in TINY_MODELS:
        model, processor = build_tiny(name, settings, seed)
        return _finish(model, processor, dtype, device, attention)
    path = Path(name_or_path)
    if not path.exists():
        raise NotFoundError(f"{path}: no such model directory (or use one of {', '.join(TINY_MODELS)})")
    if not (path / "config.json").is_file() and (path / "final" / "config.json").is_file():
        path = path / "final"  # a `sarvlm train` run directory: its final (merged) model
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        return _load_adapter(path, settings, dtype, device, seed, attention)
    resolved = read_checkpoint_settings(path, settings)

    from transformers import AutoConfig

    from sarvlm.models.processor import SarvlmProcessor

    processor = SarvlmProcessor.from_pretrained(path, resolved)
    config = AutoConfig.from_pretrained(str(path))
    setattr(config, CONFIG_KEY, resolved.to_dict())
    config.geo_token_id = processor.geo_token_id
    cls = model_class(resolved.backbone)
    kwargs: dict[str, Any] = {"config": config, "output_loading_info": True}
    if dtype is not None:
        kwargs["dtype"] = _dtype(dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, info = cls.from_pretrained(str(path), **kwargs)
    missing = [k for k in info.get("missing_keys", []) if f".{GEO_FUSION_ATTR}." not in f".{k}"]
    if missing:
        more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(
            f"{path}: checkpoint lacks weight {missing[0]}{more}; not a complete {resolved.backbone} checkpoint"
        )
    return _finish(model, processor, None, device, attention)


def fusion_module(model: Any) -> torch.nn.Module:
    """The ``geo_fusion`` module of a sarvlm model (also through a PEFT wrapper)."""
    for name, module in model.named_modules():
        if name.endswith(GEO_FUSION_ATTR) and not name.endswith(f"{GEO_FUSION_ATTR}.original_module"):
            return module
    raise InputError("model: has no geo_fusion module (not a sarvlm model)")


def _pin_config_dtype(model: Any) -> None:
    """Write the weights' dtype into every sub-config: a freshly built config lacks it and a
    loaded one has it, which would make two saves of the same weights differ."""
    config = getattr(model, "config", None)
    dtype = getattr(model, "dtype", None)
    if config is None or dtype is None or not hasattr(config, "text_config"):
        return
    for sub in (config, config.text_config, config.vision_config):
        sub.dtype = dtype


def save_model(model: Any, processor: Any, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Save a model (safetensors + config with its sarvlm settings), tokenizer and image processor config.

    The directory appears complete or not at all (written to a temporary sibling, then renamed).
    A PEFT model is saved as an adapter directory (``adapter_config.json`` names its base).
    """
    from sarvlm.core.atomic import atomic_dir

    out_dir = Path(out_dir)
    _pin_config_dtype(model)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(str(tmp))
        processor.save_pretrained(tmp)
    return out_dir
