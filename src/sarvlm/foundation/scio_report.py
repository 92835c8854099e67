"""SCIO outputs: ``fragments.jsonl``, ``summary.json``, ``refined.jsonl`` and plots (in ``RUN/scio``)."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sarvlm.core.atomic import atomic_open, atomic_path, ensure_writable_dir
from sarvlm.core.record import SampleRecord, write_samples
from sarvlm.foundation.data import KlipItem, render_fragment
from sarvlm.foundation.scio import FragmentDecision, screening_quality

ACTIONS = ("kept", "dropped", "reconstructed")


def _relocate(rec: SampleRecord, src_dir: Path, dst_dir: Path) -> dict[str, Any]:
    """Paths of a record rewritten relative to ``dst_dir`` (records keep paths relative to their JSONL)."""

    def rel(p: str | None) -> str | None:
        if p is None:
            return None
        return os.path.relpath((src_dir / p).resolve(), dst_dir.resolve())

    update: dict[str, Any] = {"image": rel(rec.image)}
    if rec.optical:
        update["optical"] = rel(rec.optical)
    if rec.landcover is not None:
        update["landcover"] = rec.landcover.model_copy(update={"mask": rel(rec.landcover.mask)})
    return update


def refined_records(items: list[KlipItem], refined: list[KlipItem], src_dir: Path, dst_dir: Path) -> list[SampleRecord]:
    """Each record with its ``structured`` caption replaced by the refined fields (originals kept in
    ``meta.scio_original_fields``; dropped fields are left out)."""
    out = []
    for it, new in zip(items, refined):
        rec = it.record
        caps = []
        for c in rec.captions:
            if c.style == "structured" and c.fields:
                fields = dict(zip(new.fields, new.values))
                text = "\n".join(render_fragment(k, v) for k, v in fields.items())
                caps.append(c.model_copy(update={"fields": fields, "text": text, "source": (c.source or "") + "+scio"}))
            else:
                caps.append(c)
        meta = dict(rec.meta)
        meta["scio_original_fields"] = dict(zip(it.fields, it.values))
        update = _relocate(rec, src_dir, dst_dir)
        update.update({"captions": caps, "meta": meta})
        out.append(rec.model_copy(update=update))
    return out


def summarise(decisions: list[list[FragmentDecision]]) -> dict[str, Any]:
    per_field: dict[str, Counter] = defaultdict(Counter)
    for rows in decisions:
        for r in rows:
            per_field[r.field][r.action] += 1
    totals = Counter()
    for c in per_field.values():
        totals.update(c)
    out: dict[str, Any] = {
        "fragments": sum(totals.values()),
        "actions": {a: totals.get(a, 0) for a in ACTIONS},
        "per_field": {f: {a: c.get(a, 0) for a in ACTIONS} for f, c in per_field.items()},
    }
    if any(r.corrupted is not None for rows in decisions for r in rows):
        out["screening_vs_truth"] = screening_quality(decisions)
        rec = [r for rows in decisions for r in rows if r.reconstructed is not None and r.corrupted]
        out["reconstruction"] = {
            "attempted_on_corrupted": len(rec),
            "accepted_on_corrupted": sum(r.action == "reconstructed" for r in rec),
        }
    return out


def _plots(scio_dir: Path, decisions: list[list[FragmentDecision]], summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = list(summary["per_field"])
    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = [0] * len(fields)
    for action, color in zip(ACTIONS, ("#4c72b0", "#dd8452", "#55a868")):
        vals = [summary["per_field"][f][action] for f in fields]
        ax.bar(fields, vals, bottom=bottom, label=action, color=color)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("fragments")
    ax.set_title("SCIO actions per field")
    ax.legend()
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    with atomic_path(scio_dir / "actions.png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)

    flat = [r for rows in decisions for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    groups = (
        {"corrupted": [r for r in flat if r.corrupted], "clean": [r for r in flat if r.corrupted is False]}
        if any(r.corrupted is not None for r in flat)
        else {"all": flat}
    )
    for ax, key, title in zip(axes, ("delta_itc", "delta_itm"), ("ΔL_ITC without fragment", "Δs_ITM without fragment")):
        for name, rows in groups.items():
            if rows:
                ax.hist([getattr(r, key) for r in rows], bins=30, alpha=0.6, label=f"{name} ({len(rows)})")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(scio_dir / "screening.png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def write_scio_outputs(
    scio_dir: Path, data: Path, items: list[KlipItem], decisions: list[list[FragmentDecision]], refined: list[KlipItem]
) -> dict[str, Any]:
    """Write every SCIO output; returns the summary."""
    ensure_writable_dir(scio_dir)
    with atomic_open(scio_dir / "fragments.jsonl") as fh:
        for rows in decisions:
            for r in rows:
                fh.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    summary = summarise(decisions)
    with atomic_open(scio_dir / "summary.json") as fh:
        json.dump(summary, fh, indent=2)
        fh.write("\n")
    if all(it.record is not None for it in items):
        write_samples(scio_dir / "refined.jsonl", refined_records(items, refined, data.parent, scio_dir))
    _plots(scio_dir, decisions, summary)
    return summary
