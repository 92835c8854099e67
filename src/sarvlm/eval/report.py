"""Evaluation reports: ``metrics.json`` + ``report.md`` in the papers' table layouts, and ``compare``.

Tables (numbers in %, as the papers print them; CIDEr x100 like pycocoevalcap's
COCO reports):

- FUSAR-GPT Table 2 (counting @Acc; grid Acc@100/Acc@50/Top1), Table 3 (classification
  in a box, coarse and fine, per class), Table 4 (detection R/F1 — plus P — per IoU
  0.25/0.5/0.75, all and per category), Table 7 (corpus-level captioning).
- SARLANG-1M Table 7 (BLEU_1..4, ROUGE_L, CIDEr) and Table 8 (VQA accuracy).
- FUSAR-KLIP Table 6 (captioning BLEU-4/METEOR/CIDEr/SPICE and the six VQA types).
- LunarOS-Mini Table I (five-dimension judge scores) when judges ran.

``compare`` lays several report directories side by side (the ablation table) and
reports mean ± std over runs sharing a name (seeds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sarvlm.core.errors import SarvlmError
from sarvlm.eval.metrics_view import classification_levels, iou_thresholds


def _pct(v: Any, scale: float = 100.0) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{float(v) * scale:.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def render_markdown(metrics: dict[str, Any]) -> str:
    """report.md text for one run."""
    name = metrics.get("run_name", "run")
    t = metrics.get("tasks", {})
    lines = [f"# Evaluation report: {name}", ""]
    c = metrics.get("counts", {})
    lines += [
        f"Examples: {c.get('examples')}, predictions: {c.get('predictions')}, missing predictions (scored as wrong): "
        f"{c.get('missing')}, predictions for ids not in the data (ignored): {c.get('unknown_ids')}.",
        "",
    ]

    lines += ["## Answer parsing", ""]
    lines += _table(
        ["task", "examples", "missing", "no answer (unparsable)"],
        [[k, v["n"], v["missing"], v["no_answer"]] for k, v in sorted(metrics.get("answers", {}).items())],
    )

    if "count" in t or "grid" in t:
        lines += ["## FUSAR-GPT Table 2 layout — counting and spatial localisation", ""]
        cnt, grd = t.get("count", {}), t.get("grid", {})
        lines += _table(
            ["Model", "Counting @Acc", "Acc@100", "Acc@50", "Top1", "Count MAE"],
            [
                [
                    name,
                    _pct(cnt.get("accuracy")),
                    _pct(grd.get("acc100")),
                    _pct(grd.get("acc50")),
                    _pct(grd.get("top1")),
                    _pct(cnt.get("mae"), 1.0),
                ]
            ],
        )

    if "classify_box" in t:
        lines += ["## FUSAR-GPT Table 3 layout — classification of the target in a given box (per-class accuracy)", ""]
        for level, res in sorted(classification_levels(t["classify_box"]).items()):
            classes = list(res["per_class"])
            lines += [
                f"Level: **{level}** — top-1 {_pct(res['top1'])}"
                + (f", top-3 {_pct(res['top3'])}" if "top3" in res else ""),
                "",
            ]
            parent = res.get("parent") or {}
            if parent:  # Table 3 groups fine classes under their coarse category ("Fine-grained-plane", ...)
                classes = sorted(classes, key=lambda k: (parent.get(k, "~"), k))
                header = [f"{parent.get(k, '?')}: {k}" for k in classes]
            else:
                header = classes
            lines += _table(["Model", *header], [[name, *(_pct(res["per_class"][k]) for k in classes)]])

    if "detect" in t:
        d = t["detect"]
        thr = iou_thresholds(d)
        cats = ["all"] + sorted({c for k in thr for c in d[k] if c != "all"})
        lines += [
            "## FUSAR-GPT Table 4 layout — detection from a category prompt",
            "",
            "One-to-one greedy matching by IoU; P = matched / predicted boxes, R = matched / true boxes.",
            "",
        ]
        header = ["Model"] + [f"IoU={float(k):.2f} {c} {m}" for k in thr for c in cats for m in ("P", "R", "F1")]
        row = [name] + [_pct(d[k].get(c, {}).get(m)) for k in thr for c in cats for m in ("precision", "recall", "f1")]
        lines += _table(header, [row])
        if "map50" in d:
            mp = d["map50"]
            lines += [
                f"mAP@50 (pycocotools COCOeval; text boxes carry no confidence, so the k-th box of an answer "
                f"scores 1/(1+k)): all {_pct(mp.get('all'))}"
                + "".join(f", {k} {_pct(v)}" for k, v in sorted(mp.items()) if k not in ("all", "scores")),
                "",
            ]

    for task in ("caption", "dialogue"):
        if task in t:
            cap = t[task]
            lines += [f"## FUSAR-GPT Table 7 layout — corpus-level {task} metrics", ""]
            lines += _table(
                ["Model", "Bleu-1", "Bleu-2", "Bleu-3", "Bleu-4", "CIDEr", "METEOR", "SPICE"],
                [
                    [
                        name,
                        *(_pct(cap.get(f"bleu_{i}")) for i in range(1, 5)),
                        _pct(cap.get("cider")),
                        _pct(cap.get("meteor")),
                        _pct(cap.get("spice")),
                    ]
                ],
            )
            lines += [f"## SARLANG-1M Table 7 layout — {task}", ""]
            lines += _table(
                ["Model", "BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "ROUGE_L", "CIDEr"],
                [
                    [
                        name,
                        *(_pct(cap.get(f"bleu_{i}")) for i in range(1, 5)),
                        _pct(cap.get("rouge_l")),
                        _pct(cap.get("cider")),
                    ]
                ],
            )
            if cap.get("per_type"):
                lines += [
                    "Per caption type (SARLANG-1M reports complex and concise captions separately): means of "
                    "per-sample scores from the one run above — for BLEU these are sentence-level means, not "
                    "corpus BLEU.",
                    "",
                ]
                lines += _table(
                    ["Caption", "Model", "n", "BLEU_1", "BLEU_4", "ROUGE_L", "CIDEr"],
                    [
                        [
                            ty,
                            name,
                            v.get("n"),
                            _pct(v.get("bleu_1")),
                            _pct(v.get("bleu_4")),
                            _pct(v.get("rouge_l")),
                            _pct(v.get("cider")),
                        ]
                        for ty, v in sorted(cap["per_type"].items())
                    ],
                )
            skipped = cap.get("skipped") or {}
            for k, why in sorted(skipped.items()):
                lines += [f"- {k.upper()} skipped: {why}"]
            lines += [f"Tokenizer: {cap.get('tokenizer')}; n = {cap.get('n')}.", ""]

    vqa_tasks = [k for k, v in sorted(t.items()) if isinstance(v, dict) and "protocol" in v]
    if vqa_tasks:
        lines += ["## SARLANG-1M Table 8 layout — VQA accuracy", ""]
        rows = []
        for k in vqa_tasks:
            v = t[k]
            extra = ""
            if v["protocol"] != "exact":
                extra = f"judged {v.get('judged', 0)}, judge unparsable {v.get('judge_unparsable', 0)}, unjudged {v.get('unjudged', 0)}"
            rows.append([name, k, v["protocol"], v["n"], _pct(v["accuracy"]), extra])
        lines += _table(["Model", "task", "protocol", "n", "Accuracy", "judge"], rows)

    klip = {
        "Target Count": ("count", "accuracy"),
        "Target Rec": ("classify_box", "top1"),
        "Target Pos": ("position", "accuracy"),
        "Main Land": ("landform_main", "top1"),
        "All Land": ("landform_all", "accuracy"),
        "Reg Land": ("landform_region", "top1"),
    }
    cap = t.get("caption", {})
    if cap or any(v[0] in t for v in klip.values()):
        lines += ["## FUSAR-KLIP Table 6 layout — captioning and the six VQA types", ""]
        lines += _table(
            ["Model", "Bleu-4", "METEOR", "CIDEr", "SPICE", *klip],
            [
                [
                    name,
                    _pct(cap.get("bleu_4")),
                    _pct(cap.get("meteor")),
                    _pct(cap.get("cider")),
                    _pct(cap.get("spice")),
                    *(_pct(t.get(task, {}).get(key)) for task, key in klip.values()),
                ]
            ],
        )

    other = [k for k in sorted(t) if k in ("identify", "refer", "classify", "landform_all")]
    if other:
        lines += ["## Other closed-form tasks", ""]
        lines += _table(
            ["task", "n", "accuracy", "precision", "recall", "f1"],
            [
                [
                    k,
                    t[k].get("n"),
                    _pct(t[k].get("accuracy", t[k].get("top1"))),
                    _pct(t[k].get("precision")),
                    _pct(t[k].get("recall")),
                    _pct(t[k].get("f1")),
                ]
                for k in other
            ],
        )

    judges = metrics.get("judges") or {}
    for task, res in sorted(judges.items()):
        lines += [
            f"## LunarOS-Mini Table I layout — five-dimension LLM judges ({task})",
            "",
            "FL fluency, QR question relevance, GTA ground-truth alignment, MC multi-turn consistency, "
            "PID professional information density; 0–20 each, overall out of 100.",
            "",
        ]
        rows = [
            [j, name, *(_pct(v.get(d), 1.0) for d in ("FL", "QR", "GTA", "MC", "PID", "overall")), v.get("unparsable")]
            for j, v in sorted(res["judges"].items())
        ]
        avg = res["average"]
        rows.append(
            ["average", name, *(_pct(avg.get(d), 1.0) for d in ("FL", "QR", "GTA", "MC", "PID", "overall")), ""]
        )
        lines += _table(["Judge", "Model", "FL", "QR", "GTA", "MC", "PID", "Overall", "unparsable"], rows)

    lines += ["## Protocol", ""]
    for k, v in sorted(metrics.get("protocol", {}).items()):
        lines += [f"- **{k}**: {v}"]
    lines += ["", "## Versions", ""]
    lines += [f"- {k} {v}" for k, v in sorted(metrics.get("versions", {}).items())]
    return "\n".join(lines) + "\n"


def write_report(
    metrics: dict[str, Any],
    out_dir: str | Path,
    raw: dict[str, Any] | None = None,
    plots: bool = True,
    overwrite: bool = True,
) -> Path:
    """Write metrics.json, report.md and plots into ``out_dir`` as one atomic directory."""
    from sarvlm.core.atomic import atomic_dir

    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        (tmp / "metrics.json").write_text(
            json.dumps(metrics, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (tmp / "report.md").write_text(render_markdown(metrics), encoding="utf-8")
        if plots:
            from sarvlm.eval.plots import plot_run

            plot_run(metrics, raw or {}, tmp)
    return out_dir


# ---------------------------------------------------------------------------- compare
HEADLINES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Count @Acc", "count", ("accuracy",)),
    ("Count MAE", "count", ("mae",)),
    ("Grid Acc@100", "grid", ("acc100",)),
    ("Grid Acc@50", "grid", ("acc50",)),
    ("Grid Top1", "grid", ("top1",)),
    ("Cls top-1", "classify_box", ("top1",)),
    ("Det F1@0.25", "detect", ("0.25", "all", "f1")),
    ("Det F1@0.5", "detect", ("0.5", "all", "f1")),
    ("Det F1@0.75", "detect", ("0.75", "all", "f1")),
    ("Det mAP@50", "detect", ("map50", "all")),
    ("Caption BLEU-4", "caption", ("bleu_4",)),
    ("Caption CIDEr", "caption", ("cider",)),
    ("Identify acc", "identify", ("accuracy",)),
    ("Position acc", "position", ("accuracy",)),
    ("VQA acc", "vqa", ("accuracy",)),
)


def _get(metrics: dict[str, Any], task: str, path: tuple[str, ...]) -> float | None:
    cur: Any = metrics.get("tasks", {}).get(task)
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return float(cur) if isinstance(cur, (int, float)) and not isinstance(cur, bool) else None


def compare(
    report_dirs: Sequence[str | Path], names: Sequence[str] | None = None, out: str | Path | None = None
) -> dict[str, Any]:
    """Side-by-side table of several runs; runs sharing a name are aggregated as mean ± std.

    ``names[i]`` overrides the run name of ``report_dirs[i]`` (default: the ``run_name``
    stored in its metrics.json). Group order follows first appearance. With ``out``,
    writes ``compare.md``, ``compare.json`` and ``compare.png`` there.
    """
    import numpy as np

    if not report_dirs:
        raise SarvlmError("compare: no report directories given")
    if names is not None and len(names) != len(report_dirs):
        raise SarvlmError(f"compare: {len(report_dirs)} report directories but {len(names)} names")
    groups: dict[str, list[dict[str, Any]]] = {}
    for i, d in enumerate(report_dirs):
        path = Path(d) / "metrics.json"
        if not path.exists():
            raise SarvlmError(f"{path}: no such file (not a report directory?)")
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SarvlmError(f"{path}: malformed JSON ({exc.msg})") from None
        name = names[i] if names is not None else str(m.get("run_name") or Path(d).name)
        groups.setdefault(name, []).append(m)
    columns = [
        (label, task, p)
        for label, task, p in HEADLINES
        if any(_get(m, task, p) is not None for ms in groups.values() for m in ms)
    ]
    table: dict[str, dict[str, Any]] = {}
    for name, ms in groups.items():
        row: dict[str, Any] = {"runs": len(ms)}
        for label, task, p in columns:
            vals = [v for v in (_get(m, task, p) for m in ms) if v is not None]
            if not vals:
                row[label] = None
                continue
            mean = float(np.mean(vals))
            std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
            row[label] = {"mean": mean, "std": std, "n": len(vals)}
        table[name] = row
    result = {"columns": [c[0] for c in columns], "runs": table}
    if out is not None:
        from sarvlm.core.atomic import atomic_open

        out = Path(out)
        with atomic_open(out / "compare.json") as fh:
            fh.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
        with atomic_open(out / "compare.md") as fh:
            fh.write(render_compare(result))
        from sarvlm.eval.plots import plot_compare

        plot_compare(result, out / "compare.png")
    return result


def render_compare(result: dict[str, Any]) -> str:
    """Markdown of a :func:`compare` result (x100 for fractions, MAE as is)."""
    cols = result["columns"]
    rows = []
    for name, row in result["runs"].items():
        cells = [name, str(row["runs"])]
        for c in cols:
            v = row.get(c)
            scale = 1.0 if "MAE" in c else 100.0
            if v is None:
                cells.append("–")
            elif v["std"] is None:
                cells.append(_pct(v["mean"], scale))
            else:
                cells.append(f"{_pct(v['mean'], scale)} ± {_pct(v['std'], scale)}")
        rows.append(cells)
    return "\n".join(
        [
            "# Run comparison",
            "",
            "Mean ± sample std over runs sharing a name.",
            "",
            *_table(["Run", "runs", *cols], rows),
        ]
    )
