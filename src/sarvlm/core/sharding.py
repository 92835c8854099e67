"""Array-job sharding: ``--shard K/N`` processes a deterministic 1/N of the input.

Every long data command (``preprocess``, ``build``, ``priors``, ``predict``, and any later one) uses
the same rule, so SLURM / Kubernetes array jobs run one command line with only ``K`` changing
(``K`` is 0-based: ``0/4`` … ``3/4``, as ``$SLURM_ARRAY_TASK_ID`` for ``--array=0-3`` or
``$JOB_COMPLETION_INDEX``):

- the unit list (records, examples, prior-cache chunks, generation batches) is cut into ``N``
  **contiguous** blocks of near-equal size, block ``K`` is shard ``K`` (:meth:`Shard.bounds`);
  contiguous blocks make the merge a concatenation in shard order, so a merged output is
  byte-identical to the unsharded one;
- a shard of output ``OUT`` is written next to it as ``OUT.shard-K-of-N`` (a directory) or
  ``STEM.shard-K-of-N.SUFFIX`` (a file) (:meth:`Shard.output_path`), with a ``shard.json`` record
  of what it holds (:func:`write_shard_info`);
- ``sarvlm merge OUT`` finds the ``N`` parts (:func:`find_parts`), checks that all are there and
  come from the same command, and writes ``OUT`` exactly as one unsharded run would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sarvlm.core.errors import NotFoundError, SarvlmError

T = TypeVar("T")
SHARD_INFO = "shard.json"
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_PART = re.compile(r"\.shard-(\d+)-of-(\d+)")


class NoShardOutputs(NotFoundError):
    """No part of an output exists at all (as opposed to some parts missing)."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 ≤ index < count)."""

    index: int
    count: int

    @classmethod
    def parse(cls, spec: str | Shard | None) -> Shard | None:
        """``"K/N"`` → ``Shard(K, N)``; None stays None (no sharding)."""
        if spec is None or isinstance(spec, Shard):
            return spec
        m = _SPEC.match(str(spec))
        if not m:
            raise SarvlmError(f"--shard must look like K/N with 0 <= K < N (e.g. 0/4), got {spec!r}")
        index, count = int(m.group(1)), int(m.group(2))
        if count < 1 or not 0 <= index < count:
            raise SarvlmError(f"--shard {spec}: needs 0 <= K < N (shards are numbered from 0)")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def bounds(self, n: int) -> tuple[int, int]:
        """``[start, stop)`` of this shard's contiguous block among ``n`` units (sizes differ by ≤ 1)."""
        return (self.index * n) // self.count, ((self.index + 1) * n) // self.count

    def select(self, items: Sequence[T]) -> Sequence[T]:
        start, stop = self.bounds(len(items))
        return items[start:stop]

    def output_path(self, out: str | Path, directory: bool) -> Path:
        """Where this shard writes the output ``out``: ``OUT.shard-K-of-N`` for a directory,
        ``STEM.shard-K-of-N.SUFFIX`` for a file."""
        out = Path(out)
        if not directory and out.suffix:
            return out.with_name(f"{out.stem}.{self.tag}{out.suffix}")
        return out.with_name(f"{out.name}.{self.tag}")


def shard_info_path(part: Path) -> Path:
    """``shard.json`` inside a directory part, ``PART.shard.json`` beside a file part."""
    return part / SHARD_INFO if part.is_dir() else part.with_name(part.name + "." + SHARD_INFO)


def write_shard_info(part: str | Path, kind: str, shard: Shard, state: dict[str, Any]) -> None:
    """Record what a part holds (``kind``: the command, ``state``: what the merge needs)."""
    from sarvlm.core.atomic import atomic_open

    part = Path(part)
    with atomic_open(shard_info_path(part)) as fh:
        json.dump({"kind": kind, "shard": shard.index, "of": shard.count, **state}, fh, ensure_ascii=False)
        fh.write("\n")


def read_shard_info(part: str | Path) -> dict[str, Any]:
    part = Path(part)
    path = shard_info_path(part)
    if not path.is_file():
        raise SarvlmError(f"{part}: not a shard output (no {path.name}); was it written with --shard?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SarvlmError(f"{path}: malformed JSON ({exc.msg})") from None


def find_parts(out: str | Path, directory: bool) -> list[Path]:
    """The parts of ``out`` written by ``--shard K/N`` runs (see :meth:`Shard.output_path`), in shard order.

    Errors name what is missing: no part at all, parts of different N, or absent shards.
    """
    out = Path(out)
    parent = out.parent
    stem, suffix = (out.stem, out.suffix) if not directory and out.suffix else (out.name, "")
    found: dict[int, dict[int, Path]] = {}
    if parent.is_dir():
        for p in parent.iterdir():
            name = p.name
            if not name.startswith(stem + ".shard-") or not name.endswith(suffix) or p.is_dir() != directory:
                continue
            m = _PART.fullmatch(name[len(stem) : len(name) - len(suffix)])
            if m:
                found.setdefault(int(m.group(2)), {})[int(m.group(1))] = p
    if not found:
        raise NoShardOutputs(f"{out}: no shard outputs {stem}.shard-K-of-N{suffix} found next to it")
    if len(found) > 1:
        raise SarvlmError(f"{out}: shard outputs of different shard counts {sorted(found)}; remove the stale ones")
    ((count, parts),) = found.items()
    missing = [k for k in range(count) if k not in parts]
    if missing:
        raise SarvlmError(
            f"{out}: shard(s) {', '.join(f'{k}/{count}' for k in missing)} missing (found {len(parts)} of {count})"
        )
    return [parts[k] for k in range(count)]
