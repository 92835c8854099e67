"""The demo's report: the papers' ablation tables over the synthetic world, what the prior adds
on the questions that need it, plots, and metrics.json.

Headline numbers come from each run's evaluation (``sarvlm eval``); the prior-dependent subsets
are re-scored here from the same predictions with the same parser and metrics.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarvlm.core.atomic import atomic_open
from sarvlm.demo.config import DemoConfig

# (column title, task, path into that task's metrics)
HEADLINE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Count Acc", "count", ("accuracy",)),
    ("Grid Acc@100", "grid", ("acc100",)),
    ("Grid Acc@50", "grid", ("acc50",)),
    ("Grid Top1", "grid", ("top1",)),
    ("Cls-box Top1", "classify_box", ("top1",)),
    ("Det F1@0.5", "detect", ("0.5", "all", "f1")),
    ("Landform main", "landform_main", ("top1",)),
    ("Landform region", "landform_region", ("top1",)),
    ("Land cover @anchor", "landcover_point", ("top1",)),
)
NO_TLM = ("stage2-only", "stage1+stage2")
MAJORITY = "majority-answer"  # the no-model baseline: each task's most frequent training answer
# Pairs that differ only in the prior fusion: (with TLM, without).
TLM_PAIRS = (("full", "stage1+stage2"), ("stage2+tlm", "stage2-only"))
PRIOR_CLASSES = ("farmland", "grassland")
# Land-cover questions whose farmland/grassland answers form the decision rule's question set; the
# anchor-node family (sarvlm.tasks.landcover_point) is the one sized for power.
PRIOR_LAND_TASKS = ("landcover_point", "landform_main", "landform_region")


def run_tag(entry: dict[str, Any], alias: bool = False) -> str:
    """File-name tag of an ablation entry: ``<name>-seed<k>``; for an alias entry (fusion-tlm is
    the full run) the run it points to, unless ``alias`` asks for the entry's own name."""
    name = entry["name"] if alias or not entry.get("alias_of") else entry["alias_of"]
    return f"{name}-seed{entry['seed']}"


def _get(d: Any, path: tuple[str, ...]) -> float | None:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return float(d) if isinstance(d, (int, float)) else None


def _mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, s


def _fmt(values: list[float] | None) -> str:
    if not values:
        return "–"
    m, s = _mean_std(values)
    return f"{100 * m:.1f} ± {100 * s:.1f}" if len(values) > 1 else f"{100 * m:.1f}"


def _subset_scores(pred_path: Path, test_path: Path) -> dict[str, float]:
    """Accuracy on the questions the prior is built to answer (see docs/synthetic-world.md).

    Answers are parsed by the task registry and compared the way ``sarvlm eval`` compares them
    (:func:`sarvlm.tasks.registry.answer_is_correct`: "meadow" is a correct ``grassland``)."""
    from sarvlm.core.example import read_examples, read_predictions
    from sarvlm.core.vocabulary import answer_key
    from sarvlm.metrics.counting import count_scores
    from sarvlm.metrics.detection import detection_scores
    from sarvlm.tasks.registry import answer_is_correct, parse_prediction

    preds = {p.id: p.prediction for p in read_predictions(pred_path)}
    land_hits: list[bool] = []
    point_hits: list[bool] = []
    ship_gt: list[int] = []
    ship_pred: list[int | None] = []
    det_gt: list[list] = []
    det_pred: list[list] = []
    for ex in read_examples(test_path):
        text = preds.get(ex.id, "")
        parsed = parse_prediction(ex.task, text, params=ex.params, coords=ex.coords, width=ex.width, height=ex.height)
        if ex.task in PRIOR_LAND_TASKS and answer_key(str(ex.answer)) in PRIOR_CLASSES:
            land_hits.append(answer_is_correct(ex.task, parsed, ex.answer))
            if ex.task == "landcover_point":
                point_hits.append(land_hits[-1])
        elif ex.task == "count" and answer_key(str(ex.params.get("category"))) == "ship":
            ship_gt.append(int(ex.answer))
            ship_pred.append(parsed if isinstance(parsed, int) else None)
        elif ex.task == "detect" and answer_key(str(ex.params.get("category"))) == "ship":
            det_gt.append([("ship", *b) for b in ex.answer])
            det_pred.append([("ship", *b) for b in (parsed or [])])
    out: dict[str, float] = {}
    if land_hits:
        out["farmland/grassland acc"] = sum(land_hits) / len(land_hits)
        out["farmland/grassland n"] = len(land_hits)
    if point_hits:
        out["farmland/grassland @anchor acc"] = sum(point_hits) / len(point_hits)
        out["farmland/grassland @anchor n"] = len(point_hits)
    if ship_gt:
        out["ship count acc"] = count_scores(ship_gt, ship_pred)["accuracy"]
        out["ship count n"] = len(ship_gt)
    if det_gt:
        out["ship det F1@0.5"] = detection_scores(det_gt, det_pred, iou_thresholds=(0.5,))[0.5]["all"]["f1"]
        out["ship det n"] = len(det_gt)
    return out


