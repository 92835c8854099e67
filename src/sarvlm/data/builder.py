"""Streaming build of instruction data: sample records in, ``OUT_DIR/{train,val,test}.jsonl`` +
``manifest.json`` + ``quality.md`` out.

One pass over the samples (plus a light pre-pass that collects the category vocabulary when
``categories`` is not given). Nothing is kept per sample: memory stays flat however large the input.
Each sample is cleaned (:mod:`sarvlm.data.quality`), assigned a split by its image
(:mod:`sarvlm.data.splits`), and handed to every requested task generator with a RNG seeded from
(seed, sample id, task); examples are written as they are made, in input order. The whole output
directory is written to a temporary sibling and renamed into place at the end, so a failure never
leaves a half-written directory. Same input + options + seed -> byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sarvlm.core.atomic import atomic_dir
from sarvlm.core.coords import CONVENTIONS, QWEN_MAX_PIXELS, QWEN_MIN_PIXELS
from sarvlm.core.errors import InputError, NotFoundError
from sarvlm.core.example import IMAGE_PLACEHOLDER
from sarvlm.core.record import parse_sample
from sarvlm.core.vocabulary import SYNONYMS, canonical_category
from sarvlm.data.export import FORMATS, SarvlmRowWriter, example_row, write_tool_files
from sarvlm.data.quality import QualityReport, clean_targets, text_problems
from sarvlm.data.splits import SplitPlan, check_group_by, group_key
from sarvlm.tasks.base import Draft, SampleView, Target, TaskContext
from sarvlm.tasks.registry import GENERATORS, is_free_text, resolve_tasks, task_spec


@dataclass
class BuildOptions:
    """Everything that shapes a build (recorded in the manifest)."""

    tasks: list[str] = field(default_factory=lambda: ["count", "grid", "classify_box", "detect"])
    seed: int = 0
    coords: str = "qwen2.5"
    split: str = "8:1:1"
    split_method: str = "hash"  # hash (flat memory) | balanced (exact proportions; remembers images)
    swift_objects: bool = False  # swift: detect rows in ms-swift's grounding form (objects + <bbox>)
    group_by: str = "auto"  # what stays in one split: auto (scene of tiles, else image), image, scene, source, meta.KEY
    format: str = "sarvlm"
    max_per_sample: int = 3
    negative_rate: float = 0.25
    categories: list[str] | None = None  # vocabulary; objects of other categories are dropped
    use_synonyms: bool = True
    qc: str = "drop"  # drop | flag
    boxes: str = "clip"  # clip | drop
    skip_missing: bool = False
    check_images: bool = True
    absolute_images: bool = False
    with_optical: bool = False  # add the paired optical image as a second image (LunarOS-Mini SAR + optical)
    class_hint: bool = False  # SARLANG-1M README: prefix VQA questions with "The classes are: ..."
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = QWEN_MAX_PIXELS
    landform_min_fraction: float = 0.05
    overwrite: bool = False

    def validate(self) -> None:
        self.tasks = resolve_tasks(self.tasks)
        check_group_by(self.group_by)
        if self.coords not in CONVENTIONS:
            raise InputError(f"--coords: unknown convention {self.coords!r} (expected one of {', '.join(CONVENTIONS)})")
        if self.format not in FORMATS:
            raise InputError(f"--format: unknown export format {self.format!r} (expected one of {', '.join(FORMATS)})")
        if self.swift_objects and self.format != "swift":
            raise InputError(f"--swift-objects needs --format swift, got --format {self.format}")
        if self.format == "geochat" and self.coords != "geochat":
            raise InputError(f"--format geochat needs --coords geochat (GeoChat boxes are 0-100), got {self.coords!r}")
        if self.qc not in ("drop", "flag"):
            raise InputError(f"--qc must be drop or flag, got {self.qc!r}")
        if self.boxes not in ("clip", "drop"):
            raise InputError(f"--boxes must be clip or drop, got {self.boxes!r}")
        if self.max_per_sample < 1:
            raise InputError(f"--max-per-sample must be >= 1, got {self.max_per_sample}")
        if not 0.0 <= self.negative_rate <= 1.0:
            raise InputError(f"--negative-rate must be in [0, 1], got {self.negative_rate}")


@dataclass
class BuildResult:
    out_dir: Path
    counts: dict[str, dict[str, int]]  # split -> task -> examples
    quality: QualityReport
    manifest: dict[str, Any]

    @property
    def total(self) -> int:
        return sum(sum(t.values()) for t in self.counts.values())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def scan_vocabulary(path: Path, synonyms: dict[str, str] | None) -> tuple[tuple[str, ...], int]:
    """Sorted object categories of a samples file (through synonyms) and its number of records.

    A light pass (``json.loads`` only); full validation happens in the build pass.
    """
    cats: set[str] = set()
    n = 0
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            n += 1
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            objs = data.get("objects") if isinstance(data, dict) else None
            for obj in objs or ():
                if isinstance(obj, dict) and isinstance(obj.get("category"), str) and not obj.get("iscrowd"):
                    if obj["category"].strip():
                        cats.add(canonical_category(obj["category"], synonyms))
    return tuple(sorted(cats)), n


def _image_ref(path: str, out_dir: Path, absolute: bool) -> str:
    ref = path if absolute else os.path.relpath(path, out_dir)
    return ref.replace(os.sep, "/")


def _task_seed(seed: int, sample_id: str, task: str) -> int:
    """A 64-bit seed per (build seed, sample, task): generators never share random streams."""
    key = f"{seed}\x00{sample_id}\x00{task}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def _group(targets: list[Target]) -> dict[str, list[Target]]:
    groups: dict[str, list[Target]] = defaultdict(list)
    for t in targets:
        groups[t.category].append(t)
    return {c: groups[c] for c in sorted(groups)}


def _sample_examples(
    view: SampleView, tasks: list[str], ctx: TaskContext, n_images: int, report: QualityReport, qc: str
) -> Iterator[tuple[str, str, Draft]]:
    """(task, example id, draft) of one sample that pass the example-level checks (QC counted in ``report``)."""
    rid = view.record.id
    for task in tasks:
        rng = random.Random(_task_seed(ctx.seed, rid, task))
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for k, draft in enumerate(GENERATORS[task](task, view, ctx, rng)):
            answers: tuple[str, ...]
            eid = f"{rid}/{task}/{k}"
            msgs = draft.messages
            if n_images > 1:  # one <image> per image, SAR first: "<image>\n<image>\n..."
                role, content = msgs[0]
                msgs = draft.messages = [(role, (IMAGE_PLACEHOLDER + "\n") * (n_images - 1) + content), *msgs[1:]]
            if len(msgs) == 2:  # the common single-turn case, without joins
                question, answers = msgs[0][1], (msgs[1][1],)
            else:
                question = "\n".join(c for r, c in msgs if r == "user")
                answers = tuple(c for r, c in msgs if r == "assistant")
            if not question.replace(IMAGE_PLACEHOLDER, "").strip():
                report.add("empty_question", eid)
                continue
            if not answers or not all(a.strip() for a in answers):
                report.add("empty_answer", eid)
                continue
            key = (question, answers)
            if key in seen:  # same question, same answer: a repeated example
                report.add("duplicate_question", eid)
                continue
            seen.add(key)
            if is_free_text(task):  # free text: checked for colour words, counts, positions
                problems = text_problems("\n".join(answers), view, ctx.vocabulary)
                for p in problems:
                    report.add(p, eid)
                if problems and qc == "drop":
                    continue
            yield task, eid, draft


def build_dataset(
    samples: str | Path,
    out_dir: str | Path,
    options: BuildOptions | None = None,
    progress: Callable[..., Any] | None = None,
) -> BuildResult:
    """Build instruction data from a samples JSONL into ``out_dir`` (see module docstring).

    Args:
        samples: sample-record JSONL (image paths relative to it).
        out_dir: output directory; must be absent or empty unless ``options.overwrite``.
        options: tasks, seed, coordinate convention, split, format, QC behaviour.
        progress: an iterable wrapper like :func:`sarvlm.core.progress.track` (default: that one).
    """
    from sarvlm.core.progress import track

    opts = options or BuildOptions()
    opts.validate()
    samples = Path(samples)
    out_dir = Path(out_dir)
    if not samples.is_file():
        raise NotFoundError(f"{samples}: no such file")
    plan = SplitPlan.parse(opts.split, opts.seed, opts.split_method)
    synonyms = SYNONYMS if opts.use_synonyms else None
    if opts.categories:
        vocabulary = tuple(sorted({canonical_category(c.strip(), synonyms) for c in opts.categories if c.strip()}))
        strict: set[str] | None = set(vocabulary)
        n_records = None
    else:
        vocabulary, n_records = scan_vocabulary(samples, synonyms)
        strict = None
    ctx = TaskContext(
        coords=opts.coords,
        vocabulary=vocabulary,
        max_per_sample=opts.max_per_sample,
        negative_rate=opts.negative_rate,
        min_pixels=opts.min_pixels,
        max_pixels=opts.max_pixels,
        landform_min_fraction=opts.landform_min_fraction,
        class_hint=opts.class_hint,
        seed=opts.seed,
    )
    base_dir = samples.resolve().parent
    final_dir = out_dir.resolve()
    report = QualityReport()
    counts: dict[str, Counter] = {name: Counter() for name in plan.names}
    by_source: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    samples_per_split: Counter = Counter()
    wrap = progress or track
    fmt = opts.format
    fast = SarvlmRowWriter() if fmt == "sarvlm" else None

    with atomic_dir(out_dir, overwrite=opts.overwrite) as tmp:
        files = {name: open(tmp / f"{name}.jsonl", "w", encoding="utf-8", newline="\n") for name in plan.names}
        try:
            with open(samples, encoding="utf-8") as fh:
                for lineno, line in wrap(enumerate(fh, 1), description="building", total=n_records):
                    if not line.strip():
                        continue
                    where = f"{samples}:{lineno}"
                    rec = parse_sample(line, where)
                    image_key = os.path.normpath(rec.image).replace(os.sep, "/")
                    image_abs = os.path.normpath(os.path.join(base_dir, rec.image))
                    if opts.check_images and not os.path.exists(image_abs):
                        if opts.skip_missing:
                            report.add("missing_image", rec.id)
                            continue
                        raise NotFoundError(
                            f"{where}: record {rec.id!r}: image: {image_abs}: no such file "
                            f"(use --skip-missing to skip such samples)"
                        )
                    split_key = group_key(rec, image_key, opts.group_by)
                    split = plan.assign(split_key, rec.split, f"{where}: record {rec.id!r}", rec.source)
                    if split not in files:  # keep,<2-way ratio> can still meet a source 'val'
                        files[split] = open(tmp / f"{split}.jsonl", "w", encoding="utf-8", newline="\n")
                        counts[split] = Counter()
                    # tools outside sarvlm resolve relative paths differently (ms-swift: the working
                    # directory): their exports carry absolute paths
                    absolute = opts.absolute_images or fmt != "sarvlm"
                    images = [_image_ref(image_abs, final_dir, absolute)]
                    if opts.with_optical and rec.optical:
                        optical_abs = os.path.normpath(os.path.join(base_dir, rec.optical))
                        if opts.check_images and not os.path.exists(optical_abs):
                            raise NotFoundError(f"{where}: record {rec.id!r}: optical: {optical_abs}: no such file")
                        images.append(_image_ref(optical_abs, final_dir, absolute))
                    targets = clean_targets(rec, report, opts.boxes, synonyms, strict)
                    view = SampleView(rec, base_dir, targets, _group(targets))
                    georef = rec.georef.model_dump(mode="json", exclude_none=True) if rec.georef else None
                    year = rec.year
                    if fast is not None:
                        fast.set_sample(images, opts.coords, rec.width, rec.height, georef, year, split)
                    source = rec.source or "unknown"
                    out = files[split]
                    n_before = sum(counts[split].values())
                    for task, eid, draft in _sample_examples(view, opts.tasks, ctx, len(images), report, opts.qc):
                        if fast is not None:
                            line = fast.row(eid, rec.id, task, draft.messages, draft.answer, draft.params)
                        else:
                            line = example_row(
                                {
                                    "id": eid,
                                    "sample_id": rec.id,
                                    "task": task,  # (geochat rows use it for the task token)
                                    "messages": [{"role": r, "content": c} for r, c in draft.messages],
                                    "images": images,
                                    "answer": draft.answer,
                                    "params": draft.params,
                                    "coords": opts.coords,
                                    "width": rec.width,
                                    "height": rec.height,
                                    "georef": georef,
                                    "year": year,
                                    "split": split,
                                },
                                fmt,
                                swift_objects=opts.swift_objects,
                            )
                        out.write(line + "\n")
                        counts[split][task] += 1
                        by_source[source][task][split] += 1
                    if sum(counts[split].values()) > n_before:
                        samples_per_split[split] += 1
        finally:
            for f in files.values():
                f.close()
        per_task: Counter = Counter()
        for c in counts.values():
            per_task.update(c)
        empty = {t: task_spec(t).needs for t in opts.tasks if per_task.get(t, 0) == 0}
        if not per_task:
            raise InputError(
                f"{samples}: no example for tasks {', '.join(opts.tasks)} — "
                + "; ".join(f"{t} needs {n}" for t, n in empty.items())
                + " (nothing written)"
            )
        tool_files = write_tool_files(tmp, fmt, list(files))
        manifest = _manifest(samples, opts, plan, vocabulary, counts, by_source, samples_per_split, report)
        if tool_files:
            manifest["tool_files"] = tool_files
        if empty:
            manifest["tasks_without_examples"] = empty  # requested but the samples lack what they need
        with open(tmp / "manifest.json", "w", encoding="utf-8", newline="\n") as fh:
            json.dump(manifest, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        with open(tmp / "quality.md", "w", encoding="utf-8", newline="\n") as fh:
            fh.write(f"# Quality control: {samples.name}\n\n")
            fh.write(report.markdown())
    return BuildResult(out_dir, {s: dict(sorted(c.items())) for s, c in counts.items()}, report, manifest)


def _manifest(
    samples: Path,
    opts: BuildOptions,
    plan: SplitPlan,
    vocabulary: tuple[str, ...],
    counts: dict[str, Counter],
    by_source: dict[str, dict[str, Counter]],
    samples_per_split: Counter,
    report: QualityReport,
) -> dict[str, Any]:
    from sarvlm import __version__

    options = asdict(opts)
    return {
        "sarvlm_version": __version__,
        "inputs": [{"path": str(samples), "sha256": _sha256(samples)}],
        "seed": opts.seed,
        "options": options,
        "format": opts.format,
        "files": {name: f"{name}.jsonl" for name in counts},
        "vocabulary": list(vocabulary),
        "counts": {s: dict(sorted(c.items())) for s, c in counts.items()},
        "totals": {s: sum(c.values()) for s, c in counts.items()},
        "samples": {s: samples_per_split.get(s, 0) for s in counts},
        "by_source": {
            src: {task: dict(sorted(sp.items())) for task, sp in sorted(tasks.items())}
            for src, tasks in sorted(by_source.items())
        },
        "quality": report.to_dict(),
        # how the samples' pixels were made (``sarvlm preprocess``), replayed by `sarvlm ask` on raw scenes
        "preprocess": _preprocess_config(samples),
    }


def _preprocess_config(samples: Path) -> dict[str, Any] | None:
    """The configuration in ``preprocess.json`` beside the samples file (None if it is not there)."""
    path = samples.parent / "preprocess.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8")).get("config")
    except (json.JSONDecodeError, AttributeError):
        return None
    return config if isinstance(config, dict) else None
