"""KLIP's image-grounded text decoder, fine-tuned for captioning or VQA (BLIP's ``blip_decoder`` / ``blip_vqa``).

Built from a pretrained :class:`~sarvlm.foundation.model.KlipModel` (``RUN/final``):

- ``caption``: the ViT image tower + the KLIP text tower in causal ([DEC]) mode, whose
  cross-attention reads the image tokens. Input ``[DEC] caption [SEP]``; next-token loss on the
  caption; generation starts from ``[DEC]`` and stops at ``[SEP]``.
- ``vqa``: the ViT + a question encoder (the KLIP text encoder in image-grounded [ENC] mode:
  bidirectional, cross-attention to the image tokens) + an answer decoder (a copy of the KLIP text
  tower in causal mode whose cross-attention reads the *question states*), as BLIP's VQA model.
  Every cross-attention reads text-width states (image tokens pass through KLIP's ``image_to_text``
  when the widths differ), so all of the answer decoder's weights start from the pretrained tower.

Shapes: images ``(B, C, S, S)`` -> image tokens ``(B, 1 + (S/p)², Dv)``; question ``(B, Lq)`` ->
question states ``(B, Lq, Dt)``; targets ``(B, L)`` -> logits ``(B, L, V)``.

Saved as ``config.json`` (``architecture: sarvlm-klip-caption`` / ``sarvlm-klip-vqa``, the KLIP
config and the fine-tuning settings) + ``model.safetensors`` + ``tokenizer/``.
"""

from __future__ import annotations

import json
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
from sarvlm.foundation.model import bidirectional_attention_mask
from sarvlm.foundation.tokenizer import special_ids

ARCHITECTURES = {"caption": "sarvlm-klip-caption", "vqa": "sarvlm-klip-vqa"}