def _prior_hits(pred_path: Path, test_path: Path) -> dict[str, bool]:
    """Per question: was the land cover right? Over the prior-dependent land-cover questions
    (truth farmland or grassland), keyed by example id — the paired unit of the decision rule."""
    from sarvlm.core.example import read_examples, read_predictions
    from sarvlm.core.vocabulary import answer_key
    from sarvlm.tasks.registry import answer_is_correct, parse_prediction

    preds = {p.id: p.prediction for p in read_predictions(pred_path)}
    hits: dict[str, bool] = {}
    for ex in read_examples(test_path):
        if ex.task in PRIOR_LAND_TASKS and answer_key(str(ex.answer)) in PRIOR_CLASSES:
            text = preds.get(ex.id, "")
            parsed = parse_prediction(
                ex.task, text, params=ex.params, coords=ex.coords, width=ex.width, height=ex.height
            )
            hits[ex.id] = bool(answer_is_correct(ex.task, parsed, ex.answer))
    return hits


def decision_table(scores: RunScores) -> tuple[list[str], list[dict[str, Any]]]:
    """The decision rule (:mod:`sarvlm.demo.decision`) for every TLM pair, on the land-cover
    questions that need the prior: markdown rows and their data."""
    from sarvlm.demo.decision import detectable_difference, paired_bootstrap

    lines: list[str] = []
    data: list[dict[str, Any]] = []
    for with_tlm, without in TLM_PAIRS:
        seeds = sorted({s for (n, s) in scores.hits if n == with_tlm} & {s for (n, s) in scores.hits if n == without})
        if not seeds:
            continue
        ids = sorted(set.intersection(*(set(scores.hits[(n, s)]) for s in seeds for n in (with_tlm, without))))
        if not ids:
            continue
        a = [[scores.hits[(with_tlm, s)][i] for i in ids] for s in seeds]
        b = [[scores.hits[(without, s)][i] for i in ids] for s in seeds]
        r = paired_bootstrap(a, b)
        # seeds share the questions: more seeds average training noise, not question sampling
        mde = detectable_difference(r.questions)
        data.append({"with": with_tlm, "without": without, **r.to_dict(), "detectable_difference": mde})
        lines.append(
            f"| {with_tlm} vs {without} | {r.seeds} | {r.questions} | {100 * r.diff:+.1f} | "
            f"[{100 * r.low:+.1f}, {100 * r.high:+.1f}] | {100 * mde:.0f} | **{r.verdict}** |"
        )
    return lines, data


def token_diagnostics(
    ablation: Path, runs: list[dict[str, Any]], scenes_jsonl: Path, test_jsonl: Path, priors: Path
) -> dict[str, dict[str, float]]:
    """:func:`sarvlm.demo.diagnostics.visual_token_diagnostics` of the first seed of each TLM run
    (``full``, ``stage2+tlm``) on the test scenes: ``{run: figures}``."""
    from sarvlm.core.example import read_examples
    from sarvlm.demo.diagnostics import visual_token_diagnostics

    scene_ids = sorted({ex.sample_id for ex in read_examples(test_jsonl)})
    out: dict[str, dict[str, float]] = {}
    for name in ("full", "stage2+tlm"):
        entries = sorted((e for e in runs if e["name"] == name), key=lambda e: e["seed"])
        if entries:
            e = entries[0]
            out[f"{name}-seed{e['seed']}"] = visual_token_diagnostics(
                ablation / e["run_dir"] / "final", scenes_jsonl, scene_ids, priors
            )
    return out


