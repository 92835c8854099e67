"""Batched generation with priors: left-padded conversations, one prior row per image.

Shared by :mod:`sarvlm.inference.ask` and :mod:`sarvlm.inference.predict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from sarvlm.core.errors import InputError
from sarvlm.models.geo_inputs import sample_prior_rows, stack_prior_rows
from sarvlm.tasks.registry import max_new_tokens as task_budget


@dataclass
class GenerationOptions:
    """How to decode. Greedy unless ``do_sample``; ``max_new_tokens`` is an int for every task,
    a per-task dict (over the registry's per-task budgets, :func:`sarvlm.tasks.registry.max_new_tokens`),
    or None for the per-task defaults. The budgets are tokens of the real Qwen tokenizer; a byte-level
    tiny tokenizer spends more per word, so tiny models produce truncated nonsense either way."""

    max_new_tokens: int | dict[str, int] | None = None
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    num_beams: int = 1
    repetition_penalty: float = 1.0
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def budget(self, task: str | None) -> int:
        if isinstance(self.max_new_tokens, int):
            if self.max_new_tokens < 1:
                raise InputError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
            return self.max_new_tokens
        overrides = self.max_new_tokens or {}
        return int(overrides[task]) if task in overrides else task_budget(task)

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "do_sample": self.do_sample,
            "num_beams": self.num_beams,
            "repetition_penalty": self.repetition_penalty,
            **self.extra,
        }
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        return kwargs


@dataclass
class Query:
    """One conversation to answer: messages (``<image>`` placeholders), images, the sample's prior."""

    messages: list[dict[str, str]]
    images: list[Image.Image]
    prior: Any | None = None  # PriorGrid or None


def encode_query(processor: Any, query: Query) -> dict[str, Any]:
    """The processor's encoding of one query with the generation prompt (see ``SarvlmProcessor.encode``)."""
    return processor.encode(query.messages, query.images, add_generation_prompt=True)


def collate_queries(
    processor: Any, queries: Sequence[Query], encodings: Sequence[dict[str, Any]] | None = None
) -> dict[str, torch.Tensor]:
    """Left-padded model inputs for generation (``mm_token_type_ids`` always included).

    ``encodings`` (from :func:`encode_query`) skip re-encoding queries a caller already encoded.
    """
    encs = list(encodings) if encodings is not None else [encode_query(processor, q) for q in queries]
    length = max(len(e["input_ids"]) for e in encs)
    pad = int(processor.pad_token_id)
    ids = torch.full((len(encs), length), pad, dtype=torch.long)
    attn = torch.zeros((len(encs), length), dtype=torch.long)
    types = torch.zeros((len(encs), length), dtype=torch.long)
    for i, e in enumerate(encs):
        n = len(e["input_ids"])
        ids[i, length - n :] = torch.tensor(e["input_ids"])
        attn[i, length - n :] = 1
        types[i, length - n :] = torch.tensor(e["mm_token_type_ids"])
    batch: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": attn, "mm_token_type_ids": types}
    pixels = [e["pixel_values"] for e in encs if e["pixel_values"] is not None]
    if pixels:
        batch["pixel_values"] = torch.cat(pixels)
        batch["image_grid_thw"] = torch.cat([e["image_grid_thw"] for e in encs if e["image_grid_thw"] is not None])
    settings = processor.settings
    if settings.fusion != "none":
        rows = [sample_prior_rows(q.prior, len(q.images), settings.prior_images, settings.prior_dim) for q in queries]
        priors = stack_prior_rows(rows, settings.prior_dim)
        if priors is not None:
            batch.update(priors)
    return batch


def model_inputs(
    model: Any, processor: Any, queries: Sequence[Query], encodings: Sequence[dict[str, Any]] | None = None
) -> dict[str, torch.Tensor]:
    """:func:`collate_queries` moved to the model's device, floats in the model's dtype."""
    batch = collate_queries(processor, queries, encodings)
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    if "pixel_values" in batch:
        batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
    if "geo_priors" in batch:
        batch["geo_priors"] = batch["geo_priors"].to(model.dtype)
        batch["geo_positions"] = batch["geo_positions"].to(model.dtype)
    return batch


@torch.no_grad()
def generate_batch(
    model: Any, processor: Any, queries: Sequence[Query], max_new_tokens: int, options: GenerationOptions | None = None
) -> list[str]:
    """Answer a batch of queries; returns the decoded new text of each (special tokens removed)."""
    options = options or GenerationOptions()
    batch = model_inputs(model, processor, queries)
    if options.do_sample:
        torch.manual_seed(options.seed)
    out = model.generate(
        **batch, max_new_tokens=max_new_tokens, pad_token_id=processor.pad_token_id, **options.generate_kwargs()
    )
    new = out[:, batch["input_ids"].shape[1] :]
    return [processor.decode(row).strip() for row in new]
