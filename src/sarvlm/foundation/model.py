"""KlipModel: FUSAR-KLIP's dual encoder + fusion (paper 004 §3.3), built from transformers parts.

- image tower: ``ViTModel`` (``num_channels`` 1 for SAR; see :mod:`sarvlm.foundation.transforms`);
- text tower: one ``BertLMHeadModel`` (cross-attention in every layer, SDPA attention) whose ``bert``
  is used three ways, as in BLIP: unimodal ([CLS], no image: ITC), image-grounded ([ENC],
  cross-attention to the image tokens: ITM and MLM, through the ``cls`` head), and causal ([DEC]:
  captioning). The mode is chosen per call by the attention mask: a 2-D padding mask gives BERT's
  causal decoder mask; the bidirectional modes pass a prepared 4-D mask
  (:func:`bidirectional_attention_mask`), which transformers uses as given. BLIP's own text model in
  transformers (``BlipTextModel``) has only eager attention, which was a third of a tiny-klip step;
- ``image_to_text``: a linear map of the image tokens to the text width, present only when the two
  widths differ (BERT's cross-attention reads its own width; BLIP's reads ``encoder_width``);
- projections to the shared ``embed_dim`` space, an ITM head, a learnable temperature;
- momentum copies of the image tower, text encoder and projections, and a feature queue
  (:mod:`sarvlm.foundation.momentum`), for ITC soft targets.

Saved as ``config.json`` + ``model.safetensors`` (momentum weights and queues included, so a
reloaded model continues bit-exactly) + ``tokenizer/``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sarvlm.core.errors import ConfigurationError
from sarvlm.foundation.checkpoint import (
    load_checkpoint_weights,
    portable_config,
    read_checkpoint_meta,
    write_checkpoint,
)
from sarvlm.foundation.config import KlipConfig, config_from_dict
from sarvlm.foundation.losses import (
    ContrastiveLoss,
    fragment_itc_loss,
    itm_loss,
    mask_tokens,
    sample_hard_negatives,
)
from sarvlm.foundation.momentum import MomentumDistillationMixin, SharedQueueMixin
from sarvlm.foundation.tokenizer import special_ids

ARCHITECTURE = "sarvlm-klip"


@dataclass
class KlipOutput:
    loss: torch.Tensor
    loss_itc: torch.Tensor
    loss_itm: torch.Tensor
    loss_mlm: torch.Tensor


def _vit_config(config: KlipConfig):
    from transformers import ViTConfig

    v = config.vision
    return ViTConfig(
        image_size=v.image_size,
        patch_size=v.patch_size,
        num_channels=v.num_channels,
        hidden_size=v.hidden_size,
        num_hidden_layers=v.num_hidden_layers,
        num_attention_heads=v.num_attention_heads,
        intermediate_size=v.intermediate_size,
        initializer_range=0.02,
        qkv_bias=True,
    )


def _text_config(config: KlipConfig, vocab_size: int, ids: dict[str, int]):
    from transformers import BertConfig

    t = config.text
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=t.hidden_size,
        intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_hidden_layers,
        num_attention_heads=t.num_attention_heads,
        max_position_embeddings=t.max_length,
        initializer_range=0.02,
        pad_token_id=ids["pad"],
        bos_token_id=ids["dec"],
        eos_token_id=ids["sep"],
        # no dropout (BLIP's transformers text config has none): rows stay independent, so the fused
        # ITM + MLM pass equals separate passes, and CPU curves are reproducible
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        type_vocab_size=1,  # one segment: BERT's segment-0 embedding, nothing else
        is_decoder=True,  # causal by default (captioning); the bidirectional modes pass a 4-D mask
        add_cross_attention=True,
        use_cache=False,  # a decoder config would otherwise keep keys/values in every training pass
        attn_implementation=t.attention,  # type: ignore[call-arg]  # a PreTrainedConfig kwarg, not a BERT field
    )


def bidirectional_attention_mask(text_config: Any, attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(B, L)`` padding mask -> prepared ``(B, 1, L, L)`` mask that attends both ways.

    Built by transformers for the configured attention implementation (boolean for SDPA, additive for
    eager) and always materialised: with no mask at all, a decoder-configured BERT would attend causally.
    """
    from transformers.masking_utils import create_bidirectional_mask

    b, length = attention_mask.shape
    shape_probe = torch.empty((b, length, 1), dtype=dtype, device=attention_mask.device)
    mask = create_bidirectional_mask(
        config=text_config,
        inputs_embeds=shape_probe,
        attention_mask=attention_mask,
        allow_is_bidirectional_skip=False,
    )
    if mask is None:  # pragma: no cover - only attention kernels without 4-D masks (flash) return None
        raise ConfigurationError(f"text attention {text_config._attn_implementation!r} cannot run bidirectionally")
    return mask


