"""LunarOS-Mini style dialogues: a description expanded into a three-turn conversation
(paper 000, §II and Fig. 1: "each text description is randomly expanded into three question-answer
pairs to simulate human-machine interaction").

Sources, in order of preference:

1. Dialogues already on the sample (imported LLaVA/ShareGPT/ms-swift conversations): used as they are.
2. A FUSAR-GEOVL structured caption: three of its fields, each asked with its own question
   (e.g. Terrain -> "What kind of terrain does this area have?").
3. A free-text caption of at least three sentences (or ``;``-separated clauses): the first sentence
   answers an overview question; each later sentence is assigned a question by what it talks about
   (radar backscatter, location, or other details), and the three turns are chosen by the seeded RNG
   among the later sentences, in text order.

LunarOS-Mini used an LLM to write the questions; sarvlm's expansion is rule-based so that builds are
offline and reproducible (the LLM route is a preprocessing step that can write ``dialogues`` into the
samples, which are then used as in 1).

Answer: the list of assistant turns; ``params``: ``{"turns": n, "source": ...}``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from sarvlm.core.example import IMAGE_PLACEHOLDER
from sarvlm.tasks.base import Draft, SampleView, TaskContext, user_image_turn
from sarvlm.tasks.parsing import turns_answer
from sarvlm.tasks.scoring import score_dialogue
from sarvlm.tasks.spec import TaskSpec

TASKS = ("dialogue",)
TURNS = 3

FIELD_QUESTIONS = {
    "terrain": "What kind of terrain does this area have?",
    "functionality": "What is the main function of this area?",
    "distribution": "How are the main features distributed in the image?",
    "location": "Where are the main features located?",
    "layout": "How is the scene laid out?",
    "boundary": "What do the boundaries between different areas look like?",
    "buildings": "What can be said about the buildings?",
    "building": "What can be said about the buildings?",
    "roads": "Are there roads, and what do they look like?",
    "road": "Are there roads, and what do they look like?",
    "water": "Is there any water in the scene?",
    "region": "Where is this scene located?",
    "environment": "What is the surrounding environment like?",
}
OVERVIEW_QUESTION = "How can the main content of this image be summarized?"
_TOPIC_QUESTIONS = (
    (
        re.compile(r"\b(scatter\w*|backscatter\w*|bright\w*|dark\w*|echo\w*|return\w*|radar)\b", re.I),
        "What does the radar backscatter reveal in this scene?",
    ),
    (
        re.compile(
            r"\b(left|right|upper|lower|top|bottom|center|centre|central|north\w*|south\w*|east\w*|west\w*|"
            r"corner|edge|middle|side)\b",
            re.I,
        ),
        "Where are the main features located in the image?",
    ),
)
OTHER_QUESTIONS = (
    "What other details can be observed?",
    "What else stands out in this image?",
    "Can you describe any further features?",
)
_SENT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def sentences(text: str) -> list[str]:
    """Split a description into sentences; fall back to ``;`` clauses for long single sentences."""
    parts = [s.strip() for s in _SENT_RE.split(text.strip()) if s.strip()]
    if len(parts) < TURNS:
        clauses = [c.strip() for c in re.split(r";\s*", text.strip()) if c.strip()]
        if len(clauses) > len(parts):
            parts = [c if c.endswith((".", "!", "?")) else c + "." for c in clauses]
            parts = [p[0].upper() + p[1:] for p in parts]
    return parts


def _topic_question(sentence: str, rng: random.Random, used: set[str]) -> str:
    for pattern, question in _TOPIC_QUESTIONS:
        if question not in used and pattern.search(sentence):
            return question
    left = [q for q in OTHER_QUESTIONS if q not in used]
    return left[rng.randrange(len(left))] if left else OTHER_QUESTIONS[0]


def _draft(pairs: list[tuple[str, str]], source: str) -> Draft:
    messages: list[tuple[str, str]] = []
    for i, (q, a) in enumerate(pairs):
        messages.append(user_image_turn(q) if i == 0 else ("user", q))
        messages.append(("assistant", a))
    return Draft("dialogue", messages, [a for _, a in pairs], {"turns": len(pairs), "source": source})


def generate(task: str, view: SampleView, ctx: TaskContext, rng: random.Random) -> Iterator[Draft]:
    """Dialogue examples for one sample."""
    if task != "dialogue":
        raise ValueError(f"not a dialogue task: {task}")
    rec = view.record
    if rec.dialogues:
        for dlg in rec.dialogues:
            pairs, pending = [], None
            for turn in dlg.turns:
                if turn.role == "user":
                    pending = turn.content.replace(IMAGE_PLACEHOLDER, "").strip()
                elif turn.role == "assistant" and pending is not None:
                    pairs.append((pending, turn.content.strip()))
                    pending = None
            if pairs:
                yield _draft(pairs, "dialogue")
        return
    for cap in rec.captions:
        if cap.fields:
            usable = [(k, v.strip()) for k, v in cap.fields.items() if v.strip() and k.lower() in FIELD_QUESTIONS]
            if len(usable) >= TURNS:
                picked = sorted(rng.sample(range(len(usable)), TURNS))
                pairs = [(FIELD_QUESTIONS[usable[i][0].lower()], usable[i][1]) for i in picked]
                yield _draft(pairs, "structured_caption")
                return
    for cap in sorted(rec.captions, key=lambda c: -len(c.text)):  # the richest description
        sents = sentences(cap.text)
        if len(sents) < TURNS:
            continue
        rest = sents[1:]
        picked = sorted(rng.sample(range(len(rest)), TURNS - 1))
        pairs = [(OVERVIEW_QUESTION, sents[0])]
        used: set[str] = set()
        for i in picked:
            q = _topic_question(rest[i], rng, used)
            used.add(q)
            pairs.append((q, rest[i]))
        yield _draft(pairs, "caption")
        return


SPECS = (
    TaskSpec(
        needs="captions (expanded to 3-turn dialogues) or imported dialogues",
        name="dialogue",
        paper="LunarOS-Mini (paper 000): caption -> 3-turn dialogue",
        answer="list[str] (assistant turns)",
        generator=generate,
        parser=turns_answer,
        scorer=score_dialogue,
        metrics=("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider"),
        max_new_tokens=256,
        free_text=True,
    ),
)
