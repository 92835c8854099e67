"""Instruction examples (what the builder writes, training reads and evaluation scores)
and predictions (what a model answered).

An example is one task instance *derived from* a :class:`~sarvlm.core.record.SampleRecord`
(``sample_id`` points back to it); it is not a second sample type. The JSONL layout
is documented in docs/dataset-format.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sarvlm.core.jsonl import read_jsonl, write_jsonl
from sarvlm.core.record import GeoRef

IMAGE_PLACEHOLDER = "<image>"


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str  # image positions are marked with IMAGE_PLACEHOLDER


class InstructionExample(BaseModel):
    """One training/evaluation example in sarvlm's export format."""

    model_config = ConfigDict(extra="forbid")

    id: str
    sample_id: str
    task: str
    messages: list[Message]
    images: list[str]  # relative to the JSONL file; order matches the <image> placeholders
    answer: Any = None  # structured answer (int for count, sorted list[int] for grid, ...)
    params: dict[str, Any] = Field(default_factory=dict)  # what the template asked about
    coords: str | None = None  # box convention used in the text (qwen2.5, qwen3, norm, pixel, ...)
    width: int | None = None  # original image size (for box conversions)
    height: int | None = None
    georef: GeoRef | None = None
    year: int | None = None
    split: str | None = None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), ensure_ascii=False)

    @property
    def prompt_messages(self) -> list[Message]:
        """The messages up to (not including) the final assistant turn: what the model is asked."""
        msgs = list(self.messages)
        while msgs and msgs[-1].role == "assistant":
            msgs.pop()
        return msgs

    @property
    def reference(self) -> str | None:
        """The text of the final assistant turn (the reference answer)."""
        for m in reversed(self.messages):
            if m.role == "assistant":
                return m.content
        return None


class Prediction(BaseModel):
    """One model answer for one example id."""

    model_config = ConfigDict(extra="allow")

    id: str
    task: str | None = None
    prediction: str
    parsed: Any = None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False)


def read_examples(path: str | Path) -> Iterator[InstructionExample]:
    """Stream instruction examples; errors name the file, line, record id and field."""
    return read_jsonl(path, InstructionExample)


def read_predictions(path: str | Path) -> Iterator[Prediction]:
    return read_jsonl(path, Prediction)


__all__ = [
    "IMAGE_PLACEHOLDER",
    "InstructionExample",
    "Message",
    "Prediction",
    "read_examples",
    "read_predictions",
    "write_jsonl",
]