def stage1_word_losses(
    ablation: Path, runs: list[dict[str, Any]], test_jsonl: Path, priors: Path
) -> dict[str, dict[str, float]]:
    """Stage 1 on the land-cover words of the test captions (first seed): the caption loss on those
    words alone and on every other caption token (:func:`sarvlm.demo.diagnostics.caption_word_loss`)
    before stage 1 (the base model), after the TLM-only stage 1 of ``full`` (with its priors, and with
    the same weights but no prior), and after the LoRA stage 1 of its no-TLM twin ``stage1+stage2``."""
    from sarvlm.demo.diagnostics import caption_word_loss

    first: dict[str, dict[str, Any]] = {}
    for e in sorted(runs, key=lambda e: e["seed"]):
        first.setdefault(e["name"], e)
    out: dict[str, dict[str, float]] = {}
    full, twin = first.get("full"), first.get("stage1+stage2")
    if full is not None and (ablation / full["run_dir"] / "stage1" / "result.json").is_file():
        run = ablation / full["run_dir"]
        out["base model (before stage 1)"] = caption_word_loss(run, None, test_jsonl, None)
        out["full: stage 1 (TLM only), with the prior"] = caption_word_loss(run, "stage1", test_jsonl, priors)
        out["full: stage 1 weights, prior withheld"] = caption_word_loss(run, "stage1", test_jsonl, None)
    if twin is not None and (ablation / twin["run_dir"] / "stage1" / "result.json").is_file():
        run = ablation / twin["run_dir"]
        out["stage1+stage2: stage 1 (LoRA, no TLM)"] = caption_word_loss(run, "stage1", test_jsonl, None)
    return out


def _word_loss_lines(losses: dict[str, dict[str, float]]) -> list[str]:
    if not losses:
        return []
    num = lambda d, k: f"{d[k]:.3f}" if k in d else "–"  # noqa: E731
    return [
        "### Stage 1 on the land-cover words of the captions",
        "",
        "Cross-entropy (nats per token) of the test scenes' captions, on the tokens of land-cover words "
        "(farmland, grassland, water, … and their synonyms) alone and on every other caption token, first seed. "
        "Stage 1 trains only on captions: if the TLM carries the prior into what the language model reads, the "
        "land-cover-word loss after the TLM-only stage 1 falls below the base model's and below the same weights "
        "with the prior withheld; the no-TLM twin's stage 1 (LoRA on the language model) is the comparison "
        "without a prior.",
        "",
        "| model | land-cover word tokens | loss on them | other tokens | loss on them |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {name} | {int(d.get('land-cover word tokens', 0))} | {num(d, 'land-cover words loss')} | "
            f"{int(d.get('other tokens', 0))} | {num(d, 'other tokens loss')} |"
            for name, d in losses.items()
        ],
        "",
    ]


def _diagnostic_lines(diag: dict[str, dict[str, float]]) -> list[str]:
    if not diag:
        return []
    pct = lambda d, k: f"{100 * d[k]:.1f} %" if k in d else "–"  # noqa: E731
    num = lambda d, k: f"{d[k]:.4f}" if k in d else "–"  # noqa: E731
    return [
        "## Diagnostics: where is the information lost?",
        "",
        "The merged visual tokens of the test scenes (what the LLM receives), labelled by the land cover at each "
        "token's centre, farmland and grassland only. Linear probe = cross-validated accuracy of a linear "
        "farmland-vs-grassland classifier on those tokens, without the prior (vision tower alone) and after the "
        "fusion; modulation = mean ‖after − before‖ / ‖before‖ per land cover. If the probe rises after the "
        "fusion but the answers do not, the information is lost in the language model; if it does not rise, "
        "in the fusion.",
        "",
        "| run | tokens | probe before fusion | probe after fusion | modulation farmland | modulation grassland |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {run} | {int(d.get('tokens', 0))} | {pct(d, 'probe before fusion')} | {pct(d, 'probe after fusion')} | "
            f"{num(d, 'modulation farmland')} | {num(d, 'modulation grassland')} |"
            for run, d in diag.items()
        ],
        "",
    ]


