"""Training examples → model features: chat text, images and geospatial priors.

:class:`SftDataset` reads one split of a built dataset (``train.jsonl`` …, rows of
:class:`~sarvlm.core.example.InstructionExample`), keeps the tasks a stage trains on,
and encodes each example with the model's processor. Labels are the input ids on
assistant tokens (every assistant turn of a dialogue) and ``-100`` elsewhere, so the
loss never sees instructions, image placeholders or padding.

Over-long policy: an example longer than ``max_length`` tokens (image tokens
included) is **dropped and counted** (:attr:`SftDataset.report`); an answer is never
truncated, because a truncated answer teaches the model to stop mid-sentence.

Priors: the prior of an example is the cache entry of its ``sample_id`` and belongs to
its first image (the SAR image); further images (e.g. the optical image of a SAR +
optical pair) get an all-False prior mask, unless the model's ``prior_images`` setting
is ``"all"`` (co-registered pairs), in which case every image of the example gets it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sarvlm.core.errors import ConfigurationError, InputError, NotFoundError, SarvlmError
from sarvlm.core.example import IMAGE_PLACEHOLDER, InstructionExample
from sarvlm.core.progress import track
from sarvlm.training.collator import IGNORE_INDEX
from sarvlm.training.example_index import ExampleIndex
from sarvlm.training.image_cache import ImageArrayCache
from sarvlm.training.length_cache import UNKNOWN, LengthCache

SPLITS = ("train", "val", "test")


def split_path(data_dir: str | Path, split: str) -> Path:
    """The JSONL of ``split`` in a built dataset directory (error if absent)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise NotFoundError(f"{data_dir}: not a dataset directory")
    path = data_dir / f"{split}.jsonl"
    if not path.is_file():
        present = sorted(p.name for p in data_dir.glob("*.jsonl"))
        raise InputError(
            f"{data_dir}: no {split}.jsonl (a built dataset has train.jsonl, val.jsonl, test.jsonl; found: {', '.join(present) or 'none'})"
        )
    return path


@dataclass
class DataReport:
    """What happened to the examples of one split."""

    split: str
    total: int = 0
    kept: int = 0
    other_task: int = 0
    too_long: int = 0
    no_answer: int = 0
    missing_prior: int = 0
    no_prior: int = 0
    excluded_no_prior: int = 0  # left out because the stage trains only the fusion module
    tasks: dict[str, int] = field(default_factory=dict)
    max_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "total": self.total,
            "kept": self.kept,
            "dropped_other_task": self.other_task,
            "dropped_too_long": self.too_long,
            "dropped_no_answer": self.no_answer,
            "missing_prior": self.missing_prior,
            "no_prior": self.no_prior,
            "excluded_no_prior": self.excluded_no_prior,
            "tasks": dict(sorted(self.tasks.items())),
            "max_tokens": self.max_tokens,
        }

    def summary(self) -> str:
        return (
            f"{self.split}: {self.kept}/{self.total} examples kept "
            f"(other tasks {self.other_task}, over-long dropped {self.too_long}, without answer {self.no_answer}; "
            f"no prior {self.no_prior}, missing prior {self.missing_prior}"
            + (f", excluded for lack of a prior {self.excluded_no_prior}" if self.excluded_no_prior else "")
            + f"); longest {self.max_tokens} tokens"
        )


