"""The demo's decision rule: paired bootstrap against hand-computed cases, and the power calculation."""

from __future__ import annotations

import pytest

from sarvlm.core.errors import SarvlmError
from sarvlm.demo.decision import (
    GAIN,
    LOSS,
    NO_DIFFERENCE,
    detectable_difference,
    paired_bootstrap,
    required_questions,
    verdict_of,
)


def test_identical_runs_have_a_zero_interval_and_no_difference():
    hits = [[True, False, True, False], [False, False, True, True]]
    r = paired_bootstrap(hits, [list(h) for h in hits])
    assert (r.diff, r.low, r.high) == (0.0, 0.0, 0.0)
    assert r.verdict == NO_DIFFERENCE and r.seeds == 2 and r.questions == 4


def test_always_right_against_always_wrong_is_a_certain_gain_and_its_mirror_a_loss():
    right, wrong = [[True] * 5] * 3, [[False] * 5] * 3
    r = paired_bootstrap(right, wrong)
    assert (r.diff, r.low, r.high, r.verdict) == (1.0, 1.0, 1.0, GAIN)
    m = paired_bootstrap(wrong, right)
    assert (m.diff, m.low, m.high, m.verdict) == (-1.0, -1.0, -1.0, LOSS)


def test_one_seed_four_questions_matches_the_binomial_quantiles():
    # d = [1, 0, 0, 0]: a resample's mean is k/4 with k ~ Binomial(4, 1/4).
    # P(k = 0) = 0.316 > 0.025 → lower bound 0; P(k <= 2) = 0.949 < 0.975 <= P(k <= 3) = 0.996 → upper 0.75.
    r = paired_bootstrap([[True, True, False, False]], [[False, True, False, False]], resamples=20000)
    assert r.diff == pytest.approx(0.25)
    assert (r.low, r.high) == (0.0, 0.75)
    assert r.verdict == NO_DIFFERENCE


def test_pairing_is_kept_a_consistent_small_gain_is_detected():
    # The TLM run is right on every question its twin gets right, plus 10 % more: d ∈ {0, 1}, never −1.
    n = 200
    without = [[q % 2 == 0 for q in range(n)] for _ in range(3)]
    with_ = [[q % 2 == 0 or q % 10 == 1 for q in range(n)] for _ in range(3)]
    r = paired_bootstrap(with_, without)
    assert r.diff == pytest.approx(0.10)
    assert 0.05 < r.low < 0.10 < r.high < 0.15
    assert r.verdict == GAIN


def test_seeds_are_resampled_a_seed_spread_widens_the_interval():
    # Seed 0 gains 20 points, seed 1 loses 20: the mean is 0 and the interval must cover ±0.2 reach.
    n = 100
    base = [False] * n
    up = [q < 20 for q in range(n)]
    r = paired_bootstrap([up, base], [base, up])
    assert r.diff == pytest.approx(0.0)
    assert r.low <= -0.15 and r.high >= 0.15


def test_bootstrap_is_deterministic_and_rejects_unpaired_input():
    a, b = [[True, False, True]], [[False, False, True]]
    assert paired_bootstrap(a, b) == paired_bootstrap(a, b)
    with pytest.raises(SarvlmError, match="seed 0"):
        paired_bootstrap([[True, False]], [[True]])
    with pytest.raises(SarvlmError, match="number of seeds"):
        paired_bootstrap([[True]], [])


def test_verdict_rule_and_power_calculation():
    assert verdict_of(0.01, 0.2) == GAIN and verdict_of(-0.2, -0.01) == LOSS and verdict_of(-0.01, 0.2) == NO_DIFFERENCE
    # (1.95996 + 0.84162)² · 2 · 0.25 / 0.01 = 392.4 → 393
    assert required_questions(0.10) == 393
    assert required_questions(0.20) == 99
    # 19 questions (the old demo's farmland/grassland set) only detect a 45-point difference
    assert detectable_difference(19) == pytest.approx(0.4545, abs=1e-3)
    assert detectable_difference(393) <= 0.10 < detectable_difference(392)


def test_paired_power_calculation_by_hand():
    from sarvlm.demo.decision import required_paired_questions

    # ψ = 0.5: (1.95996·√0.5 + 0.84162·√0.49)² / 0.01 = (1.38590 + 0.58914)² / 0.01 = 390.1 → 391
    assert required_paired_questions(0.10, 0.5) == 391
    # ψ = 0.3: (1.95996·0.54772 + 0.84162·0.53852)² / 0.01 = (1.07352 + 0.45323)² / 0.01 = 233.1 → 234
    assert required_paired_questions(0.10, 0.3) == 234
    assert required_paired_questions(0.10, 0.2) == 155
    # fewer discordant questions, fewer needed; a larger effect, fewer needed
    assert required_paired_questions(0.20, 0.5) < required_paired_questions(0.10, 0.5)
    with pytest.raises(ValueError):
        required_paired_questions(0.10, 0.005)  # ψ must exceed Δ²
