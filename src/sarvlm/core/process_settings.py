"""Scoped changes to process-wide settings: library chatter (warnings, transformers logging).

Library functions must not change process state behind the caller's back, yet some steps
(loading a model, running the demo's jobs) want transformers quiet or torch on a given number
of threads. These context managers make the change for the block only and restore what was
there before, even on error (torch's thread count: :func:`sarvlm.models.threads.torch_threads`,
kept out of ``core``, which never imports torch). transformers is imported only when a manager
is entered, so importing this module stays cheap (``sarvlm --help`` does not load it).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers logs errors only and shows no progress bars inside the block."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """:func:`quiet_transformers` plus no FutureWarnings and no torch UserWarnings inside the block.

    For long runs that print their own progress (the demo): library load reports and shard
    bars would drown it. Warning filters are restored on exit (``warnings.catch_warnings``).
    """
    with warnings.catch_warnings(), quiet_transformers():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
        yield