def pool_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor | None, mode: str) -> torch.Tensor:
    """``(B, L, D)`` token states -> ``(B, D)``: token 0 (``cls``) or the mean over unmasked tokens (``mean``)."""
    if mode == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        return hidden.mean(1)
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


class KlipModel(nn.Module, MomentumDistillationMixin, SharedQueueMixin):
    """BLIP-style SAR image-text model with ITC (queue + momentum soft targets), ITM (hard negatives), MLM."""

    def __init__(self, config: KlipConfig, tokenizer: Any) -> None:
        super().__init__()
        from transformers import BertLMHeadModel, ViTModel

        self.tokenizer = tokenizer
        self.ids = special_ids(tokenizer)
        vocab = len(tokenizer)
        self.config = config.model_copy(deep=True)
        self.config.text.vocab_size = vocab
        self.visual_encoder = ViTModel(_vit_config(config), add_pooling_layer=False)
        self.text = BertLMHeadModel(_text_config(config, vocab, self.ids))
        with torch.no_grad():  # a from-scratch tower starts with no segment signal (BLIP's text has none)
            self.text.bert.embeddings.token_type_embeddings.weight.zero_()
        if config.vision.hidden_size != config.text.hidden_size:
            self.image_to_text: nn.Module | None = nn.Linear(config.vision.hidden_size, config.text.hidden_size)
        else:
            self.image_to_text = None
        self.vision_proj = nn.Linear(config.vision.hidden_size, config.embed_dim)
        self.text_proj = nn.Linear(config.text.hidden_size, config.embed_dim)
        self.itm_head = nn.Linear(config.text.hidden_size, 2)
        self.itc = ContrastiveLoss(config.temperature)
        self.momentum = config.momentum
        self.visual_encoder_m = copy.deepcopy(self.visual_encoder)
        self.vision_proj_m = copy.deepcopy(self.vision_proj)
        self.text_encoder_m = copy.deepcopy(self.text.bert)
        self.text_proj_m = copy.deepcopy(self.text_proj)
        self.model_pairs = [
            (self.visual_encoder, self.visual_encoder_m),
            (self.vision_proj, self.vision_proj_m),
            (self.text.bert, self.text_encoder_m),
            (self.text_proj, self.text_proj_m),
        ]
        self.copy_params()
        d, q = config.embed_dim, config.queue_size
        self.register_buffer("image_queue", F.normalize(torch.randn(d, q), dim=0))
        self.register_buffer("text_queue", F.normalize(torch.randn(d, q), dim=0))
        self.register_buffer("idx_queue", torch.full((1, q), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    # ---- encoders -------------------------------------------------------------------------
    def encode_image(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, S, S)`` -> image tokens ``(B, 1 + (S/p)^2, Dv)`` and ITC feature ``(B, embed_dim)`` (unit norm)."""
        embeds = self.visual_encoder(pixel_values=pixel_values).last_hidden_state
        return embeds, F.normalize(self.vision_proj(pool_tokens(embeds, None, self.config.image_pooling)), dim=-1)

    def _bidirectional(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` -> the ``(B, 1, L, L)`` mask of the unimodal and image-grounded (non-causal) modes."""
        dtype = self.text.bert.embeddings.word_embeddings.weight.dtype
        return bidirectional_attention_mask(self.text.config, attention_mask, dtype)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unimodal text ``(B, L)`` -> ITC feature ``(B, embed_dim)`` (unit norm; [CLS] or mean pooled)."""
        out = self.text.bert(input_ids=input_ids, attention_mask=self._bidirectional(attention_mask))
        pooled = pool_tokens(out.last_hidden_state, attention_mask, self.config.text_pooling)
        return F.normalize(self.text_proj(pooled), dim=-1)

    def text_context(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Image tokens ``(B, N, Dv)`` -> what the text cross-attention reads ``(B, N, Dt)``."""
        return image_embeds if self.image_to_text is None else self.image_to_text(image_embeds)

    def fuse(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """Image-grounded encoder: text ``(B, L)`` with [ENC] first, image tokens ``(B, N, Dv)`` -> ``(B, L, Dt)``."""
        ids = input_ids.clone()
        ids[:, 0] = self.ids["enc"]
        image_atts = torch.ones(image_embeds.shape[:2], dtype=torch.long, device=image_embeds.device)
        out = self.text.bert(
            input_ids=ids,
            attention_mask=self._bidirectional(attention_mask),
            encoder_hidden_states=self.text_context(image_embeds),
            encoder_attention_mask=image_atts,
        )
        return out.last_hidden_state

    def itm_logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_embeds: torch.Tensor
    ) -> torch.Tensor:
        """ITM logits ``(B, 2)`` (index 1 = match), from the fused [ENC] token or the fused tokens' mean."""
        fused = self.fuse(input_ids, attention_mask, image_embeds)
        return self.itm_head(pool_tokens(fused, attention_mask, self.config.text_pooling))

    def itm_probability(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_embeds: torch.Tensor
    ) -> torch.Tensor:
        """Match probability ``(B,)``."""
        return F.softmax(self.itm_logits(input_ids, attention_mask, image_embeds).float(), dim=-1)[:, 1]

    def mlm_logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_embeds: torch.Tensor
    ) -> torch.Tensor:
        """Image-grounded masked-token logits ``(B, L, V)``."""
        return self.text.cls(self.fuse(input_ids, attention_mask, image_embeds))

    def tokenize(self, texts: list[str], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> ``input_ids``, ``attention_mask`` ``(B, L)`` (padded to the longest, cut at ``max_length``)."""
        enc = self.tokenizer(
            texts, padding="longest", truncation=True, max_length=self.config.text.max_length, return_tensors="pt"
        )
        return enc["input_ids"].to(device), enc["attention_mask"].to(device)

    # ---- pretraining ----------------------------------------------------------------------
    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        idx: torch.Tensor,
        alpha: float | None = None,
        mlm_protect: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        itm_text_negatives: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        fragments: tuple[torch.Tensor, ...] | None = None,
    ) -> KlipOutput:
        """One pretraining step's losses (Eq. 7 with the config's weights).

        ``pixel_values`` ``(B, C, S, S)``, ``input_ids``/``attention_mask`` ``(B, L)`` starting with [CLS],
        ``idx`` ``(B,)`` sample indices (same index = same image: never a negative),
        ``mlm_protect`` ``(B, L)`` tokens excluded from MLM targets (SCIO phase 2),
        ``itm_text_negatives`` extra ITM negatives ``(ids (R, L'), attention (R, L'), row (R,))``, each
        text paired with batch row ``row``'s image (fragment swaps, :mod:`sarvlm.foundation.fragments`),
        ``fragments`` the batch's caption fragments as texts for the fragment-level ITC loss:
        ``(ids (M, Lf), attention (M, Lf), row (M,), field (M,), value (M,))`` (used when
        ``train.loss_weights['fragment_itc']`` > 0; :func:`sarvlm.foundation.losses.fragment_itc_loss`).
        """
        alpha = self.config.alpha if alpha is None else alpha
        b = pixel_values.shape[0]
        image_embeds, image_feat = self.encode_image(pixel_values)
        text_feat = self.encode_text(input_ids, attention_mask)

        with torch.no_grad():
            self.momentum_update()
            image_embeds_m = self.visual_encoder_m(pixel_values=pixel_values).last_hidden_state
            pooled_m = pool_tokens(image_embeds_m, None, self.config.image_pooling)
            image_feat_m = F.normalize(self.vision_proj_m(pooled_m), dim=-1)
            text_out_m = self.text_encoder_m(input_ids=input_ids, attention_mask=self._bidirectional(attention_mask))
            pooled_m = pool_tokens(text_out_m.last_hidden_state, attention_mask, self.config.text_pooling)
            text_feat_m = F.normalize(self.text_proj_m(pooled_m), dim=-1)
            image_all = torch.cat([image_feat_m.T, self.image_queue.clone().detach()], dim=1)
            text_all = torch.cat([text_feat_m.T, self.text_queue.clone().detach()], dim=1)
            idx_all = torch.cat([idx.view(1, -1), self.idx_queue.clone().detach()], dim=1).view(-1)

        loss_itc, sim_i2t, sim_t2i = self.itc(
            image_feat, text_feat, image_feat_m, text_feat_m, image_all, text_all, idx, idx_all, alpha
        )
        self.dequeue_and_enqueue(image_feat_m, text_feat_m, idx)

        # ITM: B positives, then for every text a hard negative image and for every image a hard negative text.
        neg_img, neg_txt = sample_hard_negatives(sim_i2t, sim_t2i, idx, generator)
        # MLM on the image-grounded encoder: the masked texts with their own images.
        ids = self.ids
        mlm_ids, labels = mask_tokens(
            input_ids,
            ids["mask"],
            self.config.text.vocab_size,
            (ids["pad"], ids["cls"], ids["sep"], ids["enc"], ids["dec"]),
            self.config.mlm_probability,
            generator,
            mlm_protect,
        )
        # One image-grounded pass over the 3B ITM pairs and the B MLM texts (BLIP runs two): the encoder
        # treats every row independently (no dropout, per-token norms), so the result is the same and
        # the per-operation overhead that dominates small models is paid once.
        ids_itm = [input_ids, input_ids, input_ids[neg_txt]]
        att_itm = [attention_mask, attention_mask, attention_mask[neg_txt]]
        img_itm = [image_embeds, image_embeds[neg_img], image_embeds]
        if itm_text_negatives is not None and len(itm_text_negatives[2]):
            extra_ids, extra_att, extra_rows = itm_text_negatives
            width = max(input_ids.shape[1], extra_ids.shape[1])
            ids_itm = [F.pad(t, (0, width - t.shape[1]), value=self.ids["pad"]) for t in [*ids_itm, extra_ids]]
            att_itm = [F.pad(t, (0, width - t.shape[1]), value=0) for t in [*att_itm, extra_att]]
            img_itm.append(image_embeds[extra_rows])
            mlm_ids = F.pad(mlm_ids, (0, width - mlm_ids.shape[1]), value=self.ids["pad"])
            labels = F.pad(labels, (0, width - labels.shape[1]), value=-100)
            att_mlm = F.pad(attention_mask, (0, width - attention_mask.shape[1]), value=0)
        else:
            att_mlm = attention_mask
        n_itm = sum(t.shape[0] for t in ids_itm)
        ids_all = torch.cat([*ids_itm, mlm_ids], dim=0)
        att_all = torch.cat([*att_itm, att_mlm], dim=0)
        img_all = torch.cat([*img_itm, image_embeds], dim=0)
        fused = self.fuse(ids_all, att_all, img_all)  # (n_itm + B, L, Dt)
        pooled = pool_tokens(fused[:n_itm], att_all[:n_itm], self.config.text_pooling)
        loss_itm = itm_loss(self.itm_head(pooled), b)
        # the vocabulary head only on the ~15 % of positions that are MLM targets (the loss ignores the rest;
        # on every token it was a quarter of a tiny-klip step)
        targets = labels != -100
        logits = self.text.cls(fused[n_itm:][targets])  # (targets, V)
        if targets.any():
            loss_mlm = F.cross_entropy(logits.float(), labels[targets])
        else:
            loss_mlm = fused[n_itm:].sum() * 0.0
        w = self.config.train.loss_weights
        loss = w.get("itc", 1.0) * loss_itc + w.get("itm", 1.0) * loss_itm + w.get("mlm", 1.0) * loss_mlm
        if fragments is not None and w.get("fragment_itc", 0.0) > 0:
            f_ids, f_att, f_row, f_field, f_value = fragments
            frag_feat = self.encode_text(f_ids, f_att)
            loss_frag = fragment_itc_loss(image_feat, frag_feat, f_row, f_field, f_value, self.itc.clamped_temp())
            loss = loss + w["fragment_itc"] * loss_frag
        return KlipOutput(loss, loss_itc.detach(), loss_itm.detach(), loss_mlm.detach())

    # ---- persistence ----------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json``, ``model.safetensors`` and ``tokenizer/`` into ``directory`` (must exist)."""
        meta = {"architecture": ARCHITECTURE, "config": portable_config(self.config)}
        write_checkpoint(self, self.tokenizer, directory, meta)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> KlipModel:
        """Load a directory written by :meth:`save_pretrained`; another architecture fails with one line."""
        from sarvlm.foundation.tokenizer import load_tokenizer

        directory = Path(directory)
        meta = read_checkpoint_meta(directory, "a KLIP checkpoint")
        if not isinstance(meta, dict) or meta.get("architecture") != ARCHITECTURE:
            found = meta.get("architecture") or meta.get("model_type") or "unknown" if isinstance(meta, dict) else "?"
            raise ConfigurationError(
                f"{directory}: wrong architecture {found!r} (expected a {ARCHITECTURE} checkpoint from `sarvlm pretrain`)"
            )
        config = config_from_dict(meta.get("config"), str(directory / "config.json"))
        model = cls(config, load_tokenizer(directory / "tokenizer"))
        load_checkpoint_weights(model, directory, map_location)
        return model


def build_model(config: KlipConfig, texts: list[str] | None = None) -> KlipModel:
    """A new model: towers from scratch or from ``init_from`` checkpoints; tokenizer trained on ``texts``
    (from scratch) or taken from the text checkpoint."""
    from sarvlm.foundation.init_weights import init_text_tower, init_vision_tower
    from sarvlm.foundation.tokenizer import load_tokenizer, train_tokenizer

    if config.text.init_from:
        tokenizer = load_tokenizer(config.text.init_from)
    else:
        if not texts:
            raise ConfigurationError("a from-scratch tokenizer needs the training texts")
        tokenizer = train_tokenizer(texts, config.text.vocab_size)
    model = KlipModel(config, tokenizer)
    if config.vision.init_from:
        init_vision_tower(model, config.vision.init_from)
    if config.text.init_from:
        init_text_tower(model, config.text.init_from)
    model.copy_params()
    return model
