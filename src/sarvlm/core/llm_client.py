"""One chat-completions client for every OpenAI-compatible endpoint sarvlm talks to.

Used by the LLM judges (``sarvlm.eval.judges``) and LLM-assisted annotation (``sarvlm.annotate``).
It goes through the ``openai`` SDK (OpenAI, vLLM, SGLang, llama.cpp server, Ollama, ``sarvlm serve``)
and adds what both need:

- retries with exponential back-off on connection errors, timeouts, 429 and 5xx (the SDK's own
  retries are switched off so every attempt is counted); a ``Retry-After`` header is honoured up to
  :data:`MAX_RETRY_AFTER` seconds;
- a concurrency limit (a semaphore around each request, so one client can be shared by threads);
- a request budget (``max_requests``: requests actually sent, retries included);
- token accounting from the reply's ``usage``.

Errors are :class:`LLMRequestError` with a ``kind`` naming what went wrong, so callers decide what is
fatal for a run (a wrong key) and what only fails one record (a reply that never came).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from sarvlm.core.errors import SarvlmError

MAX_RETRY_AFTER = 30.0
# Kinds of failure. Retryable ones are retried with back-off; the others are not.
RETRYABLE = frozenset({"connection", "timeout", "rate_limit", "server"})
KINDS = ("auth", "not_found", "bad_request", "rate_limit", "server", "timeout", "connection", "invalid_reply", "budget")


class LLMRequestError(SarvlmError):
    """A chat request that did not produce a reply; ``kind`` is one of :data:`KINDS`."""

    def __init__(self, message: str, kind: str, status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.attempts = attempts


class BudgetExhausted(LLMRequestError):
    """The request budget (``max_requests``) is spent; nothing was sent."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request budget of {limit} spent", kind="budget")


@dataclass(frozen=True, slots=True)
class ChatReply:
    """One completion: the text, why it stopped, its token usage and how it went."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    attempts: int
    seconds: float


class ChatClient:
    """Chat completions from ``model`` at ``base_url`` with retries, a concurrency limit and a budget.

    Thread-safe: share one instance between worker threads; at most ``concurrency`` requests are
    in flight at once. Counters (``requests_made``, ``prompt_tokens``, ``completion_tokens``) cover
    every request this instance sent.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str = "unused",
        concurrency: int = 4,
        max_retries: int = 4,
        backoff: float = 1.0,
        timeout: float = 60.0,
        max_requests: int | None = None,
        name: str | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.api_key = api_key or "unused"
        self.concurrency = max(1, int(concurrency))
        self.max_retries = max(0, int(max_retries))
        self.backoff = float(backoff)
        self.timeout = float(timeout)
        self.max_requests = None if max_requests is None else max(0, int(max_requests))
        self.name = name or model
        self.requests_made = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._client: Any = None

    def _sdk(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    from openai import OpenAI
                except ImportError:  # pragma: no cover - openai is a core dependency
                    raise SarvlmError("LLM endpoints need the 'openai' package (pip install openai)") from None
                # Retries are ours (counted, with back-off); the SDK's are switched off. Connection
                # pool as large as the concurrency, so requests do not queue inside httpx.
                import httpx

                http = httpx.Client(
                    timeout=self.timeout,
                    limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
                )
                self._client = OpenAI(
                    base_url=self.base_url,
                    api_key=self.api_key,
                    max_retries=0,
                    timeout=self.timeout,
                    http_client=http,
                )
            return self._client

    def close(self) -> None:
        """Close the HTTP connections (the client can still be used; it reconnects)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _take_budget(self) -> None:
        with self._lock:
            if self.max_requests is not None and self.requests_made >= self.max_requests:
                raise BudgetExhausted(self.max_requests)
            self.requests_made += 1

    def _classify(self, exc: Exception) -> tuple[str, int | None, float | None, str]:
        """(kind, HTTP status, Retry-After seconds, message) of an SDK exception."""
        import openai

        if isinstance(exc, openai.APITimeoutError):  # subclass of APIConnectionError: test first
            return "timeout", None, None, f"no reply within {self.timeout:g} s"
        if isinstance(exc, openai.APIConnectionError):
            return "connection", None, None, f"cannot connect ({exc.__cause__ or exc})"
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            retry_after = None
            try:
                retry_after = float(exc.response.headers.get("retry-after", ""))
            except (TypeError, ValueError):
                pass
            msg = f"HTTP {code} ({exc.message})"
            if code == 401 or code == 403:
                return "auth", code, None, msg
            if code == 404:
                return "not_found", code, None, msg
            if code == 429:
                return "rate_limit", code, retry_after, msg
            if code >= 500:
                return "server", code, retry_after, msg
            return "bad_request", code, None, msg
        # A 200 whose body the SDK could not read (not JSON, not UTF-8, wrong shape).
        return "invalid_reply", None, None, f"unreadable reply ({type(exc).__name__}: {str(exc)[:200]})"

    def chat(self, messages: list[dict[str, Any]], **params: Any) -> ChatReply:
        """Send one chat request (retrying transient failures); raise :class:`LLMRequestError` otherwise.

        ``params`` go to ``chat.completions.create`` as they are (``temperature``, ``max_tokens``,
        ``response_format``, ``extra_body``, ...).
        """
        client = self._sdk()
        start = time.perf_counter()
        kind, status, message = "connection", None, ""
        for attempt in range(self.max_retries + 1):
            self._take_budget()
            with self._slots:
                try:
                    resp = client.chat.completions.create(model=self.model, messages=messages, **params)
                    choice = resp.choices[0] if resp.choices else None
                    if choice is None or choice.message is None:
                        raise ValueError("the reply has no choices")
                    text = choice.message.content or ""
                    if not isinstance(text, str):
                        raise ValueError("the reply's content is not text")
                except Exception as exc:  # noqa: BLE001 - classified below; anything else is a bad reply
                    kind, status, retry_after, message = self._classify(exc)
                else:
                    usage = getattr(resp, "usage", None)
                    pt = int(getattr(usage, "prompt_tokens", 0) or 0)
                    ct = int(getattr(usage, "completion_tokens", 0) or 0)
                    with self._lock:
                        self.prompt_tokens += pt
                        self.completion_tokens += ct
                    return ChatReply(text, choice.finish_reason, pt, ct, attempt + 1, time.perf_counter() - start)
            if kind not in RETRYABLE or attempt == self.max_retries:
                break
            delay = self.backoff * (2**attempt)
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
            time.sleep(delay)
        tries = attempt + 1
        suffix = f" after {tries} attempts" if kind in RETRYABLE else ""
        raise LLMRequestError(
            f"{self.name} at {self.base_url}: {message}{suffix}", kind=kind, status=status, attempts=tries
        )
