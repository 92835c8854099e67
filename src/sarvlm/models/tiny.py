"""Named tiny configurations of both backbones, for tests, the demo and CPU experiments.

``tiny-qwen2.5-vl`` and ``tiny-qwen3-vl`` are real transformers Qwen-VL configs shrunk to a
64-wide, 2-layer LLM (4 heads, 2 KV heads, M-RoPE sections summing to head_dim/2) and a
2-block, 32-wide vision tower (merge 2, out_hidden 64), with the offline byte-level
tokenizer (or any tokenizer passed to ``build_tiny``, e.g. a trained BPE). ``small-*`` (128 wide,
3 layers) and ``gpu-*`` (256 wide, 4 layers) are the same configs at larger sizes (:data:`SIZES`).
They are built by the same code path as real checkpoints (the sarvlm subclasses,
``post_init``, the same processor), only the sizes differ. A training step at batch 4 takes 60–140 ms on one core (see docs/bench/train.md).
"""

from __future__ import annotations

from typing import Any

from sarvlm.core.errors import NotFoundError
from sarvlm.models.settings import Backbone, SarvlmSettings
from sarvlm.models.tokenizer import GEO_PAD, IM_END, IMAGE_PAD, PAD, VISION_END, VISION_START, byte_level_tokenizer

# Named sizes: ``tiny`` (tests, --quick), ``small`` (the demo's default on 2 CPU cores), ``gpu``
# (the 256-wide, 4-layer model the demo's --preset gpu trains on one GPU).
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden": 64, "layers": 2, "vision_hidden": 32, "vision_depth": 2, "tlm_hidden": 32},
    "small": {"hidden": 128, "layers": 3, "vision_hidden": 64, "vision_depth": 2, "tlm_hidden": 64},
    "gpu": {"hidden": 256, "layers": 4, "vision_hidden": 128, "vision_depth": 4, "tlm_hidden": 128},
}
TINY_MODELS: dict[str, Backbone] = {
    f"{size}-{backbone}": backbone for size in SIZES for backbone in ("qwen2.5-vl", "qwen3-vl")
}
# Small images keep tests fast: between 4 and 64 merged tokens per image.
TINY_MIN_PIXELS = 56 * 56
TINY_MAX_PIXELS = 224 * 224
_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "vocab_size": 272,
}


def _size(name: str) -> dict[str, int]:
    return SIZES[name.split("-", 1)[0]]


def tiny_settings(name: str, overrides: SarvlmSettings | dict[str, Any] | None = None) -> SarvlmSettings:
    """Default settings of a tiny model (small images), with ``overrides`` applied."""
    base = SarvlmSettings(
        backbone=TINY_MODELS[name],
        min_pixels=TINY_MIN_PIXELS,
        max_pixels=TINY_MAX_PIXELS,
        tlm_hidden=_size(name)["tlm_hidden"],
        prior_grid=(4, 4),
    )
    return base.merged(overrides, where=name)


def tiny_config(name: str, settings: SarvlmSettings, tokenizer: Any) -> Any:
    """The transformers config of a tiny model, with token ids taken from ``tokenizer``."""
    ids = dict(
        zip(
            ("image", "video", "start", "end", "geo", "eos", "pad"),
            tokenizer.convert_tokens_to_ids(
                [IMAGE_PAD, "<|video_pad|>", VISION_START, VISION_END, GEO_PAD, IM_END, PAD]
            ),
        )
    )
    # the byte-level tokenizer's 270 tokens fit the default 272; a BPE vocabulary sets the size
    # (rounded up to a multiple of 16, as real vocabularies are padded)
    vocab_size = max(_TEXT["vocab_size"], -(-len(tokenizer) // 16) * 16)
    common = {
        "image_token_id": ids["image"],
        "video_token_id": ids["video"],
        "vision_start_token_id": ids["start"],
        "vision_end_token_id": ids["end"],
        "tie_word_embeddings": False,
    }
    config: Any
    if name not in TINY_MODELS:
        raise NotFoundError(f"{name}: unknown tiny model (expected one of {', '.join(TINY_MODELS)})")
    size = _size(name)
    # 4 heads: head_dim = hidden / 4; M-RoPE sections (t, h, w) sum to head_dim / 2
    half = size["hidden"] // 8
    mrope = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    sized = {
        **_TEXT,
        "hidden_size": size["hidden"],
        "intermediate_size": 2 * size["hidden"],
        "num_hidden_layers": size["layers"],
        "vocab_size": vocab_size,
    }
    vis = size["vision_hidden"]
    if TINY_MODELS[name] == "qwen2.5-vl":
        from transformers import Qwen2_5_VLConfig

        text = {
            **sized,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope},
            "bos_token_id": ids["pad"],
            "eos_token_id": ids["eos"],
            "pad_token_id": ids["pad"],
        }
        vision = {
            "depth": size["vision_depth"],
            "hidden_size": vis,
            "intermediate_size": 2 * vis,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": size["hidden"],
            "window_size": 56,
            "fullatt_block_indexes": [size["vision_depth"] - 1],
        }
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **common)
    else:
        from transformers import Qwen3VLConfig

        text = {
            **sized,
            "head_dim": size["hidden"] // 4,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": mrope,
                "mrope_interleaved": True,
            },
            "pad_token_id": ids["pad"],
        }
        vision = {
            "depth": size["vision_depth"],
            "hidden_size": vis,
            "intermediate_size": 2 * vis,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": size["hidden"],
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [0],
        }
        config = Qwen3VLConfig(text_config=text, vision_config=vision, **common)
    text_config: Any = config.text_config
    text_config.eos_token_id = ids["eos"]
    text_config.bos_token_id = ids["pad"]
    config.geo_token_id = ids["geo"]
    return config


def tiny_tokenizer(name: str) -> Any:
    return byte_level_tokenizer(TINY_MODELS[name])
