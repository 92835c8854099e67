"""What the Qwen2.5-VL and Qwen3-VL subclasses share: priors into the merged visual tokens.

The vision tower's ``pooler_output`` holds the merged tokens of each image in raster order
over ``(t, H/merge, W/merge)``; the model's ``geo_fusion`` (TLM, sum, concat or none) is
applied to them image by image inside ``get_image_features``, which ``generate()`` also calls
once before prefill (it forwards every kwarg named in that signature, so the prior tensors
are explicit parameters there and in ``forward``).

Prior tensors carry one row per image in the batch, in the order the images' placeholder
tokens appear: ``geo_priors`` ``(N_img, S, D)``, ``geo_positions`` ``(N_img, S, 2)`` (y, x) in
[0, 1], ``geo_mask`` ``(N_img, S)`` bool. A row whose mask is all False leaves its image's
tokens exactly unchanged, so a batch mixes images with and without priors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import torch
from transformers import initialization as hf_init

from sarvlm.models.fusion import build_fusion
from sarvlm.models.settings import CONFIG_KEY, SarvlmSettings
from sarvlm.models.tlm import ZERO_INIT_ATTR

GEO_FUSION_ATTR = "geo_fusion"


def settings_from_config(config: Any) -> SarvlmSettings:
    """The sarvlm settings stored on a (composite) Qwen-VL config, defaults if absent."""
    return SarvlmSettings.parse(getattr(config, CONFIG_KEY, None), where="config.json: sarvlm")


class GeoFusionInitMixin:
    """Zero-initialises the fusion output layer wherever transformers (re-)initialises weights.

    ``post_init`` and ``from_pretrained`` (for weights missing from a stock checkpoint) go
    through ``_init_weights``, which would redraw a zero layer at random. The layer is found
    by its marker (see :data:`sarvlm.models.tlm.ZERO_INIT_ATTR`): transformers skips modules
    without parameters of their own (the TLM itself) for classes defined outside it.
    """

    def _init_weights(self, module: torch.nn.Module) -> None:
        super()._init_weights(module)  # type: ignore[misc]
        if getattr(module, ZERO_INIT_ATTR, False):
            layer = cast(torch.nn.Linear, module)  # the marker sits on the fusion's output Linear only
            hf_init.zeros_(layer.weight)
            if layer.bias is not None:
                hf_init.zeros_(layer.bias)


class GeoVLMModelMixin(GeoFusionInitMixin):
    """Mixed into the inner ``Qwen*VLModel``: owns ``geo_fusion`` and applies it."""

    if TYPE_CHECKING:  # provided by the transformers model this is mixed into
        visual: Any
        config: Any

        def get_input_embeddings(self) -> torch.nn.Module: ...

    def _init_geo_fusion(self, config: Any) -> None:
        settings = settings_from_config(config)
        self.sarvlm_settings = settings
        fusion: Any = build_fusion(  # TLM / SumFusion / ConcatFusion / NoFusion: each has reset_identity
            settings.fusion,
            prior_dim=settings.prior_dim,
            channels=config.vision_config.out_hidden_size,
            hidden=settings.tlm_hidden,
            sigma=settings.tlm_sigma,
            eps=settings.tlm_eps,
            num_tokens=settings.num_prior_tokens,
        )
        setattr(self, GEO_FUSION_ATTR, fusion)
        fusion.reset_identity()

    def _check_geo_inputs(
        self, n_images: int, geo_priors: torch.Tensor, geo_positions: torch.Tensor | None, geo_mask: torch.Tensor | None
    ) -> torch.Tensor:
        if geo_priors.dim() != 3 or geo_priors.shape[0] != n_images:
            raise ValueError(f"geo_priors must be (N_img={n_images}, S, D), got {tuple(geo_priors.shape)}")
        if geo_positions is None or tuple(geo_positions.shape) != (*geo_priors.shape[:2], 2):
            got = None if geo_positions is None else tuple(geo_positions.shape)
            raise ValueError(f"geo_positions must be {(*geo_priors.shape[:2], 2)}, got {got}")
        if geo_mask is None:
            geo_mask = torch.ones(geo_priors.shape[:2], dtype=torch.bool, device=geo_priors.device)
        elif tuple(geo_mask.shape) != tuple(geo_priors.shape[:2]):
            raise ValueError(f"geo_mask must be {tuple(geo_priors.shape[:2])}, got {tuple(geo_mask.shape)}")
        return geo_mask.bool()

    def fuse_image_tokens(
        self,
        embeds: tuple[torch.Tensor, ...],
        image_grid_thw: torch.Tensor | None,
        geo_priors: torch.Tensor | None,
        geo_positions: torch.Tensor | None,
        geo_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, ...]:
        """Apply ``geo_fusion`` to each image's merged tokens (a tuple, one tensor per image)."""
        fusion = getattr(self, GEO_FUSION_ATTR)
        # Attribute checks, not isinstance: under PEFT ``modules_to_save`` the module is a wrapper
        # that forwards attribute lookups to the active copy.
        if geo_priors is None or getattr(fusion, "appends_tokens", False):
            return embeds
        geo_mask = self._check_geo_inputs(len(embeds), geo_priors, geo_positions, geo_mask)
        if geo_positions is None or image_grid_thw is None:  # the check above raises first; for the type checker
            raise ValueError("geo_positions and image_grid_thw are needed with geo_priors")
        merge = self.visual.spatial_merge_size
        out = []
        for i, tokens in enumerate(embeds):
            if not bool(geo_mask[i].any()):
                out.append(tokens)  # no valid prior: exactly unchanged
                continue
            _, h, w = (int(v) for v in image_grid_thw[i])
            pri = geo_priors[i : i + 1].to(tokens.device)
            fused = fusion(
                tokens[None],
                (h // merge, w // merge),
                pri,
                geo_positions[i : i + 1].to(tokens.device),
                geo_mask[i : i + 1].to(tokens.device),
            )
            out.append(fused[0])
        return tuple(out)

    def attach_prior_tokens(
        self,
        output: Any,
        n_images: int,
        geo_priors: torch.Tensor | None,
        geo_positions: torch.Tensor | None,
        geo_mask: torch.Tensor | None,
    ) -> None:
        """``concat`` fusion: store each image's projected prior tokens on the encoder output."""
        fusion = getattr(self, GEO_FUSION_ATTR)
        if not getattr(fusion, "appends_tokens", False):
            return
        settings = self.sarvlm_settings
        s = settings.num_prior_tokens
        if geo_priors is None:
            dtype = fusion.mlp[0].weight.dtype
            device = fusion.mlp[0].weight.device
            geo_priors = torch.zeros(n_images, s, settings.prior_dim, dtype=dtype, device=device)
            geo_positions = torch.zeros(n_images, s, 2, dtype=dtype, device=device)
            geo_mask = torch.zeros(n_images, s, dtype=torch.bool, device=device)
        geo_mask = self._check_geo_inputs(n_images, geo_priors, geo_positions, geo_mask)
        if geo_priors.shape[1] > s:
            raise ValueError(
                f"concat fusion expects at most S={s} priors per image (prior_grid "
                f"{list(settings.prior_grid)}), got {geo_priors.shape[1]}"
            )
        if geo_priors.shape[1] < s:  # a collator padded to fewer nodes: the rest are invalid slots
            pad = s - geo_priors.shape[1]
            geo_priors = torch.nn.functional.pad(geo_priors, (0, 0, 0, pad))
            geo_mask = torch.nn.functional.pad(geo_mask, (0, pad), value=False)
        output.geo_prior_tokens = fusion.prior_tokens(geo_priors, geo_mask)  # (N_img, S, C)
        output.geo_prior_mask = geo_mask

    @contextlib.contextmanager
    def prior_token_embeddings(self, input_ids: torch.Tensor | None, image_output: Any) -> Iterator[None]:
        """While active, the input embedding layer writes ``concat`` prior tokens at their placeholders.

        The stock forward computes ``inputs_embeds`` from ``input_ids`` itself (and Qwen3-VL refuses
        both at once), so the tokens are written by a forward hook on the embedding layer.
        """
        tokens = getattr(image_output, "geo_prior_tokens", None) if image_output is not None else None
        geo_token_id = getattr(self.config, "geo_token_id", None)
        if tokens is None or input_ids is None or geo_token_id is None:
            yield
            return
        where = input_ids == geo_token_id
        n_slots = int(where.sum())
        if n_slots == 0:
            yield
            return
        flat_tokens = tokens.reshape(-1, tokens.shape[-1])
        flat_valid = image_output.geo_prior_mask.reshape(-1)
        if n_slots != flat_tokens.shape[0]:
            raise ValueError(
                f"concat fusion: {n_slots} prior placeholders in input_ids but "
                f"{flat_tokens.shape[0]} prior tokens (images x S)"
            )

        def write_tokens(module: torch.nn.Module, args: Any, embeds: torch.Tensor) -> torch.Tensor:
            embeds = embeds.clone()
            current = embeds[where]
            embeds[where] = torch.where(flat_valid[:, None].to(embeds.device), flat_tokens.to(embeds.dtype), current)
            return embeds

        handle = self.get_input_embeddings().register_forward_hook(write_tokens)
        try:
            yield
        finally:
            handle.remove()


def split_encoder_call(pixel_values: torch.Tensor | None, mm_encoder_outputs: dict | None) -> bool:
    """True when forward must encode the images itself (pixels given, nothing precomputed)."""
    return pixel_values is not None and (mm_encoder_outputs or {}).get("image") is None
