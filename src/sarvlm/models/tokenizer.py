"""Qwen tokens and chat template, and an offline byte-level tokenizer for tiny models.

Real checkpoints ship their own ``tokenizer.json``; tiny models (tests, demo) need a tokenizer
that works offline. :func:`byte_level_tokenizer` builds a ``Qwen2Tokenizer`` over the 256
byte symbols of GPT-2's ``bytes_to_unicode`` with no merges (every UTF-8 byte is one token)
plus Qwen's special tokens, so it encodes any text and round-trips it exactly.

The chat template is Qwen's ChatML layout with ``{% generation %}`` markers around each
assistant turn's content and end-of-turn token, so ``apply_chat_template(...,
return_assistant_tokens_mask=True)`` yields the loss mask.
"""

from __future__ import annotations

from transformers import Qwen2Tokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

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
    for token in QWEN_SPECIAL_TOKENS:  # fixed ids in Qwen's order, whatever the role of each token
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=None,  # type: ignore[arg-type]  # byte-level: every byte is in the vocabulary
        additional_special_tokens=list(QWEN_SPECIAL_TOKENS),
    )
    tokenizer.chat_template = chat_template(backbone)
    return tokenizer