class KlipDecoderModel(nn.Module):
    """Image tower + (VQA: question encoder) + text decoder; see the module docstring."""

    def __init__(self, config: KlipConfig, tokenizer: Any, task: str, settings: dict[str, Any] | None = None) -> None:
        super().__init__()
        from transformers import BertLMHeadModel, BertModel, ViTModel

        from sarvlm.foundation.model import _text_config, _vit_config

        if task not in ARCHITECTURES:
            raise ConfigurationError(f"unknown decoder task {task!r} (caption or vqa)")
        self.task = task
        self.tokenizer = tokenizer
        self.ids = special_ids(tokenizer)
        self.config = config.model_copy(deep=True)
        self.config.text.vocab_size = len(tokenizer)
        self.settings = dict(settings or {})
        self.visual_encoder = ViTModel(_vit_config(self.config), add_pooling_layer=False)
        text_cfg = _text_config(self.config, len(tokenizer), self.ids)
        if self.config.vision.hidden_size != self.config.text.hidden_size:
            self.image_to_text: nn.Module | None = nn.Linear(
                self.config.vision.hidden_size, self.config.text.hidden_size
            )
        else:
            self.image_to_text = None
        if task == "vqa":
            self.text_encoder = BertModel(text_cfg, add_pooling_layer=False)
        self.text_decoder = BertLMHeadModel(text_cfg)

    @classmethod
    def from_klip(cls, klip: Any, task: str, settings: dict[str, Any] | None = None) -> KlipDecoderModel:
        """Initialise every part from a pretrained KLIP model (weights copied, nothing shared)."""
        model = cls(klip.config, klip.tokenizer, task, settings)
        model.visual_encoder.load_state_dict(klip.visual_encoder.state_dict())
        if model.image_to_text is not None:
            model.image_to_text.load_state_dict(klip.image_to_text.state_dict())
        model.text_decoder.load_state_dict(klip.text.state_dict())
        if task == "vqa":
            model.text_encoder.load_state_dict(klip.text.bert.state_dict())
        return model

    # ---- forward passes -------------------------------------------------------------------
    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` -> ``(B, 1 + (S/p)², Dv)``."""
        return self.visual_encoder(pixel_values=pixel_values).last_hidden_state

    def question_states(
        self, image_embeds: torch.Tensor, question_ids: torch.Tensor, question_mask: torch.Tensor
    ) -> torch.Tensor:
        """VQA: the question ``(B, Lq)`` (first token replaced by [ENC]) read with the image -> ``(B, Lq, Dt)``."""
        ids = question_ids.clone()
        ids[:, 0] = self.ids["enc"]
        image_atts = torch.ones(image_embeds.shape[:2], dtype=torch.long, device=image_embeds.device)
        dtype = self.text_encoder.embeddings.word_embeddings.weight.dtype
        return self.text_encoder(
            input_ids=ids,
            attention_mask=bidirectional_attention_mask(self.text_encoder.config, question_mask, dtype),
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_atts,
        ).last_hidden_state

    def _context(
        self,
        pixel_values: torch.Tensor,
        question_ids: torch.Tensor | None = None,
        question_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the decoder's cross-attention reads: image tokens (caption) or question states (VQA), and its mask."""
        image_embeds = self.image_tokens(pixel_values)
        if self.image_to_text is not None:
            image_embeds = self.image_to_text(image_embeds)
        if self.task == "caption":
            return image_embeds, torch.ones(image_embeds.shape[:2], dtype=torch.long, device=image_embeds.device)
        if question_ids is None or question_mask is None:
            raise ConfigurationError("the VQA decoder needs question_ids and question_mask")
        return self.question_states(image_embeds, question_ids, question_mask), question_mask

    def forward(
        self,
        pixel_values: torch.Tensor,
        target_ids: torch.Tensor,
        target_mask: torch.Tensor,
        question_ids: torch.Tensor | None = None,
        question_mask: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> torch.Tensor:
        """Mean next-token cross-entropy of ``target_ids`` ``(B, L)`` (``[DEC] text [SEP]``, padded)."""
        context, context_mask = self._context(pixel_values, question_ids, question_mask)
        ids = target_ids.clone()
        ids[:, 0] = self.ids["dec"]
        logits = self.text_decoder(
            input_ids=ids,
            attention_mask=target_mask,
            encoder_hidden_states=context,
            encoder_attention_mask=context_mask,
        ).logits
        labels = ids.masked_fill(target_mask == 0, -100)[:, 1:]
        return F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
            labels.reshape(-1),
            ignore_index=-100,
            label_smoothing=label_smoothing,
        )

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.Tensor,
        question_ids: torch.Tensor | None = None,
        question_mask: torch.Tensor | None = None,
        *,
        num_beams: int = 3,
        max_new_tokens: int = 30,
        min_new_tokens: int = 1,
        repetition_penalty: float = 1.0,
    ) -> list[str]:
        """Texts for a batch (beam search when ``num_beams > 1``, else greedy), special tokens removed."""
        context, context_mask = self._context(pixel_values, question_ids, question_mask)
        b = pixel_values.shape[0]
        start = torch.full((b, 1), self.ids["dec"], dtype=torch.long, device=pixel_values.device)
        # BERT's cross-attention caches its keys/values in an encoder-decoder cache; generate() would
        # make a decoder-only one for a model that is not configured as encoder-decoder
        from transformers import DynamicCache, EncoderDecoderCache

        cfg = self.text_decoder.config
        cache = EncoderDecoderCache(DynamicCache(config=cfg), DynamicCache(config=cfg))
        # transformers 5.24 renamed generate's ``past_key_values`` to ``cache`` (the old name warns); 5.0-5.23
        # only know the old one
        import transformers
        from packaging.version import Version

        cache_kwarg = "cache" if Version(transformers.__version__) >= Version("5.24") else "past_key_values"
        out = self.text_decoder.generate(
            input_ids=start,
            encoder_hidden_states=context,
            encoder_attention_mask=context_mask,
            use_cache=True,
            **{cache_kwarg: cache},
            max_new_tokens=max_new_tokens,
            min_new_tokens=min(min_new_tokens, max_new_tokens),
            num_beams=num_beams,
            do_sample=False,
            repetition_penalty=repetition_penalty,
            eos_token_id=self.ids["sep"],
            pad_token_id=self.ids["pad"],
        )
        return [t.strip() for t in self.tokenizer.batch_decode(out[:, 1:], skip_special_tokens=True)]

    def add_characters(self, texts: list[str]) -> list[str]:
        """Let the tokenizer spell every character of ``texts``: missing characters are added as WordPiece
        entries (``c`` and ``##c``) after the existing ids, and the embeddings / LM head grow to match
        (new rows from the old rows' mean and covariance, transformers' ``resize_token_embeddings``).

        A vocabulary built from pretraining captions may lack characters the downstream targets use
        (digits of count answers: the captions spell numbers out). Returns the added characters; a
        tokenizer that is not WordPiece is left alone (returns ``[]``).
        """
        import tempfile

        from sarvlm.foundation.tokenizer import load_tokenizer

        tok = self.tokenizer
        backend = getattr(tok, "backend_tokenizer", None)
        if backend is None:
            return []
        vocab = tok.get_vocab()
        missing: set[str] = set()
        for text in texts:
            norm = backend.normalizer.normalize_str(text) if backend.normalizer else text
            words = backend.pre_tokenizer.pre_tokenize_str(norm) if backend.pre_tokenizer else [(norm, None)]
            for word, _ in words:
                for i, ch in enumerate(word):
                    if (ch if i == 0 else f"##{ch}") not in vocab:
                        missing.add(ch)
        data = json.loads(backend.to_str())
        if not missing or data.get("model", {}).get("type") != "WordPiece":
            return []
        next_id = len(tok)
        for ch in sorted(missing):
            for piece in (ch, f"##{ch}"):
                if piece not in data["model"]["vocab"]:
                    data["model"]["vocab"][piece] = next_id
                    next_id += 1
        with tempfile.TemporaryDirectory() as tmp:
            tok.save_pretrained(tmp)
            (Path(tmp) / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
            new = load_tokenizer(tmp)  # added tokens ([ENC], [DEC]) move behind the grown WordPiece vocabulary
        new_vocab = new.get_vocab()
        if any(t not in new_vocab for t in vocab) or len(new) != len(new_vocab):
            raise ConfigurationError("extending the tokenizer lost tokens (unexpected tokenizer layout)")
        # row of every old token in the new numbering; new characters take the remaining rows
        old_rows = torch.tensor([vocab[t] for t in vocab])
        new_rows = torch.tensor([new_vocab[t] for t in vocab])
        n = len(new)
        encoders = [self.text_decoder.bert] + ([self.text_encoder] if self.task == "vqa" else [])
        for enc in encoders:
            emb = enc.embeddings.word_embeddings
            old = emb.weight.detach().clone()
            weight = old.mean(0, keepdim=True).repeat(n, 1)  # new characters start at the mean embedding
            weight[new_rows] = old[old_rows]
            grown = nn.Embedding(n, old.shape[1], padding_idx=emb.padding_idx)
            grown.weight.data.copy_(weight)
            enc.embeddings.word_embeddings = grown
        head = self.text_decoder.cls.predictions
        old_bias = head.bias.detach().clone()
        bias = torch.full((n,), float(old_bias.mean()))
        bias[new_rows] = old_bias[old_rows]
        head.decoder = nn.Linear(head.decoder.in_features, n, bias=True)
        head.bias = nn.Parameter(bias)
        head.decoder.weight = self.text_decoder.bert.embeddings.word_embeddings.weight  # tied, as built
        head.decoder.bias = head.bias
        for module in (self.text_decoder, *([self.text_encoder] if self.task == "vqa" else [])):
            module.config.vocab_size = n
        self.tokenizer = new
        self.ids = special_ids(new)
        self.config.text.vocab_size = n
        return sorted(missing)

    def tokenize(self, texts: list[str], max_length: int, device: torch.device | str = "cpu"):
        """``[CLS] text [SEP]`` ids and mask ``(B, L)``, cut at ``max_length`` tokens."""
        enc = self.tokenizer(texts, padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
        return enc["input_ids"].to(device), enc["attention_mask"].to(device)

    # ---- persistence ----------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        meta = {
            "architecture": ARCHITECTURES[self.task],
            "task": self.task,
            "config": portable_config(self.config),
            "settings": self.settings,
        }
        write_checkpoint(self, self.tokenizer, directory, meta)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> KlipDecoderModel:
        """Load a fine-tuned decoder; any other checkpoint fails with one line naming what it is."""
        from sarvlm.foundation.tokenizer import load_tokenizer

        directory = Path(directory)
        meta = read_checkpoint_meta(directory, "a fine-tuned KLIP decoder", "; make one with `sarvlm finetune-caption`")
        arch = meta.get("architecture") or meta.get("model_type") if isinstance(meta, dict) else None
        task = next((t for t, a in ARCHITECTURES.items() if a == arch), None)
        if task is None:
            hint = (
                " (a pretrained model: fine-tune it first with `sarvlm finetune-caption`)"
                if arch == "sarvlm-klip"
                else ""
            )
            raise ConfigurationError(
                f"{directory}: wrong architecture {arch or 'unknown'!r} "
                f"(expected {' or '.join(ARCHITECTURES.values())}){hint}"
            )
        config = config_from_dict(meta.get("config"), str(directory / "config.json"))
        model = cls(config, load_tokenizer(directory / "tokenizer"), task, meta.get("settings") or {})
        load_checkpoint_weights(model, directory, map_location)
        return model
