"""Dataset-scale prior cache: every sample's anchor-grid prior computed once, stored in shards.

Layout of a cache directory::

    settings.json              grid, source spec, prior_dim, year policy, shard size (identity)
    shards/shard-00000.safetensors ...
    summary.json               written last: the cache is complete when it exists

Priors are keyed by **sample id** (instruction examples of one sample share an entry). Samples
are sorted by id and cut into fixed shards of ``shard_size``; each shard holds, for its ``N``
samples and ``S = n_lon·n_lat`` nodes, the tensors ``vectors (N,S,D) f32``, ``positions
(N,S,2) f32``, ``valid (N,S) u8``, ``lon/lat/x/y (N,S) f64``, ``year``/``year_requested``
``(N,) i32`` (−1 = none) and ``has_prior (N,) u8``, plus metadata: the sample ids, the reason
for each "no prior" entry and a fingerprint of the inputs. Shards are written atomically; a
rerun skips every shard whose ids and fingerprint already match, so an interrupted build
resumes where it stopped and ends byte-identical to an uninterrupted one.

A sample without georeference, without a year (and no ``default_year``), with an unsupported
footprint or with no valid node gets an explicit *no prior* entry: :meth:`PriorCache.get`
returns None for it (the model then skips modulation) — never silent zeros.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sarvlm.core.errors import InputError, NotFoundError, SarvlmError
from sarvlm.core.record import GeoRef
from sarvlm.core.sharding import Shard, write_shard_info
from sarvlm.priors.prior_grid import PriorGrid

CACHE_FORMAT = 1
SETTINGS_FILE = "settings.json"
SUMMARY_FILE = "summary.json"
SHARD_DIR = "shards"
SHARD_META_KEY = "sarvlm_prior_shard"
ROW_KEYS = ("lon", "lat", "x", "y", "positions", "vectors", "valid", "year", "year_requested")
NO_GEOREF = "no georeference"
NO_YEAR = "no acquisition year"
NO_COVERAGE = "outside the source"  # the source has no data for the footprint in any usable year
NODATA = "source NoData"  # the source covers the footprint, but every node is NoData there
BAD_FOOTPRINT = "unsupported footprint"
# what to do about each reason (printed by `sarvlm priors` under its coverage warning)
REASON_HINTS = {
    NO_YEAR: "set acquisition dates on import (--date/--year or a --meta CSV) or pass --default-year",
    NO_GEOREF: "import GeoTIFFs with a georeference (affine + CRS or GCPs) or give bbox_wgs84",
    NO_COVERAGE: "the source has no tile there or in a usable year: `sarvlm priors tiles DATA` lists the tiles needed",
    NODATA: "the tiles there are NoData (-128) under every node",
    BAD_FOOTPRINT: "footprints across the antimeridian or a pole are not supported",
}


@dataclass(frozen=True)
class PriorTarget:
    """What the cache needs to know about one sample."""

    sample_id: str
    width: int
    height: int
    georef: GeoRef | None
    year: int | None

    def fingerprint_obj(self) -> list:
        return [
            self.sample_id,
            self.width,
            self.height,
            None if self.georef is None else self.georef.model_dump(mode="json", exclude_none=True),
            self.year,
        ]


# ----------------------------------------------------------------------------- inputs


def _looks_like_examples(path: Path) -> bool:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    return False  # let the sample reader report it with line numbers
                return isinstance(obj, dict) and "sample_id" in obj and "messages" in obj
    return False


def load_prior_targets(data: str | Path) -> list[PriorTarget]:
    """Samples to compute priors for, sorted by id, from a samples JSONL (SampleRecord), an
    examples JSONL (InstructionExample) or a directory holding ``samples.jsonl`` or a built
    dataset's ``train/val/test.jsonl``."""
    from sarvlm.core.example import read_examples
    from sarvlm.core.record import read_samples

    data = Path(data)
    if not data.exists():
        raise NotFoundError(f"{data}: no such file or directory")
    if data.is_dir():
        if (data / "samples.jsonl").is_file():
            files = [data / "samples.jsonl"]
        else:
            files = sorted(data.glob("*.jsonl"))
            if not files:
                raise InputError(f"{data}: no samples.jsonl or *.jsonl dataset files")
    else:
        files = [data]

    targets: dict[str, PriorTarget] = {}
    for f in files:
        if _looks_like_examples(f):
            for ex in read_examples(f):
                if ex.sample_id in targets:
                    continue
                if ex.width is None or ex.height is None:
                    if ex.georef is None:
                        targets[ex.sample_id] = PriorTarget(ex.sample_id, 1, 1, None, ex.year)
                        continue
                    raise InputError(
                        f"{f}: example {ex.id!r}: field 'width'/'height': needed to place the prior grid (rebuild the dataset with image sizes)"
                    )
                targets[ex.sample_id] = PriorTarget(ex.sample_id, int(ex.width), int(ex.height), ex.georef, ex.year)
        else:
            for rec in read_samples(f):
                if rec.id in targets:
                    raise InputError(f"{f}: record {rec.id!r}: field 'id': duplicate sample id")
                targets[rec.id] = PriorTarget(rec.id, rec.width, rec.height, rec.georef, rec.year)
    if not targets:
        raise InputError(f"{data}: no samples")
    return [targets[k] for k in sorted(targets)]