class SftDataset(Dataset):
    """One split of a built dataset, encoded for supervised fine-tuning.

    ``length_cache``: True (default) keeps token lengths in ``DATA_DIR/.sarvlm-cache/lengths``
    (:mod:`sarvlm.training.length_cache`), a path puts them there instead, False measures every
    example in this process (the old behaviour, O(dataset) start-up).

    ``image_cache``: True (default) decodes and resizes each image once per processor setting and
    keeps the uint8 array in ``DATA_DIR/.sarvlm-cache/images`` (:mod:`sarvlm.training.image_cache`;
    the model inputs are identical), a path puts the arrays there instead, False decodes and
    resizes every image at every access.
    """

    def __init__(
        self,
        jsonl: str | Path,
        processor: Any,
        *,
        tasks: Sequence[str] = ("*",),
        max_length: int = 2048,
        priors: Any | None = None,
        use_priors: bool = False,
        allow_missing_priors: bool = False,
        prior_images: str = "sar",
        split: str | None = None,
        require_prior: bool = False,
        length_cache: bool | str | Path = True,
        allow_outside_root: bool = False,
        image_cache: bool | str | Path = True,
    ) -> None:
        from sarvlm.data.example_root import example_image_root

        self.path = Path(jsonl)
        self.base_dir = self.path.parent
        # image paths are confined to the dataset's image root (docs/security.md)
        self.image_root, self.allow_outside_root = example_image_root(self.path, allow_outside_root)
        self.processor = processor
        self.image_cache: ImageArrayCache | None = None
        if image_cache is not False and hasattr(processor, "resize_image"):
            self.image_cache = (
                ImageArrayCache.for_dataset(self.path, processor)
                if image_cache is True
                else ImageArrayCache(image_cache, processor)
            )
        self.max_length = max_length
        self.priors = priors if use_priors else None
        self.use_priors = use_priors
        self.allow_missing_priors = allow_missing_priors
        if prior_images not in ("sar", "all"):
            raise ConfigurationError(f"prior_images must be 'sar' or 'all', got {prior_images!r}")
        self.prior_images = prior_images
        self.report = DataReport(split=split or self.path.stem)
        if use_priors and priors is None and not allow_missing_priors:
            raise InputError(
                f"{self.path}: this recipe uses geospatial priors: pass --priors DIR (or --allow-missing-priors to train without them)"
            )
        wanted = None if "*" in tasks else set(tasks)
        self.lengths: list[int] = []
        self._missing: set[str] = set()
        task_counts: Counter[str] = Counter()
        # the row index (sarvlm.training.example_index) gives task, sample id, answer and
        # placeholder checks of every row without parsing the file again; examples are parsed one
        # at a time when the data loader asks for them
        if length_cache is False:
            self.index = ExampleIndex.build(self.path)
        else:
            self.index = ExampleIndex.load(self.path)
        n_rows = len(self.index)
        # token lengths persist next to the data (see sarvlm.training.length_cache): a start-up
        # encodes only examples no earlier run measured
        self.length_cache: LengthCache | None = None
        if length_cache is not False:
            cache_dir = None if length_cache is True else length_cache
            self.length_cache = LengthCache(self.path, processor, n_rows, cache_dir, digest=self.index.digest)
        known = self.length_cache.lengths if self.length_cache is not None else np.full(n_rows, UNKNOWN, dtype=np.int32)
        codes = self.index.task_codes
        wanted_mask = (
            np.ones(n_rows, dtype=bool)
            if wanted is None
            else np.isin(codes, [c for c, name in enumerate(self.index.tasks) if name in wanted])
        )
        candidates = wanted_mask & self.index.has_answer
        if not self.use_priors and bool(self.index.placeholders_ok[candidates].all()):
            kept = self._select_fast(wanted_mask, candidates, known, max_length)
        else:
            kept = self._select_rows(wanted, known, max_length, require_prior)
        if kept:
            kept_codes = codes[kept]
            counts = np.bincount(kept_codes, minlength=len(self.index.tasks))
            _, first = np.unique(kept_codes, return_index=True)
            for code in kept_codes[np.sort(first)].tolist():  # tasks in order of first appearance
                task_counts[self.index.tasks[code]] = int(counts[code])
        self.rows = kept
        self.examples: Sequence[InstructionExample] = _IndexedExamples(self.index, kept)
        self.report.kept = len(kept)
        self.report.tasks = dict(task_counts)
        if self.length_cache is not None:
            self.length_cache.save()

    def _select_fast(
        self, wanted_mask: np.ndarray, candidates: np.ndarray, known: np.ndarray, max_length: int
    ) -> list[int]:
        """Rows kept when no prior is checked and every placeholder count matches: array operations,
        plus one processor call per row whose length is not cached (in row order)."""
        self.report.total = len(self.index)
        self.report.other_task = int((~wanted_mask).sum())
        self.report.no_answer = int((wanted_mask & ~self.index.has_answer).sum())
        rows = np.flatnonzero(candidates)
        lengths = known[rows].astype(np.int64)
        unknown = np.flatnonzero(lengths == UNKNOWN).tolist()
        for i in track(unknown, f"measuring {self.path.name}", total=len(unknown)):
            row = int(rows[i])
            lengths[i] = int(self._encode_text(self.index.example(row))["input_ids"].shape[0])
            if self.length_cache is not None:
                self.length_cache.put(row, int(lengths[i]))
        if len(lengths):
            self.report.max_tokens = max(self.report.max_tokens, int(lengths.max()))
        fits = lengths <= max_length
        self.report.too_long = int((~fits).sum())
        self.lengths = lengths[fits].tolist()
        return rows[fits].tolist()

    def _select_rows(
        self, wanted: set[str] | None, known: np.ndarray, max_length: int, require_prior: bool
    ) -> list[int]:
        """Rows kept, one row at a time (priors to check, or a placeholder mismatch to report in
        row order): every check and error exactly as reading the examples in order."""
        n_rows = len(self.index)
        names = self.index.tasks
        task_of = [names[c] for c in self.index.task_codes.tolist()]
        sample_ids = self.index.sample_ids.tolist()
        has_answer = self.index.has_answer.tolist()
        placeholders_ok = self.index.placeholders_ok.tolist()
        lengths = known.tolist()
        kept: list[int] = []
        for row in track(range(n_rows), f"reading {self.path.name}", total=n_rows):
            self.report.total += 1
            if wanted is not None and task_of[row] not in wanted:
                self.report.other_task += 1
                continue
            if not has_answer[row]:
                self.report.no_answer += 1
                continue
            if not placeholders_ok[row]:
                self._check_placeholders(self.index.example(row))  # raises, naming the example
            if self.use_priors:
                sample_id = sample_ids[row]
                self._check_prior(sample_id, row)
                if require_prior and not self._has_prior(sample_id):
                    # a stage that trains only the fusion module learns nothing from it (see
                    # sarvlm.training.preflight): excluded and counted
                    self.report.excluded_no_prior += 1
                    continue
            length = lengths[row]
            if length == UNKNOWN:
                length = int(self._encode_text(self.index.example(row))["input_ids"].shape[0])
                if self.length_cache is not None:
                    self.length_cache.put(row, length)
            self.report.max_tokens = max(self.report.max_tokens, length)
            if length > max_length:
                self.report.too_long += 1
                continue
            kept.append(row)
            self.lengths.append(length)
        return kept

    # -- checks ------------------------------------------------------------------------------

    def _where(self, ex: InstructionExample) -> str:
        return f"{self.path}: example {ex.id!r}"

    def _check_placeholders(self, ex: InstructionExample) -> None:
        n = sum(m.content.count(IMAGE_PLACEHOLDER) for m in ex.messages)
        if n != len(ex.images):
            raise InputError(
                f"{self._where(ex)}: images: {len(ex.images)} image(s) but {n} {IMAGE_PLACEHOLDER} placeholder(s)"
            )

    def _check_prior(self, sample_id: str, row: int) -> None:
        if self.priors is None:
            self._missing.add(sample_id)
            self.report.missing_prior += 1
            return
        if sample_id in self.priors:
            if self.priors.get(sample_id) is None:
                self.report.no_prior += 1
            return
        if not self.allow_missing_priors:
            raise NotFoundError(
                f"{self._where(self.index.example(row))}: sample_id: no entry {sample_id!r} in the prior cache (build it with `sarvlm priors`, or pass --allow-missing-priors)"
            )
        self._missing.add(sample_id)
        self.report.missing_prior += 1

    def _has_prior(self, sample_id: str) -> bool:
        if self.priors is None or sample_id in self._missing:
            return False
        reason = getattr(self.priors, "reason", None)
        if reason is not None:
            return not reason(sample_id)
        grid = self.priors.get(sample_id)
        return grid is not None and bool(np.asarray(grid.valid).any())

    # -- encoding ----------------------------------------------------------------------------

    def _load_images(self, ex: InstructionExample) -> list[Any]:
        """The example's images: PIL images, or resized arrays from the image cache."""
        images = []
        from sarvlm.core.paths import resolve_in_root

        for rel in ex.images:
            path = resolve_in_root(
                self.image_root, rel, allow_outside=self.allow_outside_root, what="images", base=self.base_dir
            )
            if not path.is_file():
                raise NotFoundError(f"{self._where(ex)}: images: no such file {path}")
            if self.image_cache is not None:
                images.append(self.image_cache.resized(path))
            else:
                images.append(self.processor.load_image(path))
        return images

    def _encode_text(self, ex: InstructionExample) -> dict[str, torch.Tensor]:
        messages = [m.model_dump() for m in ex.messages]
        try:
            enc = self.processor.encode(messages, self._load_images(ex), add_generation_prompt=False)
        except SarvlmError as exc:
            raise InputError(f"{self._where(ex)}: {exc}") from None
        return {k: _as_tensor(v) for k, v in enc.items()}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | None]:
        ex = self.examples[index]
        enc = self._encode_text(ex)
        input_ids = enc["input_ids"].long().reshape(-1)
        assistant = enc["assistant_mask"].reshape(-1).bool()
        labels = torch.where(assistant, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        feature: dict[str, torch.Tensor | None] = {
            "input_ids": input_ids,
            "labels": labels,
            "mm_token_type_ids": enc["mm_token_type_ids"].long().reshape(-1),
            "pixel_values": enc.get("pixel_values"),
            "image_grid_thw": enc.get("image_grid_thw"),
        }
        if self.use_priors and ex.images:
            feature.update(self._prior_features(ex, int(enc["image_grid_thw"].shape[0])))
        return feature

    def _prior_features(self, ex: InstructionExample, n_images: int) -> dict[str, torch.Tensor]:
        grid = None
        if self.priors is not None and ex.sample_id not in self._missing:
            grid = self.priors.get(ex.sample_id)
        if grid is None:
            dim = self.prior_dim
            return {
                "geo_priors": torch.zeros((n_images, 1, dim), dtype=torch.float32),
                "geo_positions": torch.zeros((n_images, 1, 2), dtype=torch.float32),
                "geo_mask": torch.zeros((n_images, 1), dtype=torch.bool),
            }
        vectors = torch.from_numpy(np.asarray(grid.vectors, dtype=np.float32))
        s, dim = vectors.shape
        priors = torch.zeros((n_images, s, dim), dtype=torch.float32)
        positions = torch.zeros((n_images, s, 2), dtype=torch.float32)
        mask = torch.zeros((n_images, s), dtype=torch.bool)
        # the prior describes the SAR image, the first one; optical partners get none unless the
        # model's settings say the images are co-registered (prior_images "all")
        rows = n_images if self.prior_images == "all" else 1
        priors[:rows] = vectors
        positions[:rows] = torch.from_numpy(np.asarray(grid.positions, dtype=np.float32))
        mask[:rows] = torch.from_numpy(np.asarray(grid.valid, dtype=bool))
        return {"geo_priors": priors, "geo_positions": positions, "geo_mask": mask}

    @property
    def prior_dim(self) -> int:
        """Dimension D of the prior vectors (from the cache settings; 64 for AlphaEarth)."""
        settings = getattr(self.priors, "settings", None) or {}
        if isinstance(settings, dict) and settings.get("prior_dim"):
            return int(settings["prior_dim"])
        return int(getattr(settings, "prior_dim", 64) or 64)


class _IndexedExamples(Sequence[InstructionExample]):
    """The kept examples of a dataset, parsed from the JSONL when asked for (not held in memory)."""

    def __init__(self, index: ExampleIndex, rows: list[int]) -> None:
        self._index, self._rows = index, rows  # (not ``index``: Sequence.index is a method)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._index.example(r) for r in self._rows[i]]
        return self._index.example(self._rows[i])


def _as_tensor(value: Any) -> Any:
    if value is None or isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(np.asarray(value))
