"""Library code changes process-wide settings only inside scoped context managers.

Regression for issue 11: data statistics set HF_HUB_OFFLINE in os.environ and turned transformers'
progress bars off for good; the demo changed warning filters, transformers logging and torch's
thread count for the rest of the process.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from transformers.utils import logging as hf_logging

from sarvlm.core.process_settings import quiet_libraries, quiet_transformers
from sarvlm.models.threads import torch_threads


def _state():
    return (
        hf_logging.get_verbosity(),
        hf_logging.is_progress_bar_enabled(),
        torch.get_num_threads(),
        list(warnings.filters),
        dict(os.environ),
    )


def test_scoped_settings_apply_inside_and_are_restored_even_on_error():
    before = _state()
    with pytest.raises(RuntimeError), quiet_libraries(), torch_threads(1):
        assert hf_logging.get_verbosity() == hf_logging.ERROR
        assert not hf_logging.is_progress_bar_enabled()
        assert torch.get_num_threads() == 1
        assert any(f[2] is FutureWarning and f[0] == "ignore" for f in warnings.filters)
        raise RuntimeError("boom")
    assert _state() == before
    with quiet_transformers():
        assert not hf_logging.is_progress_bar_enabled()
    assert _state() == before


def test_text_statistics_leave_the_environment_and_transformers_settings_alone(monkeypatch):
    from sarvlm.data import statistics

    statistics.token_counts(["warm up"])  # third-party imports add their own warning filters once
    statistics._minilm.cache_clear()  # so the next call loads the model again
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hf_logging.enable_progress_bar()
    before = _state()
    counts = statistics.token_counts(["a ship in the harbour", "two tanks"])
    assert counts[0] > counts[1] > 0
    assert _state() == before
    assert "HF_HUB_OFFLINE" not in os.environ
