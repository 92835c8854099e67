"""The demo's decision rule: does the prior fusion (TLM) help on the questions that need the prior?

Written before the numbers (docs/demo.md states it the same way):

- Each TLM run is compared with its no-TLM twin (same stages otherwise, same seed, same test
  questions): per question, ``d = hit(with TLM) − hit(without)`` ∈ {−1, 0, 1}.
- The effect is the mean of ``d`` over questions, averaged over seeds.
- Its 95 % interval is a percentile bootstrap that resamples seeds (with replacement) and, inside
  each drawn seed, questions (with replacement, the same questions for both runs: the pairing is kept).
- Verdict: **gain** when the whole interval lies above 0, **loss** when it lies below 0, otherwise
  **no detectable difference**.

:func:`required_questions` is the power calculation behind the size of the question set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from sarvlm.core.errors import SarvlmError

GAIN, LOSS, NO_DIFFERENCE = "gain", "loss", "no detectable difference"


@dataclass(frozen=True)
class PairedComparison:
    """A TLM run against its no-TLM twin over the same questions and seeds."""

    diff: float  # mean over seeds of the mean per-question difference (fraction, not points)
    low: float  # bootstrap interval bounds
    high: float
    seeds: int
    questions: int  # questions per seed (all seeds are scored on the same questions)
    verdict: str
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict_of(low: float, high: float) -> str:
    """The decision rule: gain / loss when the interval excludes 0, otherwise no detectable difference."""
    if low > 0:
        return GAIN
    if high < 0:
        return LOSS
    return NO_DIFFERENCE


def paired_bootstrap(
    with_hits: Sequence[Sequence[float]],
    without_hits: Sequence[Sequence[float]],
    *,
    resamples: int = 10000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Paired bootstrap of the accuracy difference ``with − without``.

    ``with_hits[s][q]`` / ``without_hits[s][q]``: was question ``q`` answered correctly in seed ``s``
    by the run with / without TLM. Every seed must score the same number of questions, in the same
    order for both runs. Resampling is seeded: the same inputs give the same interval.
    """
    if not with_hits or len(with_hits) != len(without_hits):
        raise SarvlmError(
            f"paired bootstrap: need the same non-zero number of seeds for both runs "
            f"(got {len(with_hits)} and {len(without_hits)})"
        )
    n_q = len(with_hits[0])
    for s, (a, b) in enumerate(zip(with_hits, without_hits)):
        if len(a) != n_q or len(b) != n_q or n_q == 0:
            raise SarvlmError(
                f"paired bootstrap: seed {s} has {len(a)} and {len(b)} questions (expected {n_q} for both, > 0)"
            )
    d = np.asarray(with_hits, dtype=np.float64) - np.asarray(without_hits, dtype=np.float64)  # (seeds, questions)
    n_s = d.shape[0]
    diff = float(d.mean())
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for start in range(0, resamples, 500):  # chunks keep the index arrays small
        chunk = min(500, resamples - start)
        seed_idx = rng.integers(0, n_s, size=(chunk, n_s))  # (chunk, seeds)
        q_idx = rng.integers(0, n_q, size=(chunk, n_s, n_q))  # (chunk, seeds, questions)
        stats[start : start + chunk] = d[seed_idx[:, :, None], q_idx].mean(axis=(1, 2))
    tail = (1 - level) / 2
    low, high = (float(x) for x in np.quantile(stats, [tail, 1 - tail], method="inverted_cdf"))
    return PairedComparison(diff, low, high, n_s, n_q, verdict_of(low, high), level)


def bootstrap_ratio(
    numerators: list[list[float]],
    denominators: list[list[float]],
    *,
    resamples: int = 10000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """The same seed-then-item resampling as :func:`paired_bootstrap`, for a ratio of sums.

    ``numerators[s][i]`` / ``denominators[s][i]``: item ``i`` of seed ``s`` (e.g. "flagged and
    corrupted" over "flagged" for a precision). The statistic is the mean over drawn seeds of
    ``Σ num / Σ den`` over the drawn items (a draw with ``Σ den = 0`` contributes 0). ``diff`` is
    that statistic on the data; the verdict compares the interval with 0 as for a difference.
    """
    if not numerators or len(numerators) != len(denominators):
        raise SarvlmError("bootstrap ratio: need the same non-zero number of seeds for numerator and denominator")
    n_i = len(numerators[0])
    if n_i == 0 or any(len(a) != n_i or len(b) != n_i for a, b in zip(numerators, denominators)):
        raise SarvlmError(f"bootstrap ratio: every seed needs the same non-zero number of items ({n_i})")
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        sa, sb = a.sum(-1), b.sum(-1)
        return np.where(sb > 0, sa / np.where(sb > 0, sb, 1.0), 0.0).mean(-1)

    value = float(ratio(num, den))
    n_s = num.shape[0]
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for start in range(0, resamples, 500):
        chunk = min(500, resamples - start)
        seed_idx = rng.integers(0, n_s, size=(chunk, n_s))
        i_idx = rng.integers(0, n_i, size=(chunk, n_s, n_i))
        stats[start : start + chunk] = ratio(num[seed_idx[:, :, None], i_idx], den[seed_idx[:, :, None], i_idx])
    tail = (1 - level) / 2
    low, high = (float(x) for x in np.quantile(stats, [tail, 1 - tail], method="inverted_cdf"))
    return PairedComparison(value, low, high, n_s, n_i, verdict_of(low, high), level)


def required_questions(difference: float = 0.10, accuracy: float = 0.5, alpha: float = 0.05, power: float = 0.8) -> int:
    """Questions needed to detect an accuracy ``difference`` (two-sided ``alpha``, given ``power``).

    Conservative for a paired design: the variance of a difference of two accuracies near
    ``accuracy`` is taken as ``2·p(1−p)/n`` (independent runs; positively correlated paired runs
    only shrink it). ``n = (z_{1−α/2} + z_{power})² · 2p(1−p) / Δ²`` — 393 questions for 10 points at 50 %.
    """
    z = NormalDist().inv_cdf
    n = (z(1 - alpha / 2) + z(power)) ** 2 * 2 * accuracy * (1 - accuracy) / difference**2
    return math.ceil(n)


def detectable_difference(questions: int, accuracy: float = 0.5, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest accuracy difference ``questions`` questions detect (inverse of :func:`required_questions`)."""
    z = NormalDist().inv_cdf
    return (z(1 - alpha / 2) + z(power)) * math.sqrt(2 * accuracy * (1 - accuracy) / questions)


def required_paired_questions(
    difference: float = 0.10, discordance: float = 0.5, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Paired questions needed to detect ``difference`` when a fraction ``discordance`` of the questions
    is answered right by exactly one of the two runs (McNemar / paired-proportions normal approximation):
    ``n = (z_{1−α/2}·√ψ + z_{power}·√(ψ − Δ²))² / Δ²``.

    ``discordance`` ψ is the assumption that sizes the test: two *independent* runs at 50 % accuracy
    disagree on ψ = 2·p(1−p) = 0.5 of the questions (391 questions for 10 points, the unpaired figure);
    runs that share a base model and data agree more often (ψ = 0.3: 234 questions; ψ = 0.2: 155).
    """
    if not difference**2 < discordance <= 1:
        raise ValueError(f"discordance must lie in (Δ², 1], got {discordance} for Δ = {difference}")
    z = NormalDist().inv_cdf
    n = (z(1 - alpha / 2) * math.sqrt(discordance) + z(power) * math.sqrt(discordance - difference**2)) ** 2
    return math.ceil(n / difference**2)
