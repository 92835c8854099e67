"""Request limits of the server and the ASGI middleware that enforces the body size while reading.

A ``Content-Length`` above the limit is refused before the body is read; a chunked upload
(no ``Content-Length``) is counted chunk by chunk and refused as soon as it passes the limit,
so neither kind is ever held in memory beyond ``max_body_bytes``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sarvlm.serve.openai_schema import ApiError


@dataclass(frozen=True)
class Limits:
    """What one request may ask for. Every refusal is a 4xx in the OpenAI error shape."""

    max_body_bytes: int = 48 * 1024 * 1024  # whole JSON body (base64 images inflate by 4/3)
    max_image_bytes: int = 32 * 1024 * 1024  # one decoded image file
    max_images: int = 4  # images per request (SAR + optical partner; older turns count too)
    max_pixels: int = 8192 * 8192  # width × height of one image, checked before decoding
    max_tokens: int = 2048  # max_tokens a request may ask for
    default_max_tokens: int = 256  # when the request gives none (and no task budget applies)
    max_prompt_tokens: int = 32768  # prompt tokens after image expansion
    max_messages: int = 128
    max_text_chars: int = 200_000  # all text parts together

    def check_max_tokens(self, requested: int | None) -> None:
        if requested is not None and requested > self.max_tokens:
            raise ApiError(
                400,
                f"max_tokens {requested} exceeds this server's limit of {self.max_tokens}",
                param="max_tokens",
                code="max_tokens_exceeded",
            )


class BodyTooLarge(ApiError):
    def __init__(self, limit: int, declared: int | None = None) -> None:
        what = f"declared {declared} bytes" if declared is not None else "body"
        super().__init__(
            413,
            f"request {what} exceeds the limit of {limit} bytes",
            type="invalid_request_error",
            code="body_too_large",
        )


class BodyLimitMiddleware:
    """Pure ASGI middleware: refuse HTTP bodies above ``max_bytes`` (413), chunked ones included."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_error(send, ApiError(400, "invalid Content-Length header", code="bad_request"))
                    return
        if declared is not None and declared > self.max_bytes:
            await _send_error(send, BodyTooLarge(self.max_bytes, declared))
            return
        received = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if not started:
                await _send_error(send, exc)


async def _send_error(send: Any, exc: ApiError) -> None:
    body = json.dumps(exc.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
