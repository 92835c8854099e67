"""Annotation prompt templates: versioned YAML data files in ``sarvlm/annotate/prompts/``, one per paper pipeline.

A template says which images it sends (``sar``, ``optical``), which facts it needs (``objects``,
``landcover``, ``captions``, ``optical``), which object categories it is about, what it produces
(``caption`` with a style, two ``captions``, or a ``dialogue``), the reasoning steps and the answer
fields. The JSON schema of the answer is built from ``reasoning`` and ``fields`` so that the schema,
the prompt text and the parser never disagree. ``version`` is part of the cache key: change the
wording, bump the version.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sarvlm.annotate.facts import Facts
from sarvlm.core.errors import InputError, NotFoundError

PROMPTS = ("hcot-target", "hcot-marine", "hcot-terrain", "geovl", "lunaros", "sarlang-transfer", "dialogue")
NEEDS = ("objects", "landcover", "captions", "optical")
ANNOTATE_SOURCE = "sarvlm-annotate"  # Caption.source prefix of what annotation writes


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt template (see the module docstring)."""

    id: str
    version: int
    paper: str
    description: str
    images: tuple[str, ...]
    needs: tuple[str, ...]
    output: dict[str, Any]
    reasoning: tuple[str, ...]
    fields: tuple[str, ...]
    system: str
    user: str
    categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    path: str = ""

    @property
    def key(self) -> str:
        """``id@version``, as stored with every annotation."""
        return f"{self.id}@v{self.version}"

    @property
    def text_only(self) -> bool:
        return not self.images

    def json_schema(self) -> dict[str, Any]:
        """The answer's JSON schema (strict: every key required, nothing else allowed)."""
        if self.output["kind"] == "dialogue":
            turn = {
                "type": "object",
                "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
                "required": ["question", "answer"],
                "additionalProperties": False,
            }
            return {
                "type": "object",
                "properties": {"turns": {"type": "array", "items": turn}},
                "required": ["turns"],
                "additionalProperties": False,
            }
        field_props: dict[str, Any] = {
            f: ({"type": "array", "items": {"type": "string"}} if f == "removed_colour_words" else {"type": "string"})
            for f in self.fields
        }
        if not self.reasoning:
            return {
                "type": "object",
                "properties": field_props,
                "required": list(self.fields),
                "additionalProperties": False,
            }
        return {
            "type": "object",
            "properties": {
                "reasoning": {
                    "type": "object",
                    "properties": {r: {"type": "string"} for r in self.reasoning},
                    "required": list(self.reasoning),
                    "additionalProperties": False,
                },
                "fields": {
                    "type": "object",
                    "properties": field_props,
                    "required": list(self.fields),
                    "additionalProperties": False,
                },
            },
            "required": ["reasoning", "fields"],
            "additionalProperties": False,
        }

    def missing_facts(self, facts: Facts) -> str | None:
        """What the record lacks for this prompt (None when it has everything)."""
        for need in self.needs:
            if need == "objects" and not self.relevant_objects(facts):
                what = "/".join(self.categories) if self.categories else "annotated"
                return f"no {what} objects" if not self.exclude_categories else "no ground-target objects"
            if need == "landcover" and not facts.landcover:
                return "no land cover (landcover mask or meta.landcover_fractions)"
            if need == "captions" and not source_captions(facts):
                return "no caption to start from"
            if need == "optical" and not facts.has_optical:
                return "no paired optical image"
        return None

    def relevant_objects(self, facts: Facts) -> list:
        """The object groups this prompt is about."""
        groups = facts.objects
        if self.categories:
            groups = [g for g in groups if g.category in self.categories]
        if self.exclude_categories:
            groups = [g for g in groups if g.category not in self.exclude_categories]
        return groups

    def scoped(self, facts: Facts) -> Facts:
        """The facts with only this prompt's objects (what the prompt shows and what is checked)."""
        return replace(facts, objects=self.relevant_objects(facts))

    def render_text(self, facts: Facts) -> tuple[str, str]:
        """(system, user) texts filled with the facts."""
        values = {
            "facts": self.scoped(facts).as_text(),
            "captions": "\n".join(f"- {c.text}" for c in source_captions(facts)) or "- (none)",
            "fields_list": ", ".join(self.fields),
            "reasoning_list": ", ".join(self.reasoning),
        }
        return self.system.strip(), self.user.format_map(values).strip()

    def facts_used(self, facts: Facts) -> dict[str, Any]:
        """The part of the facts this prompt uses (its digest is part of the cache key)."""
        d = self.scoped(facts).to_dict()
        if "captions" not in self.needs:
            d.pop("captions")
        else:
            d["captions"] = [c.text for c in source_captions(facts)]
        return d


def source_captions(facts: Facts) -> list:
    """Captions a transfer/dialogue prompt starts from: those not written by annotation itself."""
    return [c for c in facts.captions if not (c.source or "").startswith(ANNOTATE_SOURCE)]


def _load(path: Path | Any, where: str) -> PromptTemplate:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{where}: cannot read prompt template ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{where}: a prompt template must be a mapping")
    required = ("id", "version", "output", "fields", "system", "user")
    missing = [k for k in required if k not in data]
    if missing:
        raise InputError(f"{where}: prompt template lacks {', '.join(missing)}")
    needs = tuple(data.get("needs") or ())
    bad = [n for n in needs if n not in NEEDS]
    if bad:
        raise InputError(f"{where}: needs: unknown fact {bad[0]!r} (known: {', '.join(NEEDS)})")
    if data["output"].get("kind") not in ("caption", "captions", "dialogue"):
        raise InputError(f"{where}: output.kind must be caption, captions or dialogue")
    return PromptTemplate(
        id=str(data["id"]),
        version=int(data["version"]),
        paper=str(data.get("paper", "")),
        description=str(data.get("description", "")),
        images=tuple(data.get("images") or ()),
        needs=needs,
        output=dict(data["output"]),
        reasoning=tuple(data.get("reasoning") or ()),
        fields=tuple(data["fields"]),
        system=str(data["system"]),
        user=str(data["user"]),
        categories=tuple(data.get("categories") or ()),
        exclude_categories=tuple(data.get("exclude_categories") or ()),
        path=where,
    )


@functools.lru_cache(maxsize=32)
def load_template(name: str) -> PromptTemplate:
    """A shipped template by id (``hcot-target``, ...) or a YAML file path (a user's own template)."""
    if name.endswith((".yaml", ".yml")):
        p = Path(name)
        if not p.is_file():
            raise NotFoundError(f"{name}: no such prompt template file")
        return _load(p, str(p))
    if name not in PROMPTS:
        raise NotFoundError(f"--prompt {name!r}: unknown prompt (choose from {', '.join(PROMPTS)} or a .yaml file)")
    res = resources.files("sarvlm.annotate").joinpath("prompts", f"{name}.yaml")
    return _load(res, f"sarvlm/annotate/prompts/{name}.yaml")
