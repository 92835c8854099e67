"""Qwen2.5-VL with geospatial priors fused into its merged visual tokens (FUSAR-GPT).

``SarvlmQwen2_5_VLForConditionalGeneration`` is the stock transformers model plus one module,
``model.model.geo_fusion``; every stock weight keeps its name, so a stock checkpoint loads
into it with only the fusion weights missing (the legacy-key conversion of the stock class
is registered for this class too).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache
from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLModel
from transformers.utils.generic import accepts_precomputed_kwargs, can_return_tuple

from sarvlm.models.geo_vlm import GeoFusionInitMixin, GeoVLMModelMixin, split_encoder_call


class SarvlmQwen2_5_VLModel(GeoVLMModelMixin, Qwen2_5_VLModel):
    """``Qwen2_5_VLModel`` whose image features pass through ``geo_fusion``."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._init_geo_fusion(config)

    @accepts_precomputed_kwargs(modality="image")
    @can_return_tuple
    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        image_grid_thw: torch.LongTensor | None = None,
        geo_priors: torch.Tensor | None = None,
        geo_positions: torch.Tensor | None = None,
        geo_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        """Merged visual tokens per image, fused with the priors (one prior row per image)."""
        out = super().get_image_features(pixel_values, image_grid_thw, return_dict=True, **kwargs)
        n_images = len(out.pooler_output)
        out.pooler_output = self.fuse_image_tokens(
            out.pooler_output, image_grid_thw, geo_priors, geo_positions, geo_mask
        )
        self.attach_prior_tokens(out, n_images, geo_priors, geo_positions, geo_mask)
        return out

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        mm_token_type_ids: torch.IntTensor | None = None,
        second_per_grid_ts: torch.Tensor | None = None,
        mm_encoder_outputs: dict | None = None,
        geo_priors: torch.Tensor | None = None,
        geo_positions: torch.Tensor | None = None,
        geo_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        if split_encoder_call(pixel_values, mm_encoder_outputs):
            mm_encoder_outputs = dict(mm_encoder_outputs or {})
            mm_encoder_outputs["image"] = self.get_image_features(
                pixel_values,
                image_grid_thw,
                geo_priors=geo_priors,
                geo_positions=geo_positions,
                geo_mask=geo_mask,
                return_dict=True,
                **kwargs,
            )
            pixel_values = None
        # The KV cache travels under the caller's name: `cache` (transformers >= 5.24, in kwargs) or
        # `past_key_values` (older). Always passing past_key_values=None made every step warn.
        if past_key_values is not None:
            kwargs["past_key_values"] = past_key_values
        image_output = (mm_encoder_outputs or {}).get("image")
        with self.prior_token_embeddings(input_ids, image_output):
            return super().forward(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                inputs_embeds=inputs_embeds,
                use_cache=use_cache,
                pixel_values=pixel_values,
                pixel_values_videos=pixel_values_videos,
                image_grid_thw=image_grid_thw,
                video_grid_thw=video_grid_thw,
                mm_token_type_ids=mm_token_type_ids,
                second_per_grid_ts=second_per_grid_ts,
                mm_encoder_outputs=mm_encoder_outputs,
                **kwargs,
            )


class SarvlmQwen2_5_VLForConditionalGeneration(GeoFusionInitMixin, Qwen2_5_VLForConditionalGeneration):
    """Qwen2.5-VL + geospatial prior fusion; ``forward``/``generate`` take ``geo_priors``, ``geo_positions``, ``geo_mask``."""

    # The loss is a sum over the answer tokens of the whole global batch divided by their count
    # (the Trainer passes ``num_items_in_batch``, gathered across processes and accumulation steps),
    # so N processes × batch B train like one process × batch N·B. The stock class opts out.
    accepts_loss_kwargs = True

    def __init__(self, config: Any) -> None:
        # The stock constructor sets up everything a transformers release adds (lm_head, tied
        # keys, parallel plans, ...); only its inner model is swapped for the fusion-aware one.
        # ``from_pretrained`` builds on the meta device, so the discarded stock inner model
        # costs no memory there. post_init again: initialise the new inner model, re-gather
        # what the top-level model collects from its children (tied weights, fp32 modules).
        super().__init__(config)
        self.model = SarvlmQwen2_5_VLModel(config)
        self.post_init()

    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        image_grid_thw: torch.LongTensor | None = None,
        geo_priors: torch.Tensor | None = None,
        geo_positions: torch.Tensor | None = None,
        geo_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        return self.model.get_image_features(
            pixel_values,
            image_grid_thw,
            geo_priors=geo_priors,
            geo_positions=geo_positions,
            geo_mask=geo_mask,
            **kwargs,
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        mm_token_type_ids: torch.IntTensor | None = None,
        second_per_grid_ts: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: dict | None = None,
        geo_priors: torch.Tensor | None = None,
        geo_positions: torch.Tensor | None = None,
        geo_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        if split_encoder_call(pixel_values, mm_encoder_outputs):
            mm_encoder_outputs = dict(mm_encoder_outputs or {})
            mm_encoder_outputs["image"] = self.model.get_image_features(
                pixel_values,
                image_grid_thw,
                geo_priors=geo_priors,
                geo_positions=geo_positions,
                geo_mask=geo_mask,
                return_dict=True,
            )
            pixel_values = None
        # The KV cache travels under the caller's name: `cache` (transformers >= 5.24, in kwargs) or
        # `past_key_values` (older). Always passing past_key_values=None made every step warn.
        if past_key_values is not None:
            kwargs["past_key_values"] = past_key_values
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            pixel_values=pixel_values,
            pixel_values_videos=pixel_values_videos,
            image_grid_thw=image_grid_thw,
            video_grid_thw=video_grid_thw,
            mm_token_type_ids=mm_token_type_ids,
            second_per_grid_ts=second_per_grid_ts,
            logits_to_keep=logits_to_keep,
            mm_encoder_outputs=mm_encoder_outputs,
            **kwargs,
        )


# Stock checkpoints may use the legacy key layout (model.layers.* / visual.*); the stock class
# converts them on load, a subclass only if its name is registered too.
_conversion = get_checkpoint_conversion_mapping(
    "Qwen2_5_VLForConditionalGeneration"
) or get_checkpoint_conversion_mapping("qwen2_5_vl")
if _conversion is not None:
    register_checkpoint_conversion_mapping("SarvlmQwen2_5_VLForConditionalGeneration", _conversion, overwrite=True)
