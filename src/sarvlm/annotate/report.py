"""The run report of ``sarvlm annotate``: ``report.json`` and ``report.md`` in the run directory.

Counts per status (accepted / conflict kept, flagged or dropped / unparsable / failed / missing facts /
image errors / budget / resumed), per answer field (checks passed and failed: the per-field accuracy
against the annotations) and per check kind, with up to :data:`EXAMPLES` examples each; requests sent,
cache hits, tokens and cost. Memory is constant in the number of records (counters and a few examples).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarvlm.core.atomic import atomic_open

if TYPE_CHECKING:
    from sarvlm.annotate.client import Prices
    from sarvlm.annotate.endpoint import Endpoint
    from sarvlm.annotate.outcome import Outcome
    from sarvlm.annotate.templates import PromptTemplate

EXAMPLES = 3
STATUSES = (
    "accepted",
    "conflict",
    "unparsable",
    "failed",
    "missing_facts",
    "image_error",
    "budget",
    "resumed",
    "would_request",
)


class RunReport:
    """Counters of one run (see the module docstring)."""

    def __init__(
        self, tpl: PromptTemplate, endpoint: Endpoint, on_conflict: str, prices: Prices, samples: str, out: str | None
    ) -> None:
        self.tpl, self.endpoint, self.on_conflict, self.prices = tpl, endpoint, on_conflict, prices
        self.samples, self.out = samples, out
        self.records = 0
        self.status: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()
        self.fields: dict[str, Counter[str]] = defaultdict(Counter)
        self.check_kinds: dict[str, Counter[str]] = defaultdict(Counter)
        self.examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.cache_hits = 0
        self.new_replies = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.requests_made = 0
        self.seconds = 0.0
        self.first_request: list[dict[str, Any]] | None = None

    def _example(self, key: str, item: dict[str, Any]) -> None:
        if len(self.examples[key]) < EXAMPLES:
            self.examples[key].append(item)

    def add(self, o: Outcome) -> None:
        self.records += 1
        self.status[o.status] += 1
        self.cache_hits += int(o.cached)
        self.new_replies += int(o.requested)
        self.prompt_tokens += o.prompt_tokens
        self.completion_tokens += o.completion_tokens
        if o.action:
            self.actions[o.action] += 1
        if o.status not in ("accepted", "resumed", "would_request"):
            item: dict[str, Any] = {"sample_id": o.record.id, "detail": o.detail}
            if o.reply is not None and o.status == "unparsable":
                item["reply"] = o.reply[:300] + ("…" if len(o.reply) > 300 else "")
            self._example(o.status, item)
        if o.validation is not None:
            names = (
                [f"turn{i + 1}" for i in range(3)] if self.tpl.output["kind"] == "dialogue" else list(self.tpl.fields)
            )
            for name, state in o.validation.per_field(names).items():
                self.fields[name][state] += 1
            for c in o.validation.checks:
                self.check_kinds[c.check]["passed" if c.ok else "failed"] += 1
                if not c.ok:
                    self._example(f"check:{c.check}", {"sample_id": o.record.id, "field": c.field, "detail": c.detail})
        if o.parsed is not None and o.parsed.ok:
            for name in o.parsed.missing:
                self.fields[name]["missing"] += 1

    @property
    def cost(self) -> float:
        return self.prices.cost(self.prompt_tokens, self.completion_tokens)

    def to_dict(self) -> dict[str, Any]:
        per_field = {}
        for name, c in self.fields.items():
            checked = c["ok"] + c["conflict"]
            per_field[name] = {**dict(c), "accuracy": (c["ok"] / checked) if checked else None}
        return {
            "prompt": self.tpl.key,
            "paper": self.tpl.paper,
            "endpoint": self.endpoint.kind,
            "model": self.endpoint.model,
            "samples": self.samples,
            "out": self.out,
            "on_conflict": self.on_conflict,
            "records": self.records,
            "status": {s: self.status.get(s, 0) for s in STATUSES if self.status.get(s, 0) or s in STATUSES[:5]},
            "conflict_actions": dict(self.actions),
            "fields": per_field,
            "checks": {k: dict(v) for k, v in sorted(self.check_kinds.items())},
            "requests_sent": self.requests_made,
            "new_replies": self.new_replies,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": round(self.cost, 6),
            "prices_per_million": {"input": self.prices.input_per_million, "output": self.prices.output_per_million},
            "seconds": round(self.seconds, 3),
            "examples": dict(self.examples),
        }

    def markdown(self) -> str:
        return report_markdown(self.to_dict())

    def write(self, run_dir: str | Path) -> Path:
        return write_report(run_dir, self.to_dict())


def write_report(run_dir: str | Path, d: dict[str, Any]) -> Path:
    """``report.json`` and ``report.md`` of the report dict ``d`` in ``run_dir`` (atomic writes)."""
    run_dir = Path(run_dir)
    with atomic_open(run_dir / "report.json") as fh:
        json.dump(d, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    md = run_dir / "report.md"
    with atomic_open(md) as fh:
        fh.write(report_markdown(d))
    return md


def merge_report_dicts(parts: list[dict[str, Any]], out: str | None) -> dict[str, Any]:
    """The report one run over all records would write, from the reports of its contiguous shards
    (in shard order): counters summed, keys in first-seen order, the first :data:`EXAMPLES` examples
    of each kind; ``seconds`` is the sum of the parts' wall times (the one field that differs from a
    single run, as it does between any two runs)."""
    first = parts[0]
    merged: dict[str, Any] = {k: first[k] for k in ("prompt", "paper", "endpoint", "model", "samples")}
    merged["out"] = out
    merged["on_conflict"] = first["on_conflict"]
    merged["records"] = sum(p["records"] for p in parts)
    status: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    fields: dict[str, Counter[str]] = {}
    checks: dict[str, Counter[str]] = {}
    examples: dict[str, list[dict[str, Any]]] = {}
    for p in parts:
        status.update(p["status"])
        actions.update(p["conflict_actions"])
        for name, c in p["fields"].items():
            fields.setdefault(name, Counter()).update({k: v for k, v in c.items() if k != "accuracy"})
        for name, c in p["checks"].items():
            checks.setdefault(name, Counter()).update(c)
        for key, items in p["examples"].items():
            kept = examples.setdefault(key, [])
            kept += items[: EXAMPLES - len(kept)]
    merged["status"] = {s: status.get(s, 0) for s in STATUSES if status.get(s, 0) or s in STATUSES[:5]}
    merged["conflict_actions"] = dict(actions)
    per_field = {}
    for name, c in fields.items():
        checked = c["ok"] + c["conflict"]
        per_field[name] = {**dict(c), "accuracy": (c["ok"] / checked) if checked else None}
    merged["fields"] = per_field
    merged["checks"] = {k: dict(v) for k, v in sorted(checks.items())}
    for key in ("requests_sent", "new_replies", "cache_hits", "prompt_tokens", "completion_tokens"):
        merged[key] = sum(p[key] for p in parts)
    from sarvlm.annotate.client import Prices

    prices = first["prices_per_million"]
    cost = Prices(prices["input"], prices["output"]).cost(merged["prompt_tokens"], merged["completion_tokens"])
    merged["cost"] = round(cost, 6)
    merged["prices_per_million"] = prices
    merged["seconds"] = round(sum(p["seconds"] for p in parts), 3)
    merged["examples"] = examples
    return merged


def report_markdown(d: dict[str, Any]) -> str:
    """``report.md`` from a report dict (:meth:`RunReport.to_dict` or :func:`merge_report_dicts`)."""
    lines = [
        f"# Annotation run: {d['prompt']} with {d['model']} ({d['endpoint']})",
        "",
        f"{d['records']} records from `{d['samples']}` → `{d['out']}`; on conflict: **{d['on_conflict']}**. "
        f"Prompt after {d['paper']}.",
        "",
        "| status | records |",
        "|---|---:|",
    ]
    for s, n in d["status"].items():
        extra = ""
        if s == "conflict" and d["conflict_actions"]:
            extra = " (" + ", ".join(f"{k}: {v}" for k, v in sorted(d["conflict_actions"].items())) + ")"
        lines.append(f"| {s} | {n}{extra} |")
    lines += [
        "",
        f"Requests sent: {d['requests_sent']} (retries included); new replies: {d['new_replies']}; cache hits: "
        f"{d['cache_hits']}; tokens: {d['prompt_tokens']} prompt + {d['completion_tokens']} completion; "
        f"cost: {d['cost']:.4f} (at {d['prices_per_million']['input']:g} / {d['prices_per_million']['output']:g} "
        f"per million tokens); {d['seconds']:.2f} s.",
        "",
    ]
    if d["fields"]:
        lines += [
            "## Per-field accuracy against the annotations",
            "",
            "| field | ok | conflict | unchecked | missing | accuracy |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, c in d["fields"].items():
            acc = "–" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f}%"
            lines.append(
                f"| {name} | {c.get('ok', 0)} | {c.get('conflict', 0)} | {c.get('unchecked', 0)} | "
                f"{c.get('missing', 0)} | {acc} |"
            )
        lines.append("")
    if d["checks"]:
        lines += ["## Checks", "", "| check | passed | failed |", "|---|---:|---:|"]
        for k, c in d["checks"].items():
            lines.append(f"| {k} | {c.get('passed', 0)} | {c.get('failed', 0)} |")
        lines.append("")
    if d["examples"]:
        lines += ["## Examples", ""]
        for key, items in sorted(d["examples"].items()):
            for it in items:
                where = f" [{it['field']}]" if "field" in it else ""
                reply = f" — reply: `{it['reply']}`" if "reply" in it else ""
                lines.append(f"- **{key}** `{it['sample_id']}`{where}: {it['detail']}{reply}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
