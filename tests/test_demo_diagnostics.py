"""The linear probe on planted separable and inseparable cases."""

from __future__ import annotations

import numpy as np
import pytest

from sarvlm.core.errors import SarvlmError
from sarvlm.demo.diagnostics import linear_probe


def test_probe_finds_a_planted_linear_direction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 16))
    y = np.where(x @ rng.normal(size=16) > 0, "farmland", "grassland")  # separable by a hyperplane
    assert linear_probe(x, y) > 0.9  # least squares misses a few points at the margin


def test_probe_is_at_chance_when_labels_carry_no_information():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 16))
    y = rng.integers(0, 2, size=400)
    assert 0.4 < linear_probe(x, y) < 0.6


def test_probe_sees_a_small_mean_shift_only_when_it_is_there_and_is_deterministic():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=600)
    x = rng.normal(size=(600, 8))
    x_shift = x.copy()
    x_shift[:, 3] += 3.0 * y  # one channel moves with the class, as a TLM shift β would
    assert linear_probe(x_shift, y) > 0.9 > 0.6 > linear_probe(x, y)
    assert linear_probe(x_shift, y) == linear_probe(x_shift, y)


def test_probe_rejects_bad_input():
    with pytest.raises(SarvlmError, match="two classes"):
        linear_probe(np.zeros((20, 2)), np.zeros(20))
    with pytest.raises(SarvlmError, match="do not match"):
        linear_probe(np.zeros((20, 2)), np.zeros(19))
