"""Join the parts of ``sarvlm annotate --shard K/N`` into what one unsharded run writes.

Each part is ``STEM.shard-K-of-N.jsonl`` (its contiguous block of records, annotated) with its own
run directory ``RUN_DIR.shard-K-of-N`` (``replies/`` cache and ``report.json``/``report.md``). The
merge writes

- ``OUT``: the parts concatenated in shard order — byte-identical to an unsharded run;
- ``RUN_DIR/replies/``: the union of the parts' reply caches (one file per request key, copied
  byte for byte; a rerun of the unsharded command then answers every record from the cache);
- ``RUN_DIR/report.json`` and ``report.md``: the parts' reports merged
  (:func:`~sarvlm.annotate.report.merge_report_dicts`): identical to an unsharded run's report
  except ``seconds`` (the sum of the parts' wall times; wall time differs between any two runs).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sarvlm.annotate.report import merge_report_dicts, write_report
from sarvlm.core.atomic import atomic_open
from sarvlm.core.errors import SarvlmError
from sarvlm.core.sharding import find_parts, read_shard_info, shard_info_path


def merge_annotate_shards(out: str | Path, overwrite: bool = False, remove_parts: bool = False) -> Path:
    """Merge the annotate parts of ``out`` (see the module docstring); returns ``out``."""
    out = Path(out)
    parts = find_parts(out, directory=False)
    infos = [read_shard_info(p) for p in parts]
    same = ("samples_digest", "records", "settings", "run_dir")
    for p, info in zip(parts, infos):
        if info.get("kind") != "annotate":
            raise SarvlmError(f"{p}: a {info.get('kind')} shard, not an annotate shard")
        if any(info.get(k) != infos[0].get(k) for k in same):
            raise SarvlmError(f"{p}: annotated from other inputs or options than {parts[0]}; cannot merge")
    if out.exists() and not overwrite:
        raise SarvlmError(f"{out}: exists (use --overwrite)")
    run_dir = Path(infos[0]["run_dir"])
    part_dirs = [Path(info["part_run_dir"]) for info in infos]
    reports: list[dict[str, Any]] = []
    for d in part_dirs:
        path = d / "report.json"
        try:
            reports.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise SarvlmError(f"{path}: unreadable annotate shard report ({exc})") from None
    with atomic_open(out, "wb") as fh:
        for p in parts:
            with open(p, "rb") as src:
                shutil.copyfileobj(src, fh, 1 << 20)
    _merge_replies([d / "replies" for d in part_dirs], run_dir / "replies")
    write_report(run_dir, merge_report_dicts(reports, infos[0]["out"]))
    if remove_parts:
        for p, d in zip(parts, part_dirs):
            p.unlink()
            shard_info_path(p).unlink(missing_ok=True)
            shutil.rmtree(d, ignore_errors=True)
    return out


def _merge_replies(sources: list[Path], dest: Path) -> None:
    """Copy every cached reply into ``dest`` (same ``<key[:2]>/<key>.json`` layout); an entry already
    there is kept (the same key is the same request)."""
    from sarvlm.core.progress import track

    entries = [entry for src in sources if src.is_dir() for entry in sorted(src.glob("*/*.json"))]
    for entry in track(entries, "merging cached replies", total=len(entries)):
        target = dest / entry.parent.name / entry.name
        if target.exists():
            continue
        with atomic_open(target, "wb") as fh:
            fh.write(entry.read_bytes())
