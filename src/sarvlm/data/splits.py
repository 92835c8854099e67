"""Train/val/test splits by image, streaming and deterministic.

``--split`` takes

- a ratio: ``8:1:1`` (train/val/test), ``7:3`` or ``4:1`` (train/test), any positive numbers;
- ``keep``: the sample's own ``split`` field (``train``/``training``, ``val``/``valid``/``validation``,
  ``test``/``testing``); a sample without one is an error;
- ``keep,7:3``: the sample's own split where it has one, the ratio otherwise (SARLANG-1M kept
  SARDet-100k's source splits and split the rest 7:3).

Ratio assignment hashes the image, not the record: ``u = blake2b(seed, image path) / 2^64`` in
[0, 1), and the split is the first whose cumulative share exceeds ``u``. Every record and every
example of one image therefore lands in the same split (also when two sources list the same image),
with no table of images in memory. Because ``u`` is an independent uniform draw per image whatever
the source or task, every (source, task) stratum is split at the given ratio in expectation, up to
binomial noise for small strata; the manifest reports the realised counts per source, task and split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sarvlm.errors import SarvlmError

SPLIT_NAMES_3 = ("train", "val", "test")
SPLIT_NAMES_2 = ("train", "test")
_ALIASES = {"train": "train", "training": "train", "trainval": "train", "val": "val", "valid": "val",
            "validation": "val", "dev": "val", "test": "test", "testing": "test", "eval": "test"}


def normalise_split_name(name: str) -> str | None:
    """``training`` -> ``train``, ``validation`` -> ``val``, ...; None for names it does not know."""
    return _ALIASES.get(name.strip().lower())


@dataclass(frozen=True)
class SplitPlan:
    """How examples are assigned to splits."""

    names: tuple[str, ...]  # output splits in file order
    bounds: tuple[float, ...]  # cumulative shares, last == 1.0 (empty when keep-only)
    keep: bool  # use the sample's own split where present
    seed: int = 0

    @classmethod
    def parse(cls, spec: str, seed: int = 0) -> SplitPlan:
        """Parse ``8:1:1``, ``7:3``, ``4:1``, ``keep`` or ``keep,7:3``."""
        text = spec.strip().lower()
        keep = False
        if text == "keep":
            return cls(SPLIT_NAMES_3, (), True, seed)
        if text.startswith("keep,"):
            keep, text = True, text[5:]
        try:
            parts = [float(p) for p in text.split(":")]
        except ValueError:
            raise SarvlmError(f"--split: expected a ratio like 8:1:1, 7:3 or 4:1, or keep, got {spec!r}") from None
        if len(parts) not in (2, 3) or any(p < 0 for p in parts) or sum(parts) <= 0 or parts[0] <= 0:
            raise SarvlmError(f"--split: need 2 or 3 non-negative shares with a positive train share, got {spec!r}")
        total = sum(parts)
        bounds, acc = [], 0.0
        for p in parts:
            acc += p / total
            bounds.append(acc)
        bounds[-1] = 1.0
        names = SPLIT_NAMES_3 if len(parts) == 3 else SPLIT_NAMES_2
        if keep:
            names = SPLIT_NAMES_3
        return cls(names, tuple(bounds), keep, seed)

    def ratio_names(self) -> Sequence[str]:
        return SPLIT_NAMES_3 if len(self.bounds) == 3 else SPLIT_NAMES_2

    def unit(self, image_key: str) -> float:
        """The seeded hash of an image as a number in [0, 1)."""
        key = f"{self.seed}\x00{image_key}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64

    def assign(self, image_key: str, own_split: str | None, who: str) -> str:
        """The split of one sample. ``who`` names the record in errors."""
        if self.keep and own_split:
            name = normalise_split_name(own_split)
            if name is None:
                raise SarvlmError(f"{who}: split: unknown split name {own_split!r} (use train, val or test)")
            return name
        if not self.bounds:
            raise SarvlmError(f"{who}: split: the sample has no split of its own and --split keep gives no ratio "
                              f"(use e.g. --split keep,7:3)")
        u = self.unit(image_key)
        for name, bound in zip(self.ratio_names(), self.bounds):
            if u < bound:
                return name
        return self.ratio_names()[-1]
