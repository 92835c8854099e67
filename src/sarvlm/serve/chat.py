"""OpenAI chat messages → a sarvlm generation query (images decoded, prior sampled, prompt encoded).

Content may be a string or a list of parts: ``{"type": "text", "text": ...}`` and
``{"type": "image_url", "image_url": {"url": "data:...", "geo": {...}}}`` (``geo`` may also sit
on the part itself). Each image part becomes an ``<image>`` placeholder at its place in the
message, so the model sees the conversation as the training data's ``<image>`` format. The first
image is the SAR image the prior is georeferenced to; its ``geo`` wins over the request's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sarvlm.core.errors import InputError
from sarvlm.core.example import IMAGE_PLACEHOLDER
from sarvlm.inference.generate import Query
from sarvlm.serve.geo import PriorOutcome, PriorSampler
from sarvlm.serve.images import DecodedImage, decode_image, image_bytes
from sarvlm.serve.limits import Limits
from sarvlm.serve.openai_schema import ApiError, ChatCompletionRequest, GeoSpec


@dataclass
class PreparedChat:
    query: Query
    encoding: dict[str, Any]
    images: list[DecodedImage] = field(default_factory=list)
    geo: GeoSpec | None = None
    prior: PriorOutcome | None = None

    @property
    def first_image(self) -> DecodedImage | None:
        return self.images[0] if self.images else None


def _part_geo(part: dict[str, Any], where: str) -> GeoSpec | None:
    raw = part.get("geo")
    if raw is None and isinstance(part.get("image_url"), dict):
        raw = part["image_url"].get("geo")
    if raw is None:
        return None
    try:
        return GeoSpec.model_validate(raw)
    except Exception as exc:  # noqa: BLE001 - pydantic ValidationError → a one-line 400
        raise ApiError(400, f"{where}.geo: {_first_error(exc)}", param=f"{where}.geo") from None


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        return f"{loc + ': ' if loc else ''}{first.get('msg', 'invalid')}"
    return str(exc).splitlines()[0]


def _plain_text(text: str, where: str) -> str:
    if IMAGE_PLACEHOLDER in text:
        raise ApiError(400, f"{where}: contains {IMAGE_PLACEHOLDER}; send images as image_url parts", param=where)
    return text


def collect_images(
    req: ChatCompletionRequest, limits: Limits, allow_remote: bool
) -> tuple[list[dict[str, str]], list[DecodedImage], GeoSpec | None]:
    """Messages with ``<image>`` placeholders, the decoded images in order, the first image's geo."""
    messages: list[dict[str, str]] = []
    images: list[DecodedImage] = []
    first_geo: GeoSpec | None = None
    text_chars = 0
    if len(req.messages) > limits.max_messages:
        raise ApiError(400, f"{len(req.messages)} messages exceed the limit of {limits.max_messages}", param="messages")
    for i, msg in enumerate(req.messages):
        where = f"messages[{i}]"
        content = msg.content
        if content is None:
            content = ""
        if isinstance(content, str):
            _plain_text(content, where)
            text = content
        else:
            pieces: list[str] = []
            for j, part in enumerate(content):
                pw = f"{where}.content[{j}]"
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    if not isinstance(part.get("text"), str):
                        raise ApiError(400, f"{pw}.text: must be a string", param=f"{pw}.text")
                    pieces.append(_plain_text(part["text"], f"{pw}.text"))
                elif kind == "image_url":
                    if msg.role != "user":
                        raise ApiError(400, f"{pw}: images are accepted in user messages only", param=pw)
                    if len(images) >= limits.max_images:
                        raise ApiError(
                            400,
                            f"more than {limits.max_images} images in one request",
                            param=pw,
                            code="too_many_images",
                        )
                    spec = part.get("image_url")
                    url = spec.get("url") if isinstance(spec, dict) else spec
                    geo = _part_geo(part, pw)
                    try:
                        data = image_bytes(
                            url, allow_remote=allow_remote, max_bytes=limits.max_image_bytes, where=f"{pw}.image_url"
                        )
                        images.append(decode_image(data, limits.max_pixels, where=f"{pw}.image_url"))
                    except InputError as exc:
                        raise ApiError(400, str(exc), param=f"{pw}.image_url", code="invalid_image") from None
                    if len(images) == 1:
                        first_geo = geo
                    pieces.append(IMAGE_PLACEHOLDER + "\n")
                else:
                    raise ApiError(
                        400, f"{pw}.type: {kind!r} is not supported (expected text or image_url)", param=f"{pw}.type"
                    )
            text = "".join(pieces)
        text_chars += len(text)
        if text_chars > limits.max_text_chars:
            raise ApiError(400, f"text longer than the limit of {limits.max_text_chars} characters", param=where)
        messages.append({"role": msg.role, "content": text})
    if not any(m["role"] == "user" for m in messages):
        raise ApiError(400, "messages: needs at least one user message", param="messages")
    return messages, images, first_geo


def prepare_chat(
    req: ChatCompletionRequest, processor: Any, sampler: PriorSampler, limits: Limits, allow_remote: bool
) -> PreparedChat:
    """Decode, sample and encode one request (blocking: run it in a worker thread)."""
    from sarvlm.core.errors import SarvlmError
    from sarvlm.inference.generate import encode_query

    messages, images, first_geo = collect_images(req, limits, allow_remote)
    geo = first_geo or req.geo
    try:
        prior = sampler.sample(images[0] if images else None, geo)
    except SarvlmError as exc:
        raise ApiError(400, str(exc), param="geo") from None
    query = Query(messages=messages, images=[im.image for im in images], prior=prior.grid)
    try:
        encoding = encode_query(processor, query)
    except SarvlmError as exc:
        raise ApiError(400, f"messages: {exc}", param="messages") from None
    n = len(encoding["input_ids"])
    if n > limits.max_prompt_tokens:
        raise ApiError(
            400,
            f"the prompt is {n} tokens (images included), over the limit of {limits.max_prompt_tokens}",
            param="messages",
            code="context_length_exceeded",
        )
    return PreparedChat(query=query, encoding=encoding, images=images, geo=geo, prior=prior)
