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
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sarvlm.core.atomic import atomic_dir
from sarvlm.core.coords import CONVENTIONS, QWEN_MAX_PIXELS, QWEN_MIN_PIXELS
from sarvlm.core.errors import InputError, NotFoundError, SarvlmError
from sarvlm.core.example import IMAGE_PLACEHOLDER
from sarvlm.core.record import parse_sample
from sarvlm.core.sharding import Shard, write_shard_info
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
    allow_outside_root: bool = False  # accept record paths leaving the samples file's folder
    # add a FUSAR-GEOVL 8-field caption to every (synthetic) record, this fraction of fragments corrupted
    # exactly as `sarvlm synth --geovl-corrupt` does (sarvlm.tasks.geovl); None = off
    geovl_corrupt: float | None = None

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
            raise SarvlmError(f"--max-per-sample must be >= 1, got {self.max_per_sample}")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise SarvlmError(
                f"--min-pixels/--max-pixels: need 0 < min <= max, got {self.min_pixels} and {self.max_pixels}"
            )
        if not 0.0 <= self.negative_rate <= 1.0:
            raise InputError(f"--negative-rate must be in [0, 1], got {self.negative_rate}")
        if self.geovl_corrupt is not None and not 0.0 <= self.geovl_corrupt < 1.0:
            raise InputError(f"--geovl-corrupt must be a fraction in [0, 1), got {self.geovl_corrupt}")


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
    vocabulary, n, _ = _scan(path, synonyms)
    return vocabulary, n


