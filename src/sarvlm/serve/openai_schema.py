"""Request and response shapes of the OpenAI chat-completions API, and its error shape.

Requests are validated with pydantic (unknown top-level keys the ``openai`` SDK may send, such as
``user`` or ``logprobs: false``, are ignored). ``extra_body`` keys of the SDK arrive at the top
level: sarvlm reads ``geo``, ``task`` and ``min_tokens`` there. Every error leaves the server as
``{"error": {"message", "type", "param", "code"}}`` with a 4xx/5xx status, never a traceback.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ApiError(Exception):
    """An error answered to the client in the OpenAI error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """``{"error": {...}}`` as the OpenAI API (and vLLM) return it."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class GeoSpec(BaseModel):
    """The ``geo`` extension: where and when the first (SAR) image was taken.

    ``bbox`` is the WGS84 footprint ``[W, S, E, N]``; ``year`` the AlphaEarth layer wanted.
    Both are optional: without a box a georeferenced GeoTIFF's own footprint is used; without a
    year the source's nearest year to the image's acquisition year (TIFF date tag) or, lacking
    one, the latest year the source covers there. ``prior: false`` disables the prior.
    """

    model_config = ConfigDict(extra="forbid")

    bbox: list[float] | None = None
    year: int | None = None
    prior: bool = True

    @field_validator("bbox")
    @classmethod
    def _four(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and len(v) != 4:
            raise ValueError(f"bbox needs 4 numbers [W, S, E, N], got {len(v)}")
        return v


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions`` body (the fields sarvlm honours; others are ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    min_tokens: int = Field(default=0, ge=0)  # vLLM's extra parameter: no end token before this many
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)  # what torch.manual_seed takes
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    geo: GeoSpec | None = None
    task: str | None = None  # a sarvlm task name: parse the answer for it (count, detect, ...)

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> list[str] | None:
        if v is None:
            return None
        stops = [v] if isinstance(v, str) else v
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must be non-empty")
        return stops


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_response(
    cid: str,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    extension: dict[str, Any],
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object with the ``sarvlm`` extension object."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(prompt_tokens, completion_tokens),
        "sarvlm": extension,
    }


def completion_chunk(
    cid: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    *,
    extension: dict[str, Any] | None = None,
    usage_counts: dict[str, int] | None = None,
    empty_choices: bool = False,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` of a stream (the last carries ``finish_reason`` and ``sarvlm``)."""
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if empty_choices
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if extension is not None:
        chunk["sarvlm"] = extension
    if usage_counts is not None:
        chunk["usage"] = usage_counts
    return chunk


def models_response(model_id: str, created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": model_id, "object": "model", "created": created, "owned_by": "sarvlm"}],
    }
