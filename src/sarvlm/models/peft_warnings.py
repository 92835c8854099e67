"""The one third-party warning sarvlm's verbs silence, scoped to the calls that raise it.

PEFT 0.21 reads ``PreTrainedModel.is_gradient_checkpointing`` whenever it wraps a model
(``get_peft_model``, ``PeftModel.from_pretrained``: ``peft/peft_model.py``), and transformers 5.x
deprecated that property: every LoRA run printed ``FutureWarning: `is_gradient_checkpointing` is
deprecated and will be removed in v6. Use `is_activation_checkpointing` instead.`` The notice is about
PEFT's code, not sarvlm's or the user's, and nothing here can change it; this filter ignores exactly
that message, only around PEFT's wrapping calls. Any other warning still shows.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

PEFT_CHECKPOINTING_NOTICE = r"`is_gradient_checkpointing` is deprecated"


@contextlib.contextmanager
def peft_checkpointing_notice_silenced() -> Iterator[None]:
    """Inside the block, ignore transformers' FutureWarning about ``is_gradient_checkpointing`` (raised
    by PEFT's own code); the previous warning filters come back on exit."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_CHECKPOINTING_NOTICE, category=FutureWarning)
        yield
