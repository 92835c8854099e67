"""Caption metrics equal pycocoevalcap's (Java PTB tokenizer + its scorers) on a corpus of tokenizer edge cases."""

from __future__ import annotations

import random
import shutil

import pytest

from sarvlm.metrics.caption import caption_scores
from sarvlm.metrics.ptb_tokenizer import tokenize, tokenize_caption

EDGE_CASES = [
    "The harbour isn't busy, e.g. it's 50% empty (approx.) -- unlike the U.S. one.",
    "A ship & a plane: \"big\" 'small' ... well-known and/or 3/4 1,000 3.5 $5 £10 a*b {x} [y]",
    "Don't can't won't I'm we've they'd she'll o'clock rock'n'roll Mr. Smith Dr. No etc. vs.",
    "Cannot gonna wanna gotta lemme x.y.z a.m. p.m. Jan. 5th 10:30 2024-01-05",
    "“Curly quotes” and ‘single’ ones – en dash — em dash … ellipsis",
    "ships' owners' the '90s 'em y'all dogs' 'tis nothin' can't. don't! isn't?",
    "No. 5 berth; no. of ships: 12. The No. Inc. Co. St. Ft.",
    "30°C 5km² 10m/s 12:30pm 3×3 1.5m ½ ¼ US$5 €5 ¢",
    "hello... hi.. what?! --- - ---- (left) [top] {mid} <b> :) ;-) <3",
    "Two oil tanks (storage tanks) near the port's north-east corner.",
    "A. The scene shows I. an airport",
    "e.g.\tvarious  spaces   and tabs",
    "",
    "   ",
    "UPPER CASE CAPTION WITH IT'S AND ISN'T",
    "mixed-up   hyphen-ated self-driving 10-m-wide 100-km² L-shaped",
    "http://example.com/a.b www.example.org x@y.com #tag @user",
    "A. I. Go to the U.S. The end.",
    "x I.",
    "The",
    "He said: 'it's fine'.",
]


def _realistic(seed: int, n: int) -> list[str]:
    r = random.Random(seed)
    words = (
        "the a an of in on at with and several many two 12 5 3.5 1,000 ship ships plane aircraft harbor harbour "
        "port oil tank tanks bridge runway water river urban buildings farmland forest dark bright SAR image "
        "scene left right top bottom it's isn't don't ship's ships' U.S. e.g. i.e. etc. vs. Mr. No. approx. "
        "well-known L-shaped north-east 10-m 50% $5 km² 30° and/or 1/2 3x3 It The A I cannot gonna o'clock"
    ).split()
    pre = ["", "", "", "", "(", '"', "'", "[", "“"]
    post = ["", "", "", "", "", ",", ".", ";", ":", "!", "?", ")", '"', "'", "]", "”", "...", "%", "--"]
    out = []
    for _ in range(n):
        s = " ".join(r.choice(pre) + r.choice(words) + r.choice(post) for _ in range(r.randint(3, 20)))
        out.append(s[0].upper() + s[1:] if r.random() < 0.4 else s)
    return out


@pytest.fixture(scope="module")
def corpus() -> tuple[dict[str, list[str]], dict[str, str]]:
    lines = EDGE_CASES + _realistic(0, 400)
    refs: dict[str, list[str]] = {}
    preds: dict[str, str] = {}
    r = random.Random(1)
    for i in range(0, len(lines) - 3, 4):
        refs[f"img{i}"] = lines[i : i + 3]
        preds[f"img{i}"] = lines[i + 3] if r.random() < 0.7 else lines[i]
    return refs, preds


@pytest.fixture(scope="module")
def java_tokenized(corpus):
    """One pycocoevalcap Java tokenizer run per side (a JVM start each)."""
    if shutil.which("java") is None:
        pytest.skip("java not installed")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    refs, preds = corpus
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": preds[k]}] for k in refs})
    return gts, res


def test_python_tokenizer_equals_java_on_edge_cases(corpus, java_tokenized):
    refs, preds = corpus
    gts, res = java_tokenized
    mine_g = tokenize(refs)
    mine_r = tokenize({k: [preds[k]] for k in refs})
    mismatches = [(c, a, b) for k in refs for c, a, b in zip(refs[k], gts[k], mine_g[k]) if a != b]
    mismatches += [(preds[k], res[k][0], mine_r[k][0]) for k in refs if res[k] != mine_r[k]]
    assert not mismatches, mismatches[:5]


def test_caption_scores_equal_pycocoevalcap(corpus, java_tokenized):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    refs, preds = corpus
    gts, res = java_tokenized
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, cider_per = Cider().compute_score(gts, res)
    mine = caption_scores(refs, preds)
    for k in range(4):
        assert mine[f"bleu_{k + 1}"] == bleu[k]
    assert mine["rouge_l"] == rouge and mine["cider"] == cider
    assert [mine["per_sample"][k]["cider"] for k in refs] == list(cider_per)
    assert 0 < mine["bleu_4"] < 1 and mine["cider"] > 0  # a corpus that actually discriminates


def test_java_tokenizer_selectable(corpus):
    if shutil.which("java") is None:
        pytest.skip("java not installed")
    refs, preds = corpus
    small_r = dict(list(refs.items())[:5])
    small_p = {k: preds[k] for k in small_r}
    assert caption_scores(small_r, small_p, tokenizer="java")["cider"] == caption_scores(small_r, small_p)["cider"]


def test_tokenizer_facts():
    assert (
        tokenize_caption("It isn't (really) 50% U.S. e.g. done.") == "it is n't -lrb- really -rrb- 50 % u.s. e.g. done"
    )
    assert tokenize_caption("No. 5") == "no. 5" and tokenize_caption("no.") == "no"


def test_identical_caption_scores_perfect_bleu_and_missing_rules():
    refs = {"a": ["a ship in the harbor"], "b": ["two planes on a runway"], "c": ["an oil tank farm"]}
    s = caption_scores(refs, {"a": "a ship in the harbor", "b": "two planes on a runway", "c": "an oil tank farm"})
    assert s["bleu_1"] == pytest.approx(1.0) and s["rouge_l"] == pytest.approx(1.0)
    low = caption_scores(refs, {"a": "", "b": "two planes on a runway", "c": "an oil tank farm"})
    assert low["cider"] < s["cider"] and low["per_sample"]["a"]["cider"] == 0
    from sarvlm.core.errors import SarvlmError

    with pytest.raises(SarvlmError, match="c: prediction: missing"):
        caption_scores(refs, {"a": "x", "b": "y"})


def test_meteor_reported_as_skipped_without_java(monkeypatch):
    import sarvlm.metrics.caption as cap

    monkeypatch.setattr(cap.shutil, "which", lambda name: None)
    s = caption_scores({"a": ["a ship"]}, {"a": "a ship"}, meteor=True, spice=True)
    assert "meteor" not in s and "java" in s["skipped"]["meteor"] and "java" in s["skipped"]["spice"]