def _prior_probe(pre: Path, data: Path, priors: Path) -> dict[str, float]:
    """Is the information there? 1-nearest-neighbour land-cover classification of the test scenes'
    anchor nodes from the training scenes' nodes, once with the prior vectors and once with the SAR
    image around the node (mean and std of the preprocessed pixels in a 9×9 window). Labels are the
    land-cover mask at the node. Accuracy over all nodes and over farmland/grassland nodes."""
    import numpy as np

    from sarvlm.core.example import read_examples
    from sarvlm.core.record import read_samples
    from sarvlm.io.raster import read_raster
    from sarvlm.priors.cache import PriorCache

    split_of = {}
    for split in ("train", "test"):
        for ex in read_examples(data / f"{split}.jsonl"):
            split_of[ex.sample_id] = split
    cache = PriorCache(priors)
    feats: dict[str, dict[str, list]] = {s: {"prior": [], "sar": [], "label": []} for s in ("train", "test")}
    for rec in read_samples(pre / "samples.jsonl"):
        split = split_of.get(rec.id)
        grid = cache.get(rec.id) if split and rec.id in cache else None
        if grid is None or rec.landcover is None:
            continue
        mask = read_raster(pre / rec.landcover.mask)[0]
        image = read_raster(rec.image_path(pre))[0].astype(np.float64)
        names = {int(k): v for k, v in rec.landcover.classes.items()}
        for k in np.flatnonzero(grid.valid):
            col, row = int(np.clip(grid.x[k], 0, rec.width - 1)), int(np.clip(grid.y[k], 0, rec.height - 1))
            win = image[max(0, row - 4) : row + 5, max(0, col - 4) : col + 5]
            feats[split]["prior"].append(grid.vectors[k])
            feats[split]["sar"].append([win.mean(), win.std()])
            feats[split]["label"].append(names.get(int(mask[row, col]), "?"))
    if not feats["train"]["label"] or not feats["test"]["label"]:
        return {}
    out: dict[str, float] = {}
    test_labels = np.array(feats["test"]["label"])
    hidden = np.isin(test_labels, PRIOR_CLASSES)
    train_labels = np.array(feats["train"]["label"])
    for name in ("prior", "sar"):
        a, b = np.asarray(feats["train"][name], dtype=np.float64), np.asarray(feats["test"][name], dtype=np.float64)
        mu, sd = a.mean(axis=0), a.std(axis=0) + 1e-9  # standardise with training statistics
        a, b = (a - mu) / sd, (b - mu) / sd
        # squared distances as |b|² - 2 b·a + |a|²: no (test × train × dim) temporary
        nearest = np.argmin((a**2).sum(1)[None, :] - 2.0 * b @ a.T, axis=1)
        hit = train_labels[nearest] == test_labels
        out[f"{name} all"] = float(hit.mean())
        if hidden.any():
            out[f"{name} farmland/grassland"] = float(hit[hidden].mean())
    out["test nodes"] = int(len(test_labels))
    out["farmland/grassland nodes"] = int(hidden.sum())
    return out