def _scan(path: Path, synonyms: dict[str, str] | None, lenient: bool = False) -> tuple[tuple[str, ...], int, bool]:
    """(vocabulary, records, clean) of a samples file; ``clean`` is False when a line is not a JSON
    object or a record id repeats. ``lenient``: such lines end the scan with ``clean`` False instead
    of raising (the caller then builds in one process, which reports them exactly as always)."""
    cats: set[str] = set()
    ids: set[Any] | None = set() if lenient else None
    n = 0
    lineno = 0
    with open(path, encoding="utf-8") as fh:
        lines = enumerate(fh, 1)
        while True:
            try:
                lineno, line = next(lines)
            except StopIteration:
                break
            except UnicodeDecodeError:
                if lenient:
                    return (), n, False
                raise SarvlmError(f"{path}:{lineno + 1}: not UTF-8 text") from None
            if not line.strip():
                continue
            n += 1
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                if lenient:
                    return (), n, False
                raise InputError(f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if ids is not None:
                rid = data.get("id") if isinstance(data, dict) else None
                if not isinstance(rid, str) or rid in ids:
                    return (), n, False
                ids.add(rid)
            objs = data.get("objects") if isinstance(data, dict) else None
            for obj in objs or ():
                if isinstance(obj, dict) and isinstance(obj.get("category"), str) and not obj.get("iscrowd"):
                    if obj["category"].strip():
                        cats.add(canonical_category(obj["category"], synonyms))
    return tuple(sorted(cats)), n, True


def _in_root(base_dir: Path, name: str, opts: BuildOptions, what: str) -> None:
    from sarvlm.core.paths import resolve_in_root

    resolve_in_root(base_dir, name, allow_outside=opts.allow_outside_root, what=what)


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
    shard: Shard | str | None = None,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    _block: _BlockPlan | None = None,
) -> BuildResult:
    """Build instruction data from a samples JSONL into ``out_dir`` (see module docstring).

    Args:
        samples: sample-record JSONL (image paths relative to it).
        out_dir: output directory; must be absent or empty unless ``options.overwrite``.
        options: tasks, seed, coordinate convention, split, format, QC behaviour.
        progress: an iterable wrapper like :func:`sarvlm.core.progress.track` (default: that one).
        shard: ``"K/N"`` or a :class:`~sarvlm.core.sharding.Shard`: build only the K-th contiguous
            block of the records into ``OUT_DIR.shard-K-of-N`` (image paths still relative to
            ``out_dir``); :func:`merge_build_shards` joins the N parts into what one run writes.
        workers: build contiguous blocks of records in that many processes, then join them like
            :func:`merge_build_shards` (byte-identical to one process; needs ``split_method`` hash).
        scheduler: run the blocks on a Dask cluster (an address, or ``local``: a ``LocalCluster`` of
            ``workers`` processes); see :func:`sarvlm.core.parallel.run_blocks`.
    """
    from sarvlm.core.progress import track

    opts = options or BuildOptions()
    opts.validate()
    samples = Path(samples)
    out_dir = Path(out_dir)
    if not samples.is_file():
        raise NotFoundError(f"{samples}: no such file")
    shard = Shard.parse(shard)
    plan = SplitPlan.parse(opts.split, opts.seed, opts.split_method)
    geovl_pool = None
    if opts.geovl_corrupt is not None:
        if shard is not None:
            raise SarvlmError(f"--shard {shard}: not supported with --geovl-corrupt (build in one run)")
        geovl_pool = _geovl_pool(samples)
    if shard is not None and opts.split_method != "hash":
        raise SarvlmError(f"--shard {shard}: needs --split-method hash (balanced splits depend on every earlier image)")
    from sarvlm.core.parallel import check_workers

    if (check_workers(workers) > 1 or scheduler) and _block is None:
        return _build_parallel(samples, out_dir, opts, workers, scheduler, shard)
    synonyms = SYNONYMS if opts.use_synonyms else None
    if opts.categories:
        vocabulary = tuple(sorted({canonical_category(c.strip(), synonyms) for c in opts.categories if c.strip()}))
        strict: set[str] | None = set(vocabulary)
        n_records = _block.records if _block is not None else None
    elif _block is not None:  # scanned once by the parent of a parallel build
        vocabulary, n_records, strict = _block.vocabulary, _block.records, None
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
    final_dir = Path(_block.final_dir) if _block is not None else out_dir.resolve()
    first, stop = 0, None
    if shard is not None:
        if n_records is None:
            n_records = _count_records(samples)
        first, stop = shard.bounds(n_records)
        out_dir = shard.output_path(out_dir, directory=True)
    report = QualityReport()
    counts: dict[str, Counter] = {name: Counter() for name in plan.names}
    by_source: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    samples_per_split: Counter = Counter()
    wrap = progress or track
    fmt = opts.format
    fast = SarvlmRowWriter() if fmt == "sarvlm" else None

    with atomic_dir(out_dir, overwrite=opts.overwrite) as tmp:
        files = {name: open(tmp / f"{name}.jsonl", "w", encoding="utf-8", newline="\n") for name in plan.names}
        seen_ids: dict[str, int] = {}  # record id -> line: duplicates would give duplicate example ids
        lineno = 0
        geovl_out = open(tmp / "geovl_corruptions.jsonl", "w", encoding="utf-8", newline="\n") if geovl_pool else None
        geovl_fragments = 0
        try:
            with open(samples, encoding="utf-8") as fh:
                lines = enumerate(fh, 1)
                if stop is not None:
                    lines = _record_block(lines, first, stop)
                for lineno, line in wrap(
                    lines, description="building", total=None if n_records is None else (stop or n_records) - first
                ):
                    if not line.strip():
                        continue
                    where = f"{samples}:{lineno}"
                    rec = parse_sample(line, where)
                    if rec.id in seen_ids:
                        raise SarvlmError(
                            f"{where}: record {rec.id!r}: duplicate id (first on line {seen_ids[rec.id]}); ids must be unique"
                        )
                    seen_ids[rec.id] = lineno
                    if geovl_pool is not None and geovl_out is not None:
                        from sarvlm.tasks.geovl import geovl_record

                        # record index = position in the file, as synth numbers its scenes
                        rec = geovl_record(rec, len(seen_ids) - 1, geovl_pool, opts.seed, float(opts.geovl_corrupt))
                        found = rec.meta["geovl_corruptions"]
                        geovl_fragments += len(found)
                        geovl_out.write(json.dumps({"sample_id": rec.id, "geovl_corruptions": found}) + "\n")
                    image_key = os.path.normpath(rec.image).replace(os.sep, "/")
                    image_abs = os.path.normpath(os.path.join(base_dir, rec.image))
                    _in_root(base_dir, rec.image, opts, f"{where}: record {rec.id!r}: image")
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
                        _in_root(base_dir, rec.optical, opts, f"{where}: record {rec.id!r}: optical")
                        if opts.check_images and not os.path.exists(optical_abs):
                            raise NotFoundError(f"{where}: record {rec.id!r}: optical: {optical_abs}: no such file")
                        images.append(_image_ref(optical_abs, final_dir, absolute))
                    targets = clean_targets(rec, report, opts.boxes, synonyms, strict)
                    view = SampleView(
                        rec, base_dir, targets, _group(targets), allow_outside_root=opts.allow_outside_root
                    )
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
        except UnicodeDecodeError:
            raise SarvlmError(f"{samples}:{lineno + 1}: not UTF-8 text") from None
        finally:
            for f in files.values():
                f.close()
            if geovl_out is not None:
                geovl_out.close()
        if not seen_ids:
            raise SarvlmError(f"{samples}: no sample records (empty file)")
        per_task: Counter = Counter()
        for c in counts.values():
            per_task.update(c)
        empty = {t: task_spec(t).needs for t in opts.tasks if per_task.get(t, 0) == 0}
        if not per_task and shard is None:  # a shard may hold none; the merge checks the whole
            raise SarvlmError(
                f"{samples}: no example for tasks {', '.join(opts.tasks)} — "
                + "; ".join(f"{t} needs {n}" for t, n in empty.items())
                + " (nothing written)"
            )
        tool_files = write_tool_files(tmp, fmt, list(files))
        manifest = _manifest(
            samples, opts, plan, vocabulary, counts, by_source, samples_per_split, report, _block and _block.sha256
        )
        if tool_files:
            manifest["tool_files"] = tool_files
        if geovl_pool is not None:
            manifest["geovl_captions"] = {
                "corrupt_fraction": opts.geovl_corrupt,
                "seed": opts.seed,
                "records": len(seen_ids),
                "corrupted_fragments": geovl_fragments,
                "file": "geovl_corruptions.jsonl",
            }
        if empty:
            manifest["tasks_without_examples"] = empty  # requested but the samples lack what they need
        # where the examples' image paths are rooted (train/predict resolve and confine them there)
        manifest["image_root"] = os.path.relpath(base_dir, final_dir).replace(os.sep, "/")
        with open(tmp / "manifest.json", "w", encoding="utf-8", newline="\n") as fh:
            json.dump(manifest, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        with open(tmp / "quality.md", "w", encoding="utf-8", newline="\n") as fh:
            fh.write(f"# Quality control: {samples.name}\n\n")
            fh.write(report.markdown())
        if shard is not None:
            state = {
                "records": [first, stop],
                "splits": list(counts),
                "samples_per_split": dict(samples_per_split),
                "by_source": {src: {t: dict(sp) for t, sp in tasks.items()} for src, tasks in by_source.items()},
                "quality": {"counts": dict(report.counts), "examples": report.examples},
            }
            write_shard_info(tmp, "build", shard, state)
    return BuildResult(out_dir, {s: dict(sorted(c.items())) for s, c in counts.items()}, report, manifest)


@dataclass(frozen=True)
class _BlockPlan:
    """What the parent of a parallel build computed once for every block."""

    vocabulary: tuple[str, ...]
    records: int
    sha256: str
    final_dir: str  # image paths are relative to the final output directory, not the block's


def _build_block(samples: Path, parts: Path, opts: BuildOptions, plan: _BlockPlan, shard: Shard) -> Any:
    """One block of a parallel build into ``parts/out.shard-K-of-B``; an input error is returned
    (not raised) so that the parent reports the first one in file order, as one process would."""
    try:
        return build_dataset(samples, parts / "out", opts, progress=_quiet, shard=shard, _block=plan)
    except SarvlmError as exc:
        return exc


def _quiet(items: Any, description: str = "", total: int | None = None) -> Any:
    return items


def _build_parallel(
    samples: Path, out_dir: Path, opts: BuildOptions, workers: int, scheduler: str | None, shard: Shard | None
) -> BuildResult:
    """``build --workers/--scheduler``: blocks built as shards (:func:`sarvlm.core.parallel.run_blocks`),
    joined by :func:`merge_build_shards` inside the atomic output directory."""
    from sarvlm.core.parallel import run_blocks
    from sarvlm.core.progress import progress_bar

    if shard is not None:
        raise SarvlmError("--workers/--scheduler and --shard exclude each other (run one array task per shard)")
    if opts.geovl_corrupt is not None:
        raise SarvlmError("--workers/--scheduler: not supported with --geovl-corrupt (build in one process)")
    if opts.split_method != "hash":
        raise SarvlmError(
            "--workers/--scheduler need --split-method hash (balanced splits depend on every earlier image)"
        )
    vocabulary, n_records, clean = _scan(samples, SYNONYMS if opts.use_synonyms else None, lenient=True)
    if not clean or n_records == 0:
        # a malformed line or a repeated id: one process reports it exactly (line, first occurrence)
        return build_dataset(samples, out_dir, opts)
    final_dir = out_dir.resolve()
    plan = _BlockPlan(vocabulary, n_records, _sha256(samples), str(final_dir))
    n_blocks = max(1, min(n_records, workers * 4))  # several per worker: balance and progress
    blocks = [Shard(k, n_blocks) for k in range(n_blocks)]
    with atomic_dir(out_dir, overwrite=opts.overwrite) as tmp:
        parts = tmp / ".blocks"
        parts.mkdir()
        with progress_bar("building", total=n_blocks) as advance:
            results = run_blocks(
                _build_block,
                blocks,
                args=(samples, parts, opts, plan),
                workers=workers,
                scheduler=scheduler,
                progress=advance,
            )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if not any(r.total for r in results):
            per_task = {t: task_spec(t).needs for t in opts.tasks}
            raise SarvlmError(
                f"{samples}: no example for tasks {', '.join(opts.tasks)} — "
                + "; ".join(f"{t} needs {n}" for t, n in per_task.items())
                + " (nothing written)"
            )
        merged = merge_build_shards(parts / "out")
        for item in sorted((parts / "out").iterdir()):
            item.rename(tmp / item.name)
        shutil.rmtree(parts)
    return BuildResult(out_dir, merged.counts, merged.quality, merged.manifest)


def _geovl_pool(samples: Path) -> dict[str, list[str]]:
    """Pre-pass for ``geovl_corrupt``: every GEOVL field's true values over all records (the ``swapped``
    pool); records without the synthetic truth or with a structured caption already fail, named."""
    from sarvlm.tasks.geovl import scene_fields, swap_pool

    truths = []
    with open(samples, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            rec = parse_sample(line, f"{samples}:{lineno}")
            where = f"{samples}:{lineno}: record {rec.id!r}"
            if "kind" not in rec.meta or "landcover_fractions" not in rec.meta:
                raise InputError(
                    f"{where}: --geovl-corrupt writes captions from the synthetic truth "
                    "(meta.kind, meta.landcover_fractions of `sarvlm synth` records), which this record lacks"
                )
            if any(c.style == "structured" for c in rec.captions):
                raise InputError(f"{where}: already has a structured caption; build without --geovl-corrupt")
            try:
                truths.append(scene_fields(rec))
            except (KeyError, IndexError, ValueError) as exc:
                raise InputError(f"{where}: meta: cannot write GEOVL captions from it ({exc!r})") from None
    return swap_pool(truths)


def _count_records(path: Path) -> int:
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def _record_block(lines: Iterator[tuple[int, str]], first: int, stop: int) -> Iterator[tuple[int, str]]:
    """The numbered lines of records ``first`` … ``stop - 1`` (records are the non-empty lines)."""
    index = -1
    for lineno, line in lines:
        if not line.strip():
            continue
        index += 1
        if index >= stop:
            return
        if index >= first:
            yield lineno, line


def merge_build_shards(out_dir: str | Path, overwrite: bool = False) -> BuildResult:
    """Join the parts ``OUT_DIR.shard-K-of-N`` of a sharded build into ``OUT_DIR``, byte-identical
    to an unsharded build (split files concatenated in shard order, counts and the quality report
    summed, the manifest rewritten)."""
    from sarvlm.core.sharding import find_parts, read_shard_info

    out_dir = Path(out_dir)
    parts = find_parts(out_dir, directory=True)
    infos = [read_shard_info(p) for p in parts]
    manifests = [json.loads((p / "manifest.json").read_text(encoding="utf-8")) for p in parts]
    for p, info, man in zip(parts, infos, manifests):
        if info.get("kind") != "build":
            raise SarvlmError(f"{p}: a {info.get('kind')} shard, not a build shard")
        same = ("inputs", "options", "vocabulary", "format")
        if any(man[k] != manifests[0][k] for k in same):
            raise SarvlmError(f"{p}: built from other inputs or options than {parts[0]}; cannot merge")
    splits: list[str] = []
    for info in infos:
        splits += [s for s in info["splits"] if s not in splits]
    counts: dict[str, Counter] = {s: Counter() for s in splits}
    by_source: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    samples_per_split: Counter = Counter()
    report = QualityReport()
    for info, man in zip(infos, manifests):
        for split, tasks in man["counts"].items():
            counts[split].update(tasks)
        samples_per_split.update(info["samples_per_split"])
        for src, tasks in info["by_source"].items():
            for task, sp in tasks.items():
                by_source[src][task].update(sp)
        report.counts.update(info["quality"]["counts"])
        for reason, ids in info["quality"]["examples"].items():
            kept = report.examples.setdefault(reason, [])
            kept += [i for i in ids if i not in kept][: report.keep_examples - len(kept)]
    # keys written after the counts (tool_files, tasks_without_examples, image_root) are re-added below
    # in the order one run writes them
    first = {k: v for k, v in manifests[0].items() if k not in ("tool_files", "tasks_without_examples", "image_root")}
    tasks = list(first["options"]["tasks"])
    per_task: Counter = Counter()
    for c in counts.values():
        per_task.update(c)
    if not per_task:
        raise SarvlmError(f"{out_dir}: the shards hold no example for tasks {', '.join(tasks)} (nothing written)")
    empty = {t: task_spec(t).needs for t in tasks if per_task.get(t, 0) == 0}
    manifest = {
        **first,
        "files": {name: f"{name}.jsonl" for name in counts},
        "counts": {s: dict(sorted(c.items())) for s, c in counts.items()},
        "totals": {s: sum(c.values()) for s, c in counts.items()},
        "samples": {s: samples_per_split.get(s, 0) for s in counts},
        "by_source": {
            src: {task: dict(sorted(sp.items())) for task, sp in sorted(tasks.items())}
            for src, tasks in sorted(by_source.items())
        },
        "quality": report.to_dict(),
    }
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for split in splits:
            with open(tmp / f"{split}.jsonl", "wb") as out:
                for p in parts:
                    if (p / f"{split}.jsonl").is_file():
                        with open(p / f"{split}.jsonl", "rb") as part:
                            shutil.copyfileobj(part, out, 1 << 22)
        tool_files = write_tool_files(tmp, first["format"], splits)
        if tool_files:
            manifest["tool_files"] = tool_files
        if empty:
            manifest["tasks_without_examples"] = empty
        if "image_root" in manifests[0]:
            manifest["image_root"] = manifests[0]["image_root"]
        with open(tmp / "manifest.json", "w", encoding="utf-8", newline="\n") as fh:
            json.dump(manifest, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        name = Path(first["inputs"][0]["path"]).name
        with open(tmp / "quality.md", "w", encoding="utf-8", newline="\n") as fh:
            fh.write(f"# Quality control: {name}\n\n")
            fh.write(report.markdown())
    return BuildResult(out_dir, manifest["counts"], report, manifest)


def _manifest(
    samples: Path,
    opts: BuildOptions,
    plan: SplitPlan,
    vocabulary: tuple[str, ...],
    counts: dict[str, Counter],
    by_source: dict[str, dict[str, Counter]],
    samples_per_split: Counter,
    report: QualityReport,
    sha256: str | None = None,
) -> dict[str, Any]:
    from sarvlm import __version__

    options = asdict(opts)
    return {
        "sarvlm_version": __version__,
        "inputs": [{"path": str(samples), "sha256": sha256 or _sha256(samples)}],
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