# ----------------------------------------------------------------------------- building


def _settings(
    grid: tuple[int, int],
    spec: str,
    prior_dim: int,
    year_policy: str,
    default_year: int | None,
    edge_tolerance: float,
    shard_size: int,
) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "grid": [int(grid[0]), int(grid[1])],
        "source": spec,
        "prior_dim": int(prior_dim),
        "year_policy": year_policy,
        "default_year": default_year,
        "edge_tolerance": float(edge_tolerance),
        "shard_size": int(shard_size),
        "node_order": "row-major: lat (south to north) outer, lon (west to east) inner",
        # nodes on the image's pixel grid for affine/GCP georeferences (see priors.anchor_grid)
        "anchors": "auto",
    }


def _shard_path(out_dir: Path, k: int) -> Path:
    return out_dir / SHARD_DIR / f"shard-{k:05d}.safetensors"


def _fingerprint(chunk: list[PriorTarget], settings: dict) -> str:
    blob = json.dumps([settings, [t.fingerprint_obj() for t in chunk]], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _shard_is_current(path: Path, ids: list[str], fingerprint: str) -> bool:
    if not path.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            info = json.loads((f.metadata() or {})[SHARD_META_KEY])
    except Exception:  # noqa: BLE001 - a damaged or foreign shard is simply recomputed
        return False
    return info.get("fingerprint") == fingerprint and info.get("sample_ids") == ids


def _compute_entry(
    source, t: PriorTarget, grid: tuple[int, int], year_policy: str, default_year: int | None, edge_tolerance: float
) -> tuple[PriorGrid | None, str]:
    from sarvlm.priors.sampling import sample_grid

    if t.georef is None:
        return None, NO_GEOREF
    year = t.year if t.year is not None else default_year
    if year is None:
        return None, NO_YEAR
    from sarvlm.priors.anchor_grid import footprint_from_georef

    try:
        footprint_from_georef(t.georef, t.width, t.height, where=f"sample {t.sample_id!r}: georef")
    except SarvlmError as exc:
        return None, f"{BAD_FOOTPRINT}: {exc}"
    g = sample_grid(
        source,
        None,  # checked above; the grid is placed from the georeference (image-space anchors)
        year,
        grid[0],
        grid[1],
        t.width,
        t.height,
        t.georef,
        year_policy=year_policy,
        edge_tolerance=edge_tolerance,
    )
    g.year_requested = t.year
    if not g.valid.any():
        return g, NO_COVERAGE if g.year is None else NODATA
    return g, ""


def _write_shard(
    path: Path, chunk: list[PriorTarget], entries: list[tuple[PriorGrid | None, str]], s: int, d: int, fingerprint: str
) -> None:
    from safetensors.numpy import save_file

    from sarvlm.core.atomic import atomic_path

    n = len(chunk)
    arr: dict[str, np.ndarray] = {
        "vectors": np.zeros((n, s, d), np.float32),
        "positions": np.zeros((n, s, 2), np.float32),
        "valid": np.zeros((n, s), np.uint8),
        "lon": np.zeros((n, s), np.float64),
        "lat": np.zeros((n, s), np.float64),
        "x": np.zeros((n, s), np.float64),
        "y": np.zeros((n, s), np.float64),
        "year": np.full(n, -1, np.int32),
        "year_requested": np.full(n, -1, np.int32),
        "has_prior": np.zeros(n, np.uint8),
    }
    for i, (t, (g, reason)) in enumerate(zip(chunk, entries, strict=True)):
        if t.year is not None:
            arr["year_requested"][i] = t.year
        if g is None:
            continue
        for key in ("lon", "lat", "x", "y", "positions", "vectors"):
            arr[key][i] = getattr(g, key)
        arr["valid"][i] = g.valid
        arr["year"][i] = -1 if g.year is None else g.year
        arr["has_prior"][i] = 0 if reason else 1
    # One metadata key: safetensors stores metadata in a hash map whose key order varies
    # between runs, and the shard bytes must not.
    info = {
        "format": CACHE_FORMAT,
        "fingerprint": fingerprint,
        "sample_ids": [t.sample_id for t in chunk],
        "reasons": [r for _, r in entries],
    }
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(arr, str(tmp), metadata={SHARD_META_KEY: json.dumps(info, sort_keys=True, ensure_ascii=False)})


def build_prior_cache(
    data: str | Path,
    source_spec: str | Any,
    grid: tuple[int, int] = (8, 8),
    out_dir: str | Path | None = None,
    *,
    shard_size: int = 512,
    year_policy: str = "nearest",
    default_year: int | None = None,
    edge_tolerance: float = 0.05,
    overwrite: bool = False,
    source_options: dict | None = None,
    shard: Shard | str | None = None,
    workers: int = 1,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Compute (or resume) the prior cache of every sample in ``data`` into ``out_dir``.

    ``data``: a samples JSONL, an examples JSONL or a dataset directory (see
    :func:`load_prior_targets`). ``source_spec``: a spec for :func:`sarvlm.priors.open_source`
    or an already opened source. ``grid``: ``(n_lon, n_lat)``. Samples without a year use
    ``default_year`` if given, else get a *no prior* entry. An existing cache with the same
    settings is resumed (finished shards are kept); different settings need ``overwrite``.
    Returns the summary (also written to ``out_dir/summary.json``).

    ``shard`` (``"K/N"``): compute only the K-th contiguous block of cache shards into
    ``OUT_DIR.shard-K-of-N`` (no ``summary.json`` there); :func:`merge_prior_shards` joins the parts
    into the cache one unsharded run writes.

    ``workers`` > 1 computes the cache shards in that many processes, ``scheduler`` (a Dask scheduler
    address or ``local``) on a Dask cluster (:mod:`sarvlm.core.parallel`); each task opens the source
    from its spec (an already opened source object runs in this process). Same bytes either way.
    """
    from sarvlm.core.atomic import atomic_open, ensure_writable_dir
    from sarvlm.core.parallel import check_workers, run_blocks
    from sarvlm.core.progress import progress_bar, track
    from sarvlm.priors.sources import open_source

    if out_dir is None:
        raise InputError("build_prior_cache: out_dir is required")
    out_dir = Path(out_dir)
    n_lon, n_lat = (int(v) for v in grid)
    if n_lon < 1 or n_lat < 1:
        raise InputError(f"grid: needs at least 1x1 nodes, got {n_lon}x{n_lat}")
    if int(shard_size) < 1:
        raise InputError(f"shard_size: must be positive, got {shard_size}")
    if year_policy not in ("nearest", "exact"):
        raise InputError(f"year policy: must be 'nearest' or 'exact', got {year_policy!r}")
    targets = load_prior_targets(data)
    shard = Shard.parse(shard)
    if shard is not None:
        out_dir = shard.output_path(out_dir, directory=True)

    source = open_source(source_spec, **(source_options or {})) if isinstance(source_spec, str) else source_spec
    spec = source_spec if isinstance(source_spec, str) else source.spec
    settings = _settings((n_lon, n_lat), spec, source.prior_dim, year_policy, default_year, edge_tolerance, shard_size)

    settings_path = out_dir / SETTINGS_FILE
    if out_dir.exists() and any(out_dir.iterdir()):
        old = None
        if settings_path.is_file():
            try:
                old = json.loads(settings_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                old = None
        if old is None and not overwrite:
            raise InputError(f"{out_dir}: exists and is not a prior cache (use --overwrite)")
        if old is not None and old != settings and not overwrite:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise InputError(
                f"{out_dir}: existing cache has different settings ({', '.join(diff)}); use --overwrite to rebuild"
            )
        if overwrite and old != settings:
            for p in sorted((out_dir / SHARD_DIR).glob("shard-*.safetensors")):
                p.unlink()
    ensure_writable_dir(out_dir / SHARD_DIR)
    (out_dir / SUMMARY_FILE).unlink(missing_ok=True)  # incomplete until rewritten at the end
    with atomic_open(settings_path) as fh:
        json.dump(settings, fh, indent=2, sort_keys=True)
        fh.write("\n")

    s, d = n_lon * n_lat, int(source.prior_dim)
    chunks = [targets[i : i + shard_size] for i in range(0, len(targets), shard_size)]
    first, stop = shard.bounds(len(chunks)) if shard is not None else (0, len(chunks))
    mine = range(first, stop)
    fingerprints = {k: _fingerprint(chunks[k], settings) for k in mine}
    current = {
        k: _shard_is_current(_shard_path(out_dir, k), [t.sample_id for t in chunks[k]], fingerprints[k]) for k in mine
    }
    todo = [t for k in mine if not current[k] for t in chunks[k]]
    resumed = sum(1 for k in mine if current[k])
    workers = check_workers(workers)
    if (workers > 1 or scheduler) and isinstance(source_spec, str):
        # one task per cache shard: each opens the source, computes its samples and writes its file
        source.close()
        jobs = [(k, chunks[k], fingerprints[k]) for k in mine if not current[k]]
        task_args = (spec, source_options or {}, (n_lon, n_lat), year_policy, default_year, edge_tolerance, s, d)
        with progress_bar(f"priors {n_lon}x{n_lat} (cache shards)", total=len(jobs)) as advance:
            run_blocks(
                _compute_shard_file,
                jobs,
                args=(out_dir, *task_args),
                workers=workers,
                scheduler=scheduler,
                progress=advance,
            )
    else:
        # One progress bar over the samples still to compute (finished shards are skipped).
        computed = (
            _compute_entry(source, t, (n_lon, n_lat), year_policy, default_year, edge_tolerance)
            for t in track(todo, description=f"priors {n_lon}x{n_lat}", total=len(todo))
        )
        try:
            for k in mine:
                if not current[k]:
                    entries = list(itertools.islice(computed, len(chunks[k])))
                    _write_shard(_shard_path(out_dir, k), chunks[k], entries, s, d, fingerprints[k])
        finally:
            if isinstance(source_spec, str):
                source.close()
    for p in sorted((out_dir / SHARD_DIR).glob("shard-*.safetensors")):
        if int(p.stem.split("-")[1]) not in mine:
            p.unlink()  # left over from a larger earlier dataset (or another block)
    if shard is not None:
        write_shard_info(out_dir, "priors", shard, {"chunks": [first, stop], "n_chunks": len(chunks)})
        return {"samples": sum(len(chunks[k]) for k in mine), "shards": len(mine), "shards_resumed": resumed}
    summary = _summarize(out_dir, range(len(chunks)), settings)
    summary["shards_resumed"] = resumed
    return summary


def _compute_shard_file(
    out_dir: Path,
    spec: str,
    source_options: dict,
    grid: tuple[int, int],
    year_policy: str,
    default_year: int | None,
    edge_tolerance: float,
    s: int,
    d: int,
    job: tuple[int, list[PriorTarget], str],
) -> int:
    """Compute and write cache shard ``k`` (a worker's task; opens its own source). Returns ``k``."""
    from sarvlm.priors.sources import open_source

    k, chunk, fingerprint = job
    source = open_source(spec, **source_options)
    try:
        entries = [_compute_entry(source, t, grid, year_policy, default_year, edge_tolerance) for t in chunk]
    finally:
        source.close()
    _write_shard(_shard_path(out_dir, k), chunk, entries, s, d, fingerprint)
    return k


def _summarize(out_dir: Path, chunk_ids: range, settings: dict[str, Any]) -> dict[str, Any]:
    """Read the cache shards ``chunk_ids`` of ``out_dir`` and write ``summary.json`` (returned)."""
    from sarvlm.core.atomic import atomic_open

    reasons: Counter[str] = Counter()
    years_used: Counter[str] = Counter()
    fallbacks: Counter[str] = Counter()
    nodes_valid = nodes_total = n_samples = 0
    footprint_example = None
    for k in chunk_ids:
        shard = _ShardReader(_shard_path(out_dir, k))
        years, req = shard.array("year"), shard.array("year_requested")
        valid, has = shard.array("valid"), shard.array("has_prior")
        n_samples += len(shard.ids)
        for i, r in enumerate(shard.reasons):
            if r:
                key = BAD_FOOTPRINT if r.startswith(BAD_FOOTPRINT) else r
                reasons[key] += 1
                if key == BAD_FOOTPRINT and footprint_example is None:
                    footprint_example = r
            if has[i]:
                years_used[str(int(years[i]))] += 1
                nodes_valid += int(valid[i].sum())
                nodes_total += valid.shape[1]
                if req[i] >= 0 and req[i] != years[i]:
                    fallbacks[f"{int(req[i])}->{int(years[i])}"] += 1
    n_lon, n_lat = settings["grid"]
    summary = {
        "samples": n_samples,
        "with_prior": n_samples - sum(reasons.values()),
        "no_prior": dict(sorted(reasons.items())),
        "nodes_valid": nodes_valid,
        "nodes_invalid": nodes_total - nodes_valid,
        "years_used": dict(sorted(years_used.items())),
        "year_fallbacks": dict(sorted(fallbacks.items())),
        "grid": f"{n_lon}x{n_lat}",
        "source": settings["source"],
        "shards": len(chunk_ids),
    }
    if footprint_example:
        summary["footprint_error_example"] = footprint_example
    with atomic_open(out_dir / SUMMARY_FILE) as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return summary


def coverage_problems(summary: dict[str, Any], min_coverage: float | None = None) -> tuple[list[str], str | None]:
    """Warning lines about samples without a prior (one per reason, with what to do), and an error
    message when the share of samples with a prior is below ``min_coverage`` (a fraction; None: only
    when no sample at all has a prior)."""
    n = int(summary["samples"])
    have = int(summary["with_prior"])
    share = have / n if n else 0.0
    lines = []
    if have < n:
        lines.append(f"warning: only {have} of {n} samples ({100.0 * share:.1f}%) have a prior")
        for reason, count in summary["no_prior"].items():
            hint = REASON_HINTS.get(reason, "")
            lines.append(f"warning:   {reason}: {count}" + (f" ({hint})" if hint else ""))
    error = None
    if min_coverage is None:
        if n and have == 0:
            error = (
                f"no sample has a prior ({', '.join(f'{r} {c}' for r, c in summary['no_prior'].items())}); "
                "the cache is written but useless for training (pass --min-coverage 0 to accept it)"
            )
    elif share < float(min_coverage):
        error = (
            f"prior coverage {100.0 * share:.1f}% is below --min-coverage {100.0 * float(min_coverage):.1f}% "
            f"({', '.join(f'{r} {c}' for r, c in summary['no_prior'].items())}); the cache is written"
        )
    return lines, error


def merge_prior_shards(out_dir: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Join the parts ``OUT_DIR.shard-K-of-N`` of a sharded ``build_prior_cache`` into the cache
    ``OUT_DIR`` one unsharded run writes (same shard files, settings and summary, byte for byte)."""
    import shutil

    from sarvlm.core.atomic import atomic_dir
    from sarvlm.core.sharding import find_parts, read_shard_info

    out_dir = Path(out_dir)
    parts = find_parts(out_dir, directory=True)
    infos = [read_shard_info(p) for p in parts]
    settings_text = [(p / SETTINGS_FILE).read_text(encoding="utf-8") for p in parts]
    n_chunks = infos[0].get("n_chunks")
    covered = 0
    for p, info, text in zip(parts, infos, settings_text):
        if info.get("kind") != "priors":
            raise SarvlmError(f"{p}: a {info.get('kind')} shard, not a priors shard")
        if text != settings_text[0] or info.get("n_chunks") != n_chunks:
            raise SarvlmError(f"{p}: built with other settings or data than {parts[0]}; cannot merge")
        first, stop = info["chunks"]
        if first != covered:
            raise SarvlmError(f"{p}: holds cache shards {first}..{stop - 1}, expected to start at {covered}")
        covered = stop
    if covered != n_chunks:
        raise SarvlmError(f"{parts[-1]}: the parts hold cache shards 0..{covered - 1} of {n_chunks}")
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        (tmp / SHARD_DIR).mkdir()
        (tmp / SETTINGS_FILE).write_text(settings_text[0], encoding="utf-8")
        for p, info in zip(parts, infos):
            for k in range(*info["chunks"]):
                src = _shard_path(p, k)
                if not src.is_file():
                    raise SarvlmError(f"{src}: missing (the shard run did not finish)")
                shutil.copyfile(src, _shard_path(tmp, k))
        return _summarize(tmp, range(covered), json.loads(settings_text[0]))


# ----------------------------------------------------------------------------- reading


class _ShardReader:
    """Metadata of one shard plus lazy, per-row tensor access (memory-mapped by safetensors)."""

    def __init__(self, path: Path):
        from safetensors import safe_open

        self.path = path
        self._open = None
        try:
            with safe_open(str(path), framework="np") as f:
                meta = f.metadata() or {}
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{path}: cannot read prior shard ({exc})") from None
        try:
            info = json.loads(meta[SHARD_META_KEY])
            self.ids: list[str] = list(info["sample_ids"])
            self.reasons: list[str] = list(info["reasons"])
        except (KeyError, TypeError, json.JSONDecodeError):
            raise InputError(f"{path}: not a sarvlm prior shard (missing {SHARD_META_KEY} metadata)") from None

    def _handle(self):
        # One memory-mapped handle per shard, opened on first use and kept: a get() is then
        # a few slice reads instead of re-parsing the header.
        if self._open is None:
            from safetensors import safe_open

            self._open = safe_open(str(self.path), framework="np")
        return self._open

    def array(self, key: str) -> np.ndarray:
        return self._handle().get_tensor(key)

    def row(self, i: int) -> dict[str, np.ndarray]:
        f = self._handle()
        return {k: f.get_slice(k)[i : i + 1][0] for k in ROW_KEYS}


class PriorCache:
    """Read access to a cache written by :func:`build_prior_cache`.

    ``cache.get(sample_id)`` returns the sample's :class:`PriorGrid`, or None for its explicit
    *no prior* entry; an id the cache does not know raises :class:`SarvlmError` naming it.
    """

    def __init__(self, cache_dir: str | Path):
        self.dir = Path(cache_dir)
        settings_path = self.dir / SETTINGS_FILE
        if not settings_path.is_file():
            raise InputError(
                f"{self.dir}: not a prior cache (no {SETTINGS_FILE}; build one with `sarvlm priors DATA --source SPEC --out DIR`)"
            )
        self.settings: dict[str, Any] = json.loads(settings_path.read_text(encoding="utf-8"))
        if self.settings.get("format") != CACHE_FORMAT:
            raise InputError(
                f"{settings_path}: cache format {self.settings.get('format')} is not supported (expected {CACHE_FORMAT})"
            )
        summary_path = self.dir / SUMMARY_FILE
        if not summary_path.is_file():
            raise InputError(
                f"{self.dir}: prior cache is incomplete (interrupted?); rerun `sarvlm priors` with the same arguments to resume"
            )
        self.summary: dict[str, Any] = json.loads(summary_path.read_text(encoding="utf-8"))
        self._shards: list[_ShardReader] = [
            _ShardReader(p) for p in sorted((self.dir / SHARD_DIR).glob("shard-*.safetensors"))
        ]
        self._where: dict[str, tuple[int, int]] = {}
        for k, shard in enumerate(self._shards):
            for i, sid in enumerate(shard.ids):
                self._where[sid] = (k, i)

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.settings["grid"])

    @property
    def prior_dim(self) -> int:
        return int(self.settings["prior_dim"])

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._where

    def __len__(self) -> int:
        return len(self._where)

    def sample_ids(self) -> list[str]:
        return sorted(self._where)

    def reason(self, sample_id: str) -> str:
        """Why the sample has no prior ('' if it has one)."""
        k, i = self._locate(sample_id)
        return self._shards[k].reasons[i]

    def get(self, sample_id: str) -> PriorGrid | None:
        """The sample's prior, or None for its explicit no-prior entry."""
        k, i = self._locate(sample_id)
        if self._shards[k].reasons[i]:
            return None
        r = self._shards[k].row(i)
        return PriorGrid(
            lon=r["lon"],
            lat=r["lat"],
            x=r["x"],
            y=r["y"],
            positions=r["positions"],
            vectors=r["vectors"],
            valid=r["valid"].astype(bool),
            year=int(r["year"]) if int(r["year"]) >= 0 else None,
            year_requested=int(r["year_requested"]) if int(r["year_requested"]) >= 0 else None,
        )

    def _locate(self, sample_id: str) -> tuple[int, int]:
        try:
            return self._where[sample_id]
        except KeyError:
            raise NotFoundError(
                f"sample {sample_id!r}: not in prior cache {self.dir} (rebuild it for this dataset)"
            ) from None
