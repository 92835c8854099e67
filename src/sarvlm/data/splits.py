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

Grouping (``--group-by``): the hashed key is the sample's *group*, not always its image. Tiles cut
from one scene by ``sarvlm preprocess --tile-m`` overlap (shifted edge tiles share up to half their
width) and show the same place and date, so splitting them independently leaks test pixels into
training. ``auto`` (the default) groups by source scene (``meta.tile.source_id``) when a record
comes from tiling and by image otherwise; ``image`` splits every image independently (the old
behaviour); ``scene`` always uses ``meta.tile.source_id`` or the record id; ``source`` the dataset
name; ``meta.KEY`` any meta field (e.g. ``meta.site``), records without it fall back to their image.

``method="balanced"`` (``--split-method balanced``) gives exact proportions instead, which matters for
small datasets (with hashing, 12 images split 8:1:1 leave val and test empty 7% of the time). Images
are taken per source stratum in blocks of the ratio's integer size (10 for 8:1:1, 5 for 4:1); each
block's slots are a seeded permutation of the split names in their proportions, so every source is
split exactly at the ratio up to one incomplete block. It remembers the split of every image seen
(about 100 bytes per distinct image) so that an image listed twice stays in one split: memory then
grows with the number of images, which the default hash method avoids.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from sarvlm.core.errors import InputError, SarvlmError

SPLIT_NAMES_3 = ("train", "val", "test")
SPLIT_NAMES_2 = ("train", "test")
_ALIASES = {
    "train": "train",
    "training": "train",
    "trainval": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
    "eval": "test",
}


def normalise_split_name(name: str) -> str | None:
    """``training`` -> ``train``, ``validation`` -> ``val``, ...; None for names it does not know."""
    return _ALIASES.get(name.strip().lower())


METHODS = ("hash", "balanced")
GROUP_BY = ("auto", "image", "scene", "source")


def check_group_by(group_by: str) -> str:
    """Validate a ``--group-by`` value (``auto``, ``image``, ``scene``, ``source`` or ``meta.KEY``)."""
    if group_by in GROUP_BY or (group_by.startswith("meta.") and len(group_by) > 5):
        return group_by
    raise SarvlmError(f"--group-by: expected one of {', '.join(GROUP_BY)} or meta.KEY, got {group_by!r}")


def group_key(record: object, image_key: str, group_by: str = "auto") -> str:
    """The key that decides a sample's split: its scene, source, a meta field, or its image."""
    meta = getattr(record, "meta", None) or {}
    tile = meta.get("tile") if isinstance(meta.get("tile"), dict) else None
    if group_by == "image":
        return image_key
    if group_by == "auto":
        return f"scene:{tile['source_id']}" if tile and tile.get("source_id") else image_key
    if group_by == "scene":
        return f"scene:{tile['source_id']}" if tile and tile.get("source_id") else f"scene:{record.id}"  # type: ignore[attr-defined]
    if group_by == "source":
        return f"source:{getattr(record, 'source', None) or ''}"
    value = meta.get(group_by[5:])
    return f"{group_by}:{value}" if value is not None else image_key


MAX_BLOCK = 1000


@dataclass
class SplitPlan:
    """How examples are assigned to splits (and, for ``balanced``, the running state)."""

    names: tuple[str, ...]  # output splits in file order
    bounds: tuple[float, ...]  # cumulative shares, last == 1.0 (empty when keep-only)
    keep: bool  # use the sample's own split where present
    seed: int = 0
    method: str = "hash"
    shares: tuple[float, ...] = ()
    _seen: dict[str, str] = field(default_factory=dict, repr=False)
    _taken: dict[str, int] = field(default_factory=dict, repr=False)
    _slots: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, spec: str, seed: int = 0, method: str = "hash") -> SplitPlan:
        """Parse ``8:1:1``, ``7:3``, ``4:1``, ``keep`` or ``keep,7:3``; ``method`` hash or balanced."""
        if method not in METHODS:
            raise InputError(f"--split-method must be one of {', '.join(METHODS)}, got {method!r}")
        text = spec.strip().lower()
        keep = False
        if text == "keep":
            return cls(SPLIT_NAMES_3, (), True, seed, method)
        if text.startswith("keep,"):
            keep, text = True, text[5:]
        try:
            parts = [float(p) for p in text.split(":")]
        except ValueError:
            raise InputError(f"--split: expected a ratio like 8:1:1, 7:3 or 4:1, or keep, got {spec!r}") from None
        if len(parts) not in (2, 3) or any(p < 0 for p in parts) or sum(parts) <= 0 or parts[0] <= 0:
            raise InputError(f"--split: need 2 or 3 non-negative shares with a positive train share, got {spec!r}")
        total = sum(parts)
        bounds, acc = [], 0.0
        for p in parts:
            acc += p / total
            bounds.append(acc)
        bounds[-1] = 1.0
        names = SPLIT_NAMES_3 if len(parts) == 3 else SPLIT_NAMES_2
        if keep:
            names = SPLIT_NAMES_3
        return cls(names, tuple(bounds), keep, seed, method, tuple(p / total for p in parts))

    def ratio_names(self) -> Sequence[str]:
        return SPLIT_NAMES_3 if len(self.bounds) == 3 else SPLIT_NAMES_2

    def unit(self, image_key: str) -> float:
        """The seeded hash of an image as a number in [0, 1)."""
        key = f"{self.seed}\x00{image_key}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64

    def _block(self) -> list[str]:
        """One block of split names in the ratio's proportions (smallest integer ratio, <= MAX_BLOCK)."""
        fracs = [Fraction(p).limit_denominator(MAX_BLOCK) for p in self.shares]
        denom = math.lcm(*(f.denominator for f in fracs))
        counts = [int(f * denom) for f in fracs]
        g = math.gcd(*counts)
        return [n for n, c in zip(self.ratio_names(), counts) for _ in range(c // g)]

    def _balanced(self, image_key: str, source: str | None) -> str:
        if image_key in self._seen:
            return self._seen[image_key]
        stratum = source or ""
        k = self._taken.get(stratum, 0)
        self._taken[stratum] = k + 1
        slots = self._slots.get(stratum)
        block = self._block() if slots is None else slots
        size = len(block)
        if k % size == 0:  # a new block: a seeded permutation of the slots
            order = sorted(block)
            random.Random(f"{self.seed}\x00{stratum}\x00{k // size}").shuffle(order)
            self._slots[stratum] = slots = order
        name = self._slots[stratum][k % size]
        self._seen[image_key] = name
        return name

    def assign(self, image_key: str, own_split: str | None, who: str, source: str | None = None) -> str:
        """The split of one sample. ``who`` names the record in errors."""
        if self.keep and own_split:
            name = normalise_split_name(own_split)
            if name is None:
                raise InputError(f"{who}: split: unknown split name {own_split!r} (use train, val or test)")
            return name
        if not self.bounds:
            raise InputError(
                f"{who}: split: the sample has no split of its own and --split keep gives no ratio "
                f"(use e.g. --split keep,7:3)"
            )
        if self.method == "balanced":
            return self._balanced(image_key, source)
        u = self.unit(image_key)
        for name, bound in zip(self.ratio_names(), self.bounds):
            if u < bound:
                return name
        return self.ratio_names()[-1]
