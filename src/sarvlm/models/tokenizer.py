"""Qwen tokens and chat template, and an offline byte-level tokenizer for tiny models.

Real checkpoints ship their own ``tokenizer.json``; tiny models (tests, demo) need a tokenizer
that works offline. :func:`byte_level_tokenizer` builds a ``Qwen2Tokenizer`` over the 256
byte symbols of GPT-2's ``bytes_to_unicode`` with no merges (every UTF-8 byte is one token)
plus Qwen's special tokens, so it encodes any text and round-trips it exactly.
:func:`bpe_tokenizer` trains a small byte-level BPE (the ``tokenizers`` library, Qwen's
pre-tokenizer) on given texts: every byte stays in the vocabulary, so it too encodes any text,
but frequent words become one token and sequences get several times shorter. Both are saved
with the model (``tokenizer.json``) like a real checkpoint's tokenizer.

The chat template is Qwen's ChatML layout with ``{% generation %}`` markers around each
assistant turn's content and end-of-turn token, so ``apply_chat_template(...,
return_assistant_tokens_mask=True)`` yields the loss mask.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from transformers import Qwen2Tokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from sarvlm.core.errors import SarvlmError

# Qwen2-VL/2.5-VL/3-VL special tokens in id order (151643.. in the real vocabulary).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
IMAGE_PAD = "<|image_pad|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
# Placeholder of one appended prior token (``concat`` fusion). Qwen-VL never emits <|vision_pad|>.
GEO_PAD = "<|vision_pad|>"
IM_END = "<|im_end|>"
PAD = "<|endoftext|>"

QWEN2_5_DEFAULT_SYSTEM = "You are a helpful assistant."

_TEMPLATE = (
    # No whitespace control: the template is written without incidental whitespace, and
    # "{%-" would eat the newlines that are part of ChatML. transformers renders with
    # trim_blocks, which drops a newline right after a block tag: emit that one as an expression.
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' and DEFAULT_SYSTEM %}"
    "<|im_start|>system\n{{ DEFAULT_SYSTEM }}<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}{{ '\\n' }}"
    "{% else %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_template(backbone: str) -> str:
    """Qwen's ChatML template (with generation markers) for a backbone.

    Qwen2.5-VL inserts the default system prompt "You are a helpful assistant." when the
    conversation has none; Qwen3-VL does not.
    """
    system = QWEN2_5_DEFAULT_SYSTEM if backbone == "qwen2.5-vl" else ""
    set_system = "{% set DEFAULT_SYSTEM = " + repr(system) + " %}"
    return set_system + _TEMPLATE


def byte_level_tokenizer(backbone: str = "qwen2.5-vl") -> Qwen2Tokenizer:
    """An offline Qwen2Tokenizer: 256 byte tokens (ids 0–255) + Qwen special tokens (256–269)."""
    vocab = {symbol: i for i, symbol in enumerate(bytes_to_unicode().values())}
    return _qwen_tokenizer(vocab, [], backbone)


def _qwen_tokenizer(vocab: dict[str, int], merges: list[Any], backbone: str) -> Qwen2Tokenizer:
    for token in QWEN_SPECIAL_TOKENS:  # fixed ids in Qwen's order, after the learned vocabulary
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=None,  # type: ignore[arg-type]  # byte-level: every byte is in the vocabulary
        additional_special_tokens=list(QWEN_SPECIAL_TOKENS),
    )
    tokenizer.chat_template = chat_template(backbone)
    return tokenizer


def bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1024, backbone: str = "qwen2.5-vl") -> Qwen2Tokenizer:
    """A Qwen2Tokenizer whose byte-level BPE merges are trained on ``texts`` (offline).

    The 256 byte symbols are always in the vocabulary (any text encodes and decodes exactly,
    after Qwen's NFC normalisation), then learned merges up to ``vocab_size`` minus the 14 Qwen
    special tokens, which come last. Same texts in the same order → the same tokenizer.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    learned = vocab_size - len(QWEN_SPECIAL_TOKENS)
    if learned < 256:
        raise SarvlmError(
            f"vocab_size: {vocab_size} leaves no room for the 256 bytes + {len(QWEN_SPECIAL_TOKENS)} special tokens"
        )
    tok = Tokenizer(BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    # Qwen2Tokenizer's pre-tokenizer, so the learned merges are the ones it applies.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    alphabet = list(bytes_to_unicode().values())
    trainer = BpeTrainer(vocab_size=learned, initial_alphabet=alphabet, min_frequency=2, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = dict(sorted(model["vocab"].items(), key=lambda kv: kv[1]))
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return _qwen_tokenizer(vocab, merges, backbone)
