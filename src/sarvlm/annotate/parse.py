"""Reading a model's reply into the template's answer, strictly where possible and tolerantly otherwise.

Order of attempts:

1. the whole reply is JSON (what structured outputs return);
2. a fenced ```json block, or the first balanced ``{...}`` object in the text (chatty models);
3. ``Key: value`` lines (how FUSAR-KLIP Fig. 8 prints HCoT output), for templates with fields.

Keys are matched case-insensitively and ignoring ``_``/spaces/``s`` plurals (``Building`` ->
``Buildings``). Fields may also sit at the top level instead of under ``"fields"``. The result says
which fields are missing; a reply with none of the fields, or longer than ``max_chars``, is
unparsable. ``<think>...</think>`` blocks of reasoning models are dropped first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sarvlm.annotate.templates import PromptTemplate

DEFAULT_MAX_CHARS = 20000


@dataclass
class ParsedReply:
    """What was read from one reply: fields (name -> text), reasoning, dialogue turns, problems."""

    ok: bool
    fields: dict[str, Any] = field(default_factory=dict)
    reasoning: dict[str, str] = field(default_factory=dict)
    turns: list[dict[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    method: str = ""  # json | embedded-json | lines
    error: str | None = None


def _norm(key: str) -> str:
    k = re.sub(r"[\s_\-]+", "", str(key).lower())
    return k[:-1] if k.endswith("s") and len(k) > 3 else k


def _balanced_objects(text: str) -> list[str]:
    """Every top-level balanced ``{...}`` substring (string-aware), in order."""
    out, depth, start, in_str, esc = [], 0, -1, False, False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"' and depth > 0:
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                out.append(text[start : i + 1])
    return out


def _json_candidates(text: str) -> Iterator[tuple[str, Any]]:
    """JSON objects in the reply, the whole reply first (lazily: the common case costs one json.loads)."""
    try:
        obj = json.loads(text)
        if isinstance(obj, dict):
            yield "json", obj
    except ValueError:
        pass
    if "{" not in text:
        return
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, flags=re.S | re.I)
    blocks = ([fence.group(1)] if fence else []) + _balanced_objects(text)
    for blk in blocks:
        try:
            obj = json.loads(blk)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield "embedded-json", obj


def _as_text(v: Any) -> str | None:
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v):
        return "; ".join(str(x) for x in v)
    return None


def _pick(obj: dict[str, Any], names: tuple[str, ...], keep_lists: tuple[str, ...] = ()) -> dict[str, Any]:
    by_norm = {_norm(k): v for k, v in obj.items()}
    out: dict[str, Any] = {}
    for name in names:
        v = by_norm.get(_norm(name))
        if v is None:
            continue
        if name in keep_lists and isinstance(v, list):
            out[name] = [str(x) for x in v if isinstance(x, (str, int, float))]
            continue
        t = _as_text(v)
        if t:
            out[name] = t
    return out


def _from_object(obj: dict[str, Any], tpl: PromptTemplate) -> ParsedReply:
    if tpl.output["kind"] == "dialogue":
        turns_raw = next((v for k, v in obj.items() if _norm(k) in ("turn", "dialogue", "conversation")), None)
        turns = []
        for t in turns_raw if isinstance(turns_raw, list) else []:
            if isinstance(t, dict):
                q = _pick(t, ("question",)).get("question")
                a = _pick(t, ("answer",)).get("answer")
                if q and a:
                    turns.append({"question": q, "answer": a})
        return ParsedReply(ok=bool(turns), turns=turns, missing=[] if turns else ["turns"])
    fields_obj = next((v for k, v in obj.items() if _norm(k) == "field" and isinstance(v, dict)), None)
    fields = _pick(fields_obj if fields_obj is not None else obj, tpl.fields, keep_lists=("removed_colour_words",))
    if fields_obj is not None:  # a field misplaced at the top level still counts
        for k, v in _pick(obj, tpl.fields).items():
            fields.setdefault(k, v)
    reasoning_obj = next((v for k, v in obj.items() if _norm(k) == "reasoning" and isinstance(v, dict)), {})
    reasoning = _pick(reasoning_obj, tpl.reasoning) if tpl.reasoning else {}
    required = [f for f in tpl.fields if f != "removed_colour_words"]
    missing = [f for f in required if f not in fields]
    return ParsedReply(ok=len(missing) < len(required), fields=fields, reasoning=reasoning, missing=missing)


def _from_lines(text: str, tpl: PromptTemplate) -> ParsedReply:
    wanted = {_norm(f): f for f in (*tpl.fields, *tpl.reasoning)}
    got: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^\s*(?:[-*#\d.)\s]*)\**([A-Za-z_ ]{2,40}?)\**\s*[:：]\s*(.+?)\s*$", line)
        if m and _norm(m.group(1)) in wanted:
            got.setdefault(wanted[_norm(m.group(1))], m.group(2).strip().strip('",'))
    fields = {k: v for k, v in got.items() if k in tpl.fields}
    reasoning = {k: v for k, v in got.items() if k in tpl.reasoning}
    required = [f for f in tpl.fields if f != "removed_colour_words"]
    missing = [f for f in required if f not in fields]
    return ParsedReply(ok=len(missing) < len(required), fields=fields, reasoning=reasoning, missing=missing)


def parse_reply(text: str, tpl: PromptTemplate, max_chars: int = DEFAULT_MAX_CHARS) -> ParsedReply:
    """Read ``text`` as an answer to ``tpl`` (see the module docstring)."""
    if len(text) > max_chars:
        return ParsedReply(ok=False, error=f"reply of {len(text)} characters exceeds the limit of {max_chars}")
    clean = re.sub(r"<think>.*?</think>", " ", text, flags=re.S).strip()
    if not clean:
        return ParsedReply(ok=False, error="empty reply")
    best: ParsedReply | None = None
    for method, obj in _json_candidates(clean):
        parsed = _from_object(obj, tpl)
        parsed.method = method
        if parsed.ok and not parsed.missing:
            return parsed
        if parsed.ok and (best is None or len(parsed.missing) < len(best.missing)):
            best = parsed
    if best is not None:
        return best
    if tpl.output["kind"] != "dialogue":
        parsed = _from_lines(clean, tpl)
        if parsed.ok:
            parsed.method = "lines"
            return parsed
    return ParsedReply(ok=False, error="no answer fields found (not JSON, no 'Field: value' lines)")
