"""Where annotation answers come from: an OpenAI-compatible endpoint, the offline writer, or a local LLM.

:class:`OpenAIEndpoint` sends each request through the shared
:class:`sarvlm.core.llm_client.ChatClient` (``openai`` SDK; retries with back-off on timeouts, 429
and 5xx; concurrency limit; request budget; token counts) at temperature 0 and asks for structured
output: ``--response-format json_schema`` (strict schema, OpenAI/vLLM/SGLang), ``json_object`` (JSON
mode, e.g. Ollama, llama.cpp server), ``none`` (the tolerant parser reads the reply), or ``auto``
(json_schema, falling back to none for the rest of the run when the server rejects it with a 4xx).
Cost is counted per run from configurable prices per million prompt / completion tokens.

:class:`OfflineEndpoint` (``--endpoint local``) answers from the facts (see
:mod:`sarvlm.annotate.offline_writer`); :mod:`sarvlm.annotate.local_llm` (``--endpoint local-llm``)
runs SmolLM2-135M-Instruct in-process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from sarvlm.annotate.endpoint import Endpoint
from sarvlm.annotate.facts import Facts
from sarvlm.annotate.offline_writer import MODEL_NAME, offline_reply
from sarvlm.annotate.templates import PromptTemplate
from sarvlm.core.errors import InputError
from sarvlm.core.llm_client import ChatClient, ChatReply, LLMRequestError

RESPONSE_FORMATS = ("auto", "json_schema", "json_object", "none")


@dataclass(frozen=True)
class Prices:
    """Prices in the account's currency per million prompt (input) and completion (output) tokens."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6


class OfflineEndpoint(Endpoint):
    """``--endpoint local``: the deterministic annotation-grounded writer (no network, no model)."""

    kind = "local"
    model = MODEL_NAME

    def answer(self, tpl: PromptTemplate, facts: Facts, messages: list[dict[str, Any]]) -> ChatReply:
        start = time.perf_counter()
        text = offline_reply(tpl, facts)
        return ChatReply(text, "stop", 0, 0, 1, time.perf_counter() - start)


class OpenAIEndpoint(Endpoint):
    """Any OpenAI-compatible chat-completions server (see the module docstring)."""

    kind = "openai"
    supports_images = True

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "unused",
        concurrency: int = 4,
        max_requests: int | None = None,
        max_retries: int = 4,
        backoff: float = 1.0,
        timeout: float = 120.0,
        max_tokens: int = 1024,
        response_format: str = "auto",
        prices: Prices | None = None,
    ) -> None:
        if response_format not in RESPONSE_FORMATS:
            raise InputError(f"--response-format {response_format!r}: choose from {', '.join(RESPONSE_FORMATS)}")
        self.base_url = base_url
        self.model = model
        self.max_tokens = int(max_tokens)
        self.response_format = response_format
        self.prices = prices or Prices()
        self.client = ChatClient(
            model,
            base_url,
            api_key,
            concurrency=concurrency,
            max_retries=max_retries,
            backoff=backoff,
            timeout=timeout,
            max_requests=max_requests,
            name=f"model {model}",
        )
        self._schema_rejected = False
        self._lock = threading.Lock()

    @property
    def params(self) -> dict[str, Any]:
        return {"temperature": 0, "max_tokens": self.max_tokens}

    @property
    def requests_made(self) -> int:
        return self.client.requests_made

    def _format(self, tpl: PromptTemplate) -> dict[str, Any] | None:
        mode = self.response_format
        if mode == "auto":
            mode = "none" if self._schema_rejected else "json_schema"
        if mode == "json_schema":
            name = tpl.id.replace("-", "_")
            return {"type": "json_schema", "json_schema": {"name": name, "schema": tpl.json_schema(), "strict": True}}
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    def answer(self, tpl: PromptTemplate, facts: Facts, messages: list[dict[str, Any]]) -> ChatReply:
        fmt = self._format(tpl)
        params = dict(self.params)
        if fmt is not None:
            params["response_format"] = fmt
        try:
            return self.client.chat(messages, **params)
        except LLMRequestError as exc:
            # A server without structured outputs answers 400/422: drop the schema for the rest of the run.
            if exc.kind == "bad_request" and fmt is not None and self.response_format == "auto":
                with self._lock:
                    self._schema_rejected = True
                return self.client.chat(messages, **self.params)
            raise

    def close(self) -> None:
        self.client.close()


def make_endpoint(
    endpoint: str | None,
    model: str | None,
    api_key: str | None = None,
    **kwargs: Any,
) -> Endpoint:
    """``local`` (default), ``local-llm``, or an http(s) URL of an OpenAI-compatible server."""
    if endpoint in (None, "", "local"):
        return OfflineEndpoint()
    if endpoint == "local-llm":
        from sarvlm.annotate.local_llm import LocalLLMEndpoint

        return LocalLLMEndpoint(max_tokens=kwargs.get("max_tokens", 512), max_requests=kwargs.get("max_requests"))
    if not endpoint.startswith(("http://", "https://")):
        raise InputError(f"--endpoint {endpoint!r}: expected local, local-llm or an http(s):// URL")
    if not model:
        raise InputError("--model is required with an endpoint URL (the model name the server serves)")
    allowed = ("concurrency", "max_requests", "max_retries", "backoff", "timeout", "max_tokens", "response_format")
    return OpenAIEndpoint(
        endpoint,
        model,
        api_key or "unused",
        prices=kwargs.get("prices"),
        **{k: kwargs[k] for k in allowed if k in kwargs},
    )
