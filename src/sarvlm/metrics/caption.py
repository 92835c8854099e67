"""Caption metrics on pycocoevalcap's scale, computed with pycocoevalcap's own scorers.

``caption_scores`` tokenizes references and predictions the way pycocoevalcap does
(PTB tokenizer + punctuation removal; pure Python by default, Java selectable,
or none as in SARLANG-1M's ``Evaluate_caption.py``), then runs pycocoevalcap's
``Bleu(4)``, ``Rouge``, ``Cider`` (CIDEr-D) and optionally ``Meteor``/``Spice``.
Numbers are what pycocoevalcap returns (fractions: BLEU 0..1, CIDEr 0..10); the
report multiplies by 100 as the papers print them.

BLEU is corpus-level (closest reference length); CIDEr's IDF comes from the
references of the same call, so per-type breakdowns use ``per_sample`` of one run.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sarvlm.core.errors import SarvlmError

TOKENIZERS = ("python", "java", "none")


def _tokenize(refs: Mapping[str, Sequence[str]], preds: Mapping[str, str], tokenizer: str) -> tuple[dict, dict]:
    ids = list(refs)
    if tokenizer == "none":
        return {i: list(refs[i]) for i in ids}, {i: [preds[i]] for i in ids}
    # One call over references then predictions, like pycocoevalcap's COCOEvalCap (two calls).
    if tokenizer == "python":
        from sarvlm.metrics.ptb_tokenizer import tokenize
    elif tokenizer == "java":
        from sarvlm.metrics.ptb_tokenizer import JavaPTBTokenizer

        tokenize = JavaPTBTokenizer().tokenize
    else:
        raise SarvlmError(f"tokenizer: unknown {tokenizer!r} (expected one of {', '.join(TOKENIZERS)})")
    gts = tokenize({i: list(refs[i]) for i in ids})
    res = tokenize({i: [preds[i]] for i in ids})
    return gts, res


def _meteor_available() -> str | None:
    """None if pycocoevalcap's METEOR can run here, else the reason it cannot."""
    if shutil.which("java") is None:
        return "no java executable on PATH"
    import pycocoevalcap.meteor.meteor as m

    jar = Path(m.__file__).with_name("meteor-1.5.jar")
    if not jar.exists():
        return f"{jar} missing"
    return None


def _spice_available() -> str | None:
    if shutil.which("java") is None:
        return "no java executable on PATH"
    import pycocoevalcap.spice.spice as s

    lib = Path(s.__file__).parent / "lib"
    need = ["stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar"]
    missing = [n for n in need if not (lib / n).exists()]
    if missing:
        return f"SPICE needs Stanford CoreNLP jars in {lib} ({', '.join(missing)} missing; pycocoevalcap downloads them on first use, which needs the internet)"
    return None


def caption_scores(
    references: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    meteor: bool = False,
    spice: bool = False,
    tokenizer: str = "python",
) -> dict[str, Any]:
    """BLEU-1..4, ROUGE-L, CIDEr-D (+ METEOR, SPICE) of ``predictions`` against ``references``.

    Args:
        references: id -> list of reference captions (at least one each).
        predictions: id -> predicted caption; every reference id needs one (missing ones
            should be passed as ``""`` by the caller, which then scores 0 for them).
        meteor, spice: also run these Java scorers; when they cannot run, ``skipped``
            names the reason instead of failing.
        tokenizer: ``python`` (default, no JVM), ``java`` (pycocoevalcap's PTBTokenizer)
            or ``none`` (raw strings split on spaces, as SARLANG-1M's script).

    Returns:
        ``{"bleu_1".."bleu_4", "rouge_l", "cider", ["meteor", "spice"], "per_sample": {id: {...}},
        "skipped": {metric: reason}, "n": count, "tokenizer": name}``.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if not references:
        raise SarvlmError("caption_scores: no references given")
    for rid, refs in references.items():
        if not refs:
            raise SarvlmError(f"{rid}: references: empty list")
        if rid not in predictions:
            raise SarvlmError(f"{rid}: prediction: missing (pass '' to score it as empty)")
    gts, res = _tokenize(references, predictions, tokenizer)
    ids = list(gts)
    out: dict[str, Any] = {"n": len(ids), "tokenizer": tokenizer, "skipped": {}}
    per: dict[str, dict[str, float]] = {i: {} for i in ids}

    bleu, bleu_per = Bleu(4).compute_score(gts, res, verbose=0)
    for k in range(4):
        out[f"bleu_{k + 1}"] = float(bleu[k])
        for i, v in zip(ids, bleu_per[k]):
            per[i][f"bleu_{k + 1}"] = float(v)
    rouge, rouge_per = Rouge().compute_score(gts, res)
    out["rouge_l"] = float(rouge)
    for i, v in zip(ids, rouge_per):
        per[i]["rouge_l"] = float(v)
    cider, cider_per = Cider().compute_score(gts, res)
    out["cider"] = float(cider)
    for i, v in zip(ids, cider_per):
        per[i]["cider"] = float(v)

    if meteor:
        reason = _meteor_available()
        if reason:
            out["skipped"]["meteor"] = reason
        else:
            from pycocoevalcap.meteor.meteor import Meteor

            scorer = Meteor()
            m, m_per = scorer.compute_score(gts, res)
            del scorer  # its __del__ stops the JVM
            out["meteor"] = float(m)  # corpus-level, not the mean of per-sample scores
            for i, v in zip(ids, m_per):
                per[i]["meteor"] = float(v)
    if spice:
        reason = _spice_available()
        if reason:
            out["skipped"]["spice"] = reason
        else:
            from pycocoevalcap.spice.spice import Spice

            s, s_per = Spice().compute_score(gts, res)
            out["spice"] = float(s)
            for i, v in zip(ids, s_per):
                per[i]["spice"] = float(v["All"]["f"])
    out["per_sample"] = per
    return out


def per_type_means(
    per_sample: Mapping[str, Mapping[str, float]], types: Mapping[str, str]
) -> dict[str, dict[str, float]]:
    """Mean per-sample scores per type (e.g. SARLANG-1M's concise vs complex captions).

    The per-sample scores come from one full run, so CIDEr's IDF is that of the whole
    reference set. These are means of sentence-level scores: for BLEU they differ from
    a corpus-level BLEU of the subset, and the report says so.
    """
    groups: dict[str, list[str]] = {}
    for i in per_sample:
        groups.setdefault(types.get(i, "all"), []).append(i)
    out: dict[str, dict[str, float]] = {}
    for t, ids in sorted(groups.items()):
        keys = sorted(per_sample[ids[0]])
        out[t] = {k: sum(per_sample[i][k] for i in ids) / len(ids) for k in keys}
        out[t]["n"] = len(ids)
    return out
