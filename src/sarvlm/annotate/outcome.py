"""What happened to one record in an annotation run (its status is one of :data:`sarvlm.annotate.report.STATUSES`)."""

from __future__ import annotations

from dataclasses import dataclass

from sarvlm.annotate.parse import ParsedReply
from sarvlm.annotate.validate import Validation
from sarvlm.core.record import SampleRecord


@dataclass
class Outcome:
    """What happened to one record."""

    record: SampleRecord
    status: str
    detail: str = ""
    cached: bool = False
    requested: bool = False
    validation: Validation | None = None
    parsed: ParsedReply | None = None
    reply: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    action: str | None = None  # keep / flag / drop for conflicts
