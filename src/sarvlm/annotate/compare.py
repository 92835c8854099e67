"""Template captions vs LLM captions of the same samples: the comparison of FUSAR-KLIP Fig. 9-11 and
SARLANG-1M Table 3, for ``sarvlm stats SAMPLES.jsonl --captions``.

Two groups of captions over the samples that have both:

- **template**: captions not written by ``sarvlm annotate`` (the synthetic world's template captions,
  imported captions, builder templates);
- **LLM**: captions written by ``sarvlm annotate`` (``source`` starting ``sarvlm-annotate``), one group per
  prompt.

Per group: number of captions, words per caption (mean, median), vocabulary size, MTLD, and (optional)
SARLANG-1M's overall text similarity (Sentence-BERT, lower = more diverse). Factual accuracy of both
groups against the annotations with the checks of :mod:`sarvlm.annotate.validate` (count, category,
position, land cover, size, colour): share of captions with no failed check, and for structured LLM
captions the per-field accuracy (FUSAR-KLIP Fig. 9's eight dimensions: Count, Location, Feature, Size,
Category, Distribution, Region, Environment for targets; the eight GEOVL fields for terrain). A field
with no applicable check (e.g. Feature) is reported as unchecked, not as correct. Side-by-side examples
of both groups for the same samples close the report; ``caption_comparison.png`` plots the accuracy per
field and the caption lengths.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sarvlm.annotate.facts import record_facts
from sarvlm.annotate.templates import ANNOTATE_SOURCE
from sarvlm.annotate.validate import _check_text
from sarvlm.core.atomic import atomic_open
from sarvlm.core.errors import InputError
from sarvlm.core.record import read_samples
from sarvlm.data.statistics import mtld, words

SIDE_BY_SIDE = 5
KLIP_FIG9 = ("Count", "Location", "Feature", "Size", "Category", "Distribution", "Region", "Environment")


def _group_of(source: str | None) -> str | None:
    """``template`` or ``llm:<prompt>`` (None for captions written by no one we know)."""
    if (source or "").startswith(ANNOTATE_SOURCE):
        parts = (source or "").split(":")
        return f"llm:{parts[1]}" if len(parts) > 1 else "llm"
    return "template"


def caption_comparison(samples: str | Path, text_similarity: bool = False) -> dict[str, Any]:
    """The comparison (see the module docstring) as a JSON-able dict."""
    samples = Path(samples)
    if not samples.is_file():
        raise InputError(f"{samples}: no such samples file")
    texts: dict[str, list[str]] = defaultdict(list)
    factual: dict[str, Counter[str]] = defaultdict(Counter)
    fields: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    side: list[dict[str, Any]] = []
    n_both = 0
    for rec in read_samples(samples):
        groups: dict[str, list] = defaultdict(list)
        for cap in rec.captions:
            g = _group_of(cap.source)
            if g:
                groups[g].append(cap)
        if "template" not in groups or len(groups) < 2:
            continue
        n_both += 1
        facts = record_facts(rec, samples.parent)
        scoped = facts.objects
        for g, caps in groups.items():
            for cap in caps:
                texts[g].append(cap.text)
                if cap.meta and isinstance(cap.meta.get("checks"), list):
                    checks = cap.meta["checks"]  # stored by `sarvlm annotate` when the caption was written
                    ok = all(c.get("ok") for c in checks)
                    by_field: dict[str, list[bool]] = defaultdict(list)
                    for c in checks:
                        by_field[str(c.get("field"))].append(bool(c.get("ok")))
                    for name in cap.fields or {}:
                        res = by_field.get(name)
                        fields[g][name]["unchecked" if not res else ("ok" if all(res) else "conflict")] += 1
                else:
                    found: list = []
                    _check_text("text", cap.text, facts, scoped, found)
                    ok = all(c.ok for c in found)
                factual[g]["correct" if ok else "conflict"] += 1
        if len(side) < SIDE_BY_SIDE:
            side.append(
                {
                    "sample_id": rec.id,
                    **{g: [c.text for c in caps] for g, caps in sorted(groups.items())},
                }
            )
    if not n_both:
        raise InputError(
            f"{samples}: no sample has both a template caption and a caption from `sarvlm annotate` "
            "(run `sarvlm annotate` on these samples first)"
        )
    out_groups: dict[str, Any] = {}
    for g, ts in sorted(texts.items()):
        toks = [words(t) for t in ts]
        lengths = [len(t) for t in toks]
        all_tokens = [w for t in toks for w in t]
        entry: dict[str, Any] = {
            "captions": len(ts),
            "words_mean": round(statistics.fmean(lengths), 2),
            "words_median": statistics.median(lengths),
            "vocabulary": len(set(all_tokens)),
            "mtld": round(mtld(all_tokens), 2),
            "factual_accuracy": round(factual[g]["correct"] / max(1, sum(factual[g].values())), 4),
            "lengths": lengths,
        }
        if g in fields:
            entry["fields"] = {
                name: {
                    **dict(c),
                    "accuracy": round(c["ok"] / (c["ok"] + c["conflict"]), 4) if (c["ok"] + c["conflict"]) else None,
                }
                for name, c in fields[g].items()
            }
        if text_similarity and len(ts) >= 2:
            from sarvlm.data.statistics import overall_similarity, sentence_embeddings

            entry["text_similarity"] = overall_similarity(sentence_embeddings(ts[:1000]))
        out_groups[g] = entry
    return {"samples": str(samples), "samples_with_both": n_both, "groups": out_groups, "side_by_side": side}


def _markdown(d: dict[str, Any]) -> str:
    groups = d["groups"]
    lines = [
        "# Template vs LLM captions",
        "",
        f"{d['samples_with_both']} samples of `{d['samples']}` have both a template caption and an LLM caption "
        "(FUSAR-KLIP Fig. 9-11, SARLANG-1M Table 3).",
        "",
        "| group | captions | words (mean / median) | vocabulary | MTLD | text similarity | factual accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for g, e in groups.items():
        sim = e.get("text_similarity")
        sim_txt = f"{sim['mean']:.3f}" if sim else "–"
        lines.append(
            f"| {g} | {e['captions']} | {e['words_mean']:.1f} / {e['words_median']:g} | {e['vocabulary']} | "
            f"{e['mtld']:.1f} | {sim_txt} | {100 * e['factual_accuracy']:.1f}% |"
        )
    lines += ["", "Factual accuracy: share of captions with no failed check against the annotations.", ""]
    for g, e in groups.items():
        if "fields" not in e:
            continue
        lines += [f"## Per-field accuracy of {g}", "", "| field | ok | conflict | unchecked | accuracy |"]
        lines.append("|---|---:|---:|---:|---:|")
        order = [f for f in KLIP_FIG9 if f in e["fields"]] + [f for f in e["fields"] if f not in KLIP_FIG9]
        for name in order:
            c = e["fields"][name]
            acc = "–" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f}%"
            lines.append(f"| {name} | {c.get('ok', 0)} | {c.get('conflict', 0)} | {c.get('unchecked', 0)} | {acc} |")
        lines.append("")
    lines += ["## Side by side", ""]
    for item in d["side_by_side"]:
        lines.append(f"**{item['sample_id']}**")
        lines.append("")
        for g in groups:
            for t in item.get(g, []):
                lines.append(f"- *{g}*: " + t.replace("\n", " / "))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _plot(d: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for g, e in d["groups"].items():
        ax1.hist(e["lengths"], bins=20, alpha=0.6, label=g)
    ax1.set_xlabel("words per caption")
    ax1.set_ylabel("captions")
    ax1.legend()
    ax1.set_title("caption length")
    names, accs, labels = [], [], []
    for g, e in d["groups"].items():
        for name, c in (e.get("fields") or {}).items():
            if c["accuracy"] is not None:
                names.append(f"{name}\n({g.removeprefix('llm:')})")
                accs.append(100 * c["accuracy"])
        labels.append(g)
    if names:
        ax2.bar(range(len(names)), accs, color="tab:orange")
        ax2.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
    ax2.bar([len(names) + i for i in range(len(labels))], [100 * d["groups"][g]["factual_accuracy"] for g in labels])
    ax2.set_xticks(
        list(range(len(names) + len(labels))),
        names + [f"all\n({g})" for g in labels],
        rotation=60,
        fontsize=7,
    )
    ax2.set_ylim(0, 100)
    ax2.set_ylabel("accuracy against annotations (%)")
    ax2.set_title("per-field and overall factual accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_comparison(d: dict[str, Any], out_dir: str | Path) -> Path:
    """``caption_comparison.{md,json,png}`` in ``out_dir``; returns the Markdown path."""
    from sarvlm.core.atomic import atomic_path

    out_dir = Path(out_dir)
    with atomic_open(out_dir / "caption_comparison.json") as fh:
        json.dump(d, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    md = out_dir / "caption_comparison.md"
    with atomic_open(md) as fh:
        fh.write(_markdown(d))
    with atomic_path(out_dir / "caption_comparison.png") as tmp:
        _plot(d, tmp)
    return md