def _loss_plot(ablation: Path, runs: list[dict[str, Any]], path: Path) -> None:
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    trained = [e for e in runs if not e.get("alias_of")]
    colors = plt.get_cmap("tab20")
    for ax, stage in zip(axes, ("stage1", "stage2"), strict=True):
        for i, entry in enumerate(trained):  # one colour per run, the same in both panels
            log = ablation / entry["run_dir"] / stage / "log.csv"
            if not log.exists():
                continue
            with open(log) as fh:
                rows = [r for r in csv.DictReader(fh) if r.get("loss")]
            ax.plot(
                [int(r["step"]) for r in rows],
                [float(r["loss"]) for r in rows],
                color=colors(i % 20),
                label=f"{entry['name']} s{entry['seed']}",
                lw=1,
            )
        ax.set_title(f"{stage} training loss" + (" (runs with a stage 1)" if stage == "stage1" else ""))
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bars_plot(table: dict[str, dict[str, list[float]]], columns: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(table)
    x = np.arange(len(columns))
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(columns)), 4.2))
    for i, name in enumerate(names):
        stats = [_mean_std(table[name][c]) if table[name].get(c) else (0.0, 0.0) for c in columns]
        ax.bar(
            x + i * width, [100 * m for m, _ in stats], width, yerr=[100 * s for _, s in stats], label=name, capsize=2
        )
    ax.set_xticks(x + width * (len(names) - 1) / 2, columns, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.set_title("per-task score by run (mean ± std over seeds)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _sample_plot(world: Path, data: Path, scored: Path, runs: list[dict[str, Any]], path: Path) -> None:
    """One test scene: SAR, its prior field (3 PCA channels) with the anchor nodes, and answers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sarvlm.core.example import read_examples, read_predictions
    from sarvlm.core.record import read_samples
    from sarvlm.io.raster import read_raster
    from sarvlm.priors import open_source
    from sarvlm.priors.sampling import sample_grid
    from sarvlm.priors.show import field_rgb, sar_display

    test = list(read_examples(scored / "test.jsonl"))
    sample_id = next((ex.sample_id for ex in test if ex.task == "landform_main"), test[0].sample_id)
    rec = next(r for r in read_samples(world / "samples.jsonl") if r.id == sample_id)
    source = open_source(f"aef-cog:{world / 'aef'}")
    grid = sample_grid(source, None, rec.year, 8, 8, rec.width, rec.height, rec.georef)
    field, _ = field_rgb(source, rec.georef, rec.width, rec.height, grid.year, "pca")
    sar = read_raster(rec.image_path(world), bands=1)[0]
    answers: dict[str, dict[str, str]] = defaultdict(dict)
    shown = {e["name"]: e for e in runs if not e.get("alias_of") and e["seed"] == runs[0]["seed"]}
    for name, entry in shown.items():
        pred_file = scored / "predictions" / f"{run_tag(entry)}.jsonl"
        if pred_file.exists():
            for p in read_predictions(pred_file):
                answers[p.id][name] = p.prediction
    lines = []
    for ex in test:
        if ex.sample_id != sample_id:
            continue
        q = ex.prompt_messages[-1].content.replace("<image>", "").strip().replace("\n", " ")
        lines.append(f"Q [{ex.task}]: {q[:90]}")
        lines.append(f"   truth: {str(ex.reference)[:70]}")
        for name, text in answers.get(ex.id, {}).items():
            lines.append(f"   {name}: {text[:70]}")
        if len(lines) > 34:
            break
    fig = plt.figure(figsize=(15, 5.5))
    ax1 = fig.add_subplot(1, 3, 1)
    ax1.imshow(sar_display(sar), cmap="gray", extent=(0, rec.width, rec.height, 0))
    ax1.set_title(f"{sample_id}: SAR (dB)")
    ax2 = fig.add_subplot(1, 3, 2)
    ax2.imshow(field, extent=(0, rec.width, rec.height, 0), interpolation="nearest")
    ax2.scatter(grid.x[grid.valid], grid.y[grid.valid], s=10, c="white", edgecolors="black", linewidths=0.4)
    ax2.set_xlim(0, rec.width)
    ax2.set_ylim(rec.height, 0)
    ax2.set_title("AlphaEarth-layout prior (3 PCA channels) + anchor nodes")
    for ax in (ax1, ax2):
        ax.set_xticks([])
        ax.set_yticks([])
    ax3 = fig.add_subplot(1, 3, 3)
    ax3.axis("off")
    ax3.text(0, 1, "\n".join(lines) or "(no test questions for this scene)", va="top", family="monospace", fontsize=6.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass
class RunScores:
    """Scores of every run, read back from the scored predictions (the report's first seam)."""

    order: list[str]  # run names, the no-model baseline first
    runs: list[dict[str, Any]]  # the ablation's run entries (runs.json)
    headline: dict[str, dict[str, list[float]]]  # run -> column title -> value per seed
    subsets: dict[str, dict[str, list[float]]]  # run -> prior-question subset -> value per seed
    per_run: list[dict[str, Any]]
    # (run, seed) -> example id -> land cover right? (prior-dependent land-cover questions)
    hits: dict[tuple[str, int], dict[str, bool]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [t for t, _, _ in HEADLINE if any(self.headline[n].get(t) for n in self.order)]

    @property
    def subset_columns(self) -> list[str]:
        return sorted({k for n in self.order for k in self.subsets[n]})


def collect_scores(ablation: Path, scored: Path) -> RunScores:
    """Headline metrics (from each run's ``metrics.json``) and prior-question subsets (re-scored
    from its predictions) of the baseline and every ablation run."""
    runs = json.loads((ablation / "runs.json").read_text())["runs"]
    order: list[str] = [MAJORITY, *dict.fromkeys(e["name"] for e in runs)]
    headline: dict[str, dict[str, list[float]]] = {n: defaultdict(list) for n in order}
    subsets: dict[str, dict[str, list[float]]] = {n: defaultdict(list) for n in order}
    per_run: list[dict[str, Any]] = []
    hits: dict[tuple[str, int], dict[str, bool]] = {}
    baseline = {
        "name": MAJORITY,
        "seed": 0,
        "fusion": "none",
        "sft1": False,
        "sft2": False,
        "report": MAJORITY,
        "predictions": MAJORITY,
    }
    for entry in [baseline, *runs]:
        report_tag = entry.get("report") or run_tag(entry, alias=True)
        pred_tag = entry.get("predictions") or run_tag(entry)
        metrics = json.loads((scored / "reports" / report_tag / "metrics.json").read_text())
        row = {
            "name": entry["name"],
            "seed": entry["seed"],
            "fusion": entry["fusion"],
            "sft1": entry["sft1"],
            "tlm": entry["fusion"] == "tlm",
        }
        for title, task, path in HEADLINE:
            v = _get(metrics.get("tasks", {}).get(task, {}), path)
            if v is not None:
                headline[entry["name"]][title].append(v)
                row[title] = v
        sub = _subset_scores(scored / "predictions" / f"{pred_tag}.jsonl", scored / "test.jsonl")
        for k, v in sub.items():
            if not k.endswith(" n"):
                subsets[entry["name"]][k].append(v)
        row["prior_subsets"] = sub
        per_run.append(row)
        if entry["name"] != MAJORITY:
            hits[(entry["name"], int(entry["seed"]))] = _prior_hits(
                scored / "predictions" / f"{pred_tag}.jsonl", scored / "test.jsonl"
            )
    return RunScores(order, runs, headline, subsets, per_run, hits)


@dataclass
class Verdicts:
    """Does each TLM run beat its no-TLM twin by more than the spread across seeds?"""

    lines: list[str]  # markdown rows for the prior-question subsets
    data: list[dict[str, Any]]
    helped: list[str]  # headline columns where a TLM run beats its twin
    not_helped: list[str]


def tlm_verdicts(scores: RunScores) -> Verdicts:
    columns, sub_cols = scores.columns, scores.subset_columns
    lines: list[str] = []
    data: list[dict[str, Any]] = []
    for with_tlm, without in TLM_PAIRS:
        if with_tlm not in scores.order or without not in scores.order:
            continue
        for col in sub_cols + columns:
            a = scores.subsets[with_tlm].get(col) or scores.headline[with_tlm].get(col)
            b = scores.subsets[without].get(col) or scores.headline[without].get(col)
            if not a or not b:
                continue
            (ma, sa), (mb, sb) = _mean_std(a), _mean_std(b)
            spread = math.sqrt(sa**2 + sb**2)
            diff = ma - mb
            known = len(a) > 1 and len(b) > 1
            beats = known and diff > spread
            data.append(
                {
                    "with": with_tlm,
                    "without": without,
                    "metric": col,
                    "diff": diff,
                    "spread": spread,
                    "beats": beats,
                    "seeds": len(a),
                }
            )
            if col in sub_cols:
                word = ("**yes**" if beats else "no") if known else "unknown (one seed: no spread)"
                lines.append(f"| {col} | {with_tlm} vs {without} | {100 * diff:+.1f} | {100 * spread:.1f} | {word} |")
    helped = sorted({v["metric"] for v in data if v["beats"] and v["metric"] in columns})
    return Verdicts(lines, data, helped, [c for c in columns if c not in helped])


def _table(order: list[str], rows_of: dict[str, dict[str, list[float]]], cols: list[str]) -> list[str]:
    lines = ["| run | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [f"| {n} | " + " | ".join(_fmt(rows_of[n].get(c)) for c in cols) + " |" for n in order]
    return lines


def _table9(scores: RunScores) -> list[str]:
    """FUSAR-GPT Table 9 layout: which stages and fusion each run has, and its counting accuracy."""
    lines = ["| Model | SFT1 | SFT2 | TLM | Count ACC |", "|---|:-:|:-:|:-:|---:|"]
    for name, label in (
        ("stage2-only", "BaseModel(+SFT2)"),
        ("stage1+stage2", "BaseModel(+SFT1+SFT2)"),
        ("stage2+tlm", "BaseModel(+SFT2+TLM)"),
        ("full", "FUSAR-GPT"),
    ):
        if name in scores.headline:
            e = next(x for x in scores.runs if x["name"] == name)
            mark = lambda b: "✓" if b else "✗"  # noqa: E731
            lines.append(
                f"| {label} | {mark(e['sft1'])} | {mark(e['sft2'])} | {mark(e['fusion'] == 'tlm')} | "
                f"{_fmt(scores.headline[name].get('Count Acc'))} |"
            )
    return lines


def _table6(scores: RunScores) -> list[str]:
    """FUSAR-GPT Table 6 layout: counting accuracy per fusion variant."""
    tlm = "fusion-tlm" if "fusion-tlm" in scores.headline else "full"  # the same run
    cols = [("Base", "stage1+stage2"), ("TLM", tlm), ("Sum", "fusion-sum"), ("Concat", "fusion-concat")]
    cols = [(t, n) for t, n in cols if n in scores.headline]
    missing = [t for t, n in (("Sum", "fusion-sum"), ("Concat", "fusion-concat")) if n not in scores.headline]
    note = (
        [
            f"({' and '.join(missing)} not trained in this preset: the timed presets train only the runs the decision "
            "rule pairs; `DemoConfig(runs=...)` from Python trains the full grid.)",
            "",
        ]
        if missing
        else []
    )
    return note + [
        "| Model | " + " | ".join(t for t, _ in cols) + " |",
        "|---|" + "---:|" * len(cols),
        "| Count accuracy | " + " | ".join(_fmt(scores.headline[n].get("Count Acc")) for _, n in cols) + " |",
    ]


def _report_markdown(
    cfg: DemoConfig,
    scores: RunScores,
    verdicts: Verdicts,
    probe: dict[str, float],
    *,
    decision: list[str],
    diagnostics: dict[str, dict[str, float]],
    word_losses: dict[str, dict[str, float]] | None = None,
    world: Path,
    data: Path,
    priors: Path,
    base: Path,
    ablation: Path,
    scored: Path,
    timings: dict[str, float],
) -> str:
    """The text of ``report.md``."""
    world_info = json.loads((world / "world.json").read_text())
    prior_summary = json.loads((priors / "summary.json").read_text())
    with open(scored / "test.jsonl", encoding="utf-8") as fh:
        n_test = sum(1 for _ in fh)
    per_run = scores.per_run
    md = [
        "# sarvlm demo report",
        "",
        f"Synthetic SAR world: {cfg.scenes} scenes of {cfg.size}×{cfg.size} px (seed {cfg.world_seed}), "
        f"refined-Lee 7×7 + log stretch + uint8; instruction data split 8:1:1 by scene; priors from the "
        f"AlphaEarth-layout COGs through the `aef-cog:` reader on {cfg.grid[0]}×{cfg.grid[1]} anchor grids "
        f"({prior_summary['nodes_valid']}/{prior_summary['nodes_valid'] + prior_summary['nodes_invalid']} nodes valid). "
        f"Model: `{cfg.model}` (random init, {cfg.tokenizer} tokenizer) pretrained on the optical twins for "
        f"{cfg.base_steps} steps, then the "
        f"`fusar-gpt` recipe per ablation run ({cfg.seeds} seed(s) each). Scored on {n_test} test examples "
        f"(first {cfg.test_per_task} per task). Numbers are as measured; nothing was tuned on the test split.",
        "",
        "Recipe overrides for the tiny model (structure unchanged: stage 1 trains only the fusion module, stage 2 "
        "LoRA r=8/α=32 on the LLM): " + ", ".join(f"`{k}={v}`" for k, v in cfg.recipe_overrides().items()),
        "",
        "## Summary (mean ± std over seeds, %)",
        "",
        f"`{MAJORITY}` is the no-model baseline: every question gets its task's most frequent training answer.",
        "",
        *_table(scores.order, scores.headline, scores.columns),
        "",
        "## Questions that need the prior",
        "",
        "The world hides some facts from SAR: farmland and grassland have identical backscatter statistics "
        "but orthogonal embeddings; ship-shaped clutter stands on land (see docs/synthetic-world.md). "
        "Accuracy on those questions"
        + (
            f" (test examples: {', '.join(f'{k[:-2]} n = {v}' for k, v in per_run[0]['prior_subsets'].items() if k.endswith(' n'))})"
            if per_run
            else ""
        )
        + ":",
        "",
        *_table(scores.order, scores.subsets, scores.subset_columns),
        "",
        "Does the TLM run beat the same run without it by more than the spread across seeds (√(std₁² + std₂²))?",
        "",
        "| question set | pair | Δ (points) | spread | TLM better? |",
        "|---|---|---:|---:|---|",
        *(verdicts.lines or ["| – | – | – | – | – |"]),
        "",
        f"Tasks where a TLM run beats its no-TLM twin by more than the spread: {', '.join(verdicts.helped) or 'none'}. "
        f"Tasks where it does not: {', '.join(verdicts.not_helped) or 'none'}.",
        "",
        "## Decision: does the TLM help? (rule fixed before the numbers, see docs/demo.md)",
        "",
        "Each TLM run against its no-TLM twin on the same farmland/grassland land-cover questions: "
        "Δ = mean over seeds of the per-question accuracy difference; 95 % interval from a paired bootstrap "
        "over seeds and questions. Gain if the interval lies above 0, loss if below, otherwise no detectable difference.",
        "",
        "| pair | seeds | questions | Δ (points) | 95 % interval | detectable Δ (80 % power) | verdict |",
        "|---|---:|---:|---:|---|---:|---|",
        *(decision or ["| – | – | – | – | – | – | – |"]),
        "",
        *_probe_lines(probe),
        *_diagnostic_lines(diagnostics),
        *_word_loss_lines(word_losses or {}),
        "## FUSAR-GPT Table 9 layout (stage ablation, counting)",
        "",
        *_table9(scores),
        "",
        "## FUSAR-GPT Table 6 layout (fusion variants, counting)",
        "",
        *_table6(scores),
        "",
        "## Plots",
        "",
        "![loss curves](loss_curves.png)",
        "",
        "![per-task score by run](per_task_by_run.png)",
        "",
        "![a test scene, its prior field and the answers](sample_scene.png)",
        "",
        "## Where everything is",
        "",
        f"- world: `{world.name}/` ({world_info.get('scenes', cfg.scenes)} scenes), preview `world/preview.png`",
        f"- instruction data: `{data.name}/` (manifest.json), priors: `{priors.name}/summary.json`",
        f"- base model: `{base.name}/final`, ablation runs: `{ablation.name}/runs.json`",
        f"- per-run evaluation reports (papers' tables): `{scored.name}/reports/<run>-seed<k>/report.md`; side by side: `{scored.name}/compare/compare.md`",
        "",
        "## Time per step (s, when the step was computed)",
        "",
        "| step | seconds |",
        "|---|---:|",
        *[f"| {k} | {v:.1f} |" for k, v in timings.items()],
        "",
    ]
    return "\n".join(md)


def write_demo_report(
    out: Path,
    cfg: DemoConfig,
    *,
    world: Path,
    pre: Path,
    data: Path,
    priors: Path,
    base: Path,
    ablation: Path,
    scored: Path,
    timings: dict[str, float],
) -> Path:
    """Write ``out/report.md``, ``out/metrics.json`` and the PNG plots; print the summary table.

    Seams: scores of every run (:func:`collect_scores`), the TLM verdicts (:func:`tlm_verdicts`),
    the nearest-neighbour information probe, the plots, the markdown (:func:`_report_markdown`).
    """
    scores = collect_scores(ablation, scored)
    verdicts = tlm_verdicts(scores)
    decision_lines, decision_data = decision_table(scores)
    probe = _prior_probe(pre, data, priors)
    diagnostics = token_diagnostics(
        ablation, scores.runs, data.parent / "scenes" / "sar.jsonl", data / "test.jsonl", priors
    )
    word_losses = stage1_word_losses(ablation, scores.runs, data / "test.jsonl", priors)
    _loss_plot(ablation, scores.runs, out / "loss_curves.png")
    _bars_plot(scores.headline, scores.columns, out / "per_task_by_run.png")
    _sample_plot(world, data, scored, scores.runs, out / "sample_scene.png")
    text = _report_markdown(
        cfg,
        scores,
        verdicts,
        probe,
        decision=decision_lines,
        diagnostics=diagnostics,
        word_losses=word_losses,
        world=world,
        data=data,
        priors=priors,
        base=base,
        ablation=ablation,
        scored=scored,
        timings=timings,
    )
    with atomic_open(out / "report.md") as fh:
        fh.write(text)
    metrics = {
        "config": cfg.to_dict(),
        "headline": {n: dict(scores.headline[n].items()) for n in scores.order},
        "prior_subsets": {n: dict(scores.subsets[n].items()) for n in scores.order},
        "tlm_verdicts": verdicts.data,
        "decision": decision_data,
        "diagnostics": diagnostics,
        "stage1_word_loss": word_losses,
        "prior_probe": probe,
        "runs": scores.per_run,
        "timings_s": timings,
    }
    with atomic_open(out / "metrics.json") as fh:
        json.dump(metrics, fh, indent=2, sort_keys=True)
    _print_summary(scores.order, scores.headline, scores.columns)
    return out / "report.md"


def _probe_lines(probe: dict[str, float]) -> list[str]:
    """The information check, as report lines (nothing when it could not run)."""
    if not probe:
        return []
    pct = lambda k: f"{100 * probe[k]:.1f} %" if k in probe else "–"  # noqa: E731
    return [
        "Is the information there? Land cover of the test scenes' anchor nodes, classified by their nearest "
        f"training node ({probe['test nodes']} test nodes, {probe['farmland/grassland nodes']} on farmland or grassland):",
        "",
        "| features at the node | all land covers | farmland vs grassland |",
        "|---|---:|---:|",
        f"| AlphaEarth-layout prior vector | {pct('prior all')} | {pct('prior farmland/grassland')} |",
        f"| SAR pixels (9×9 mean and std) | {pct('sar all')} | {pct('sar farmland/grassland')} |",
        "",
        "So the prior carries what SAR hides; whether a model learns to read it is what the rows above measure.",
        "",
    ]


def _print_summary(order: list[str], headline: dict[str, dict[str, list[float]]], columns: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="sarvlm demo: test-split scores (%), mean ± std over seeds")
    t.add_column("run")
    for c in columns:
        t.add_column(c, justify="right")
    for n in order:
        t.add_row(n, *[_fmt(headline[n].get(c)) for c in columns])
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs and CI: do not squeeze the table to 80 columns
    console.print(t)
