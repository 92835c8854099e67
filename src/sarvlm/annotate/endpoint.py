"""What answers an annotation request: the interface of the offline writer, the local LLM and OpenAI-compatible
endpoints (see :mod:`sarvlm.annotate.client`)."""

from __future__ import annotations

from typing import Any

from sarvlm.annotate.facts import Facts
from sarvlm.annotate.templates import PromptTemplate
from sarvlm.core.llm_client import ChatReply


class Endpoint:
    """Something that answers an annotation request with reply text."""

    kind = "endpoint"
    model = ""
    supports_images = False

    @property
    def params(self) -> dict[str, Any]:
        """Generation parameters that change the answer (part of the cache key)."""
        return {}

    @property
    def requests_made(self) -> int:
        return 0

    def answer(self, tpl: PromptTemplate, facts: Facts, messages: list[dict[str, Any]]) -> ChatReply:
        raise NotImplementedError

    def close(self) -> None:
        pass
