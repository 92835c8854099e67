"""The FastAPI application of ``sarvlm serve``: OpenAI-compatible chat completions that speak geography.

| endpoint | what |
|---|---|
| `POST /v1/chat/completions` | OpenAI chat format (text + image_url data URLs; `stream`; the `geo`/`task`/`min_tokens` extensions); answers carry `usage` and a `sarvlm` object (prior used, boxes in pixels + GeoJSON) |
| `GET /v1/models` | the served model |
| `POST /v1/sarvlm/quicklook` | the web UI's quick-look, footprint and prior-field overlay |
| `GET /health` | liveness + queue state (no key needed) |
| `GET /metrics` | Prometheus text |
| `GET /ui/` | the web UI (static page on this API, no CDN assets) |

Build it with :func:`create_app` from a loaded ``(model, processor)``; ``sarvlm serve`` runs it
under uvicorn. See docs/serving.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from sarvlm.serve.engine import Engine, EngineConfig, GenerationJob, QueueFull
from sarvlm.serve.geo import PriorSampler, boxes_extension, footprint_polygon
from sarvlm.serve.limits import BodyLimitMiddleware, Limits
from sarvlm.serve.metrics import ServerMetrics
from sarvlm.serve.openai_schema import (
    ApiError,
    ChatCompletionRequest,
    GeoSpec,
    completion_chunk,
    completion_id,
    completion_response,
    error_body,
    models_response,
    usage,
)

LOG = logging.getLogger("sarvlm.serve")
UI_DIR = Path(__file__).parent / "ui"
_ENDPOINTS = ("/v1/chat/completions", "/v1/models", "/v1/sarvlm/quicklook", "/health", "/metrics")
_FINISH = {"stop": "stop", "length": "length", "cancelled": "abort"}


@dataclass
class ServeConfig:
    """How the app serves its model (``sarvlm serve`` options)."""

    model_id: str = "sarvlm"
    limits: Limits = field(default_factory=Limits)
    engine: EngineConfig = field(default_factory=EngineConfig)
    api_key: str | None = None
    priors_source: str | None = None
    allow_remote_images: bool = False
    shutdown_timeout_s: float = 10.0


class _MetricsMiddleware:
    """Counts every HTTP answer by endpoint and status and times it to its last byte."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in _ENDPOINTS else ("/ui" if path.startswith("/ui") else "other")
        start = time.perf_counter()
        status = 500
        observed = False

        async def timed_send(message: dict) -> None:
            nonlocal status, observed
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False) and not observed:
                observed = True
                self.metrics.observe(endpoint, status, time.perf_counter() - start)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if not observed:  # the client went away mid-stream, or the app raised
                self.metrics.observe(endpoint, status, time.perf_counter() - start)


def _validation_message(exc: Exception) -> tuple[str, str | None]:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        items = errors()
        if items:
            first = items[0]
            loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
            return f"{loc + ': ' if loc else ''}{first.get('msg', 'invalid value')}", loc or None
    return str(exc).splitlines()[0], None


def create_app(model: Any, processor: Any, config: ServeConfig | None = None) -> Any:
    """The FastAPI app serving ``model`` (its engine starts and stops with the app's lifespan)."""
    from sarvlm.core.errors import SarvlmError

    config = config or ServeConfig()
    metrics = ServerMetrics()
    engine = Engine(model, processor, config.engine, metrics)
    sampler = PriorSampler(config.priors_source or processor.settings.prior_source, processor.settings)
    created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            # uvicorn has waited for in-flight requests (up to its graceful timeout); cancel the rest
            # and wait for the current decoding step (briefly: the engine thread is a daemon).
            await asyncio.to_thread(engine.stop, min(config.shutdown_timeout_s, 2.0))
            sampler.close()

    app = FastAPI(title="sarvlm serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.config = config
    app.state.sampler = sampler

    # -- errors: always the OpenAI shape, never a traceback ----------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Any:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Any:
        message, param = _validation_message(exc)
        return JSONResponse(error_body(message, "invalid_request_error", param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(SarvlmError)
    async def _sarvlm(request: Request, exc: SarvlmError) -> Any:
        return JSONResponse(error_body(str(exc), "invalid_request_error"), status_code=400)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Any:
        LOG.exception("internal error on %s", request.url.path)
        return JSONResponse(error_body("internal server error", "server_error"), status_code=500)

    # -- helpers ------------------------------------------------------------------------
    def authorize(request: Request) -> None:
        if not config.api_key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), config.api_key.encode()):
            raise ApiError(
                401,
                "missing or wrong API key (send Authorization: Bearer KEY)",
                type="authentication_error",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def json_body(request: Request) -> dict[str, Any]:
        raw = await request.body()  # BodyLimitMiddleware refuses oversize bodies while this reads
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"request body is not valid JSON ({getattr(exc, 'msg', exc)})") from None
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
        return data

    def parse(model_cls: Any, data: dict[str, Any]) -> Any:
        from pydantic import ValidationError

        try:
            return model_cls.model_validate(data)
        except ValidationError as exc:
            message, param = _validation_message(exc)
            raise ApiError(400, message, param=param) from None

    # -- endpoints ----------------------------------------------------------------------
    @app.get("/health")
    async def health() -> Any:
        return {
            "status": "ok",
            "model": config.model_id,
            "queue_depth": engine.queue_depth,
            "running": engine.running,
            "prior_source": sampler.spec,
        }

    @app.get("/metrics")
    async def metrics_endpoint(request: Request) -> Any:
        authorize(request)
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/v1/models")
    async def list_models(request: Request) -> Any:
        authorize(request)
        return models_response(config.model_id, created)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        from sarvlm.serve.chat import prepare_chat
        from sarvlm.tasks.registry import TASKS, max_new_tokens

        authorize(request)
        req = parse(ChatCompletionRequest, await json_body(request))
        if req.model not in (None, "", config.model_id):
            raise ApiError(
                404, f"the model {req.model!r} does not exist (this server serves {config.model_id!r})", param="model"
            )
        if req.n != 1:
            raise ApiError(400, "n > 1 is not supported", param="n")
        if req.task is not None and req.task not in TASKS:
            raise ApiError(400, f"task {req.task!r} is unknown (expected one of {', '.join(TASKS)})", param="task")
        requested = req.max_completion_tokens or req.max_tokens
        config.limits.check_max_tokens(requested)
        if req.min_tokens > (requested or config.limits.max_tokens):
            raise ApiError(400, "min_tokens exceeds max_tokens", param="min_tokens")
        budget = requested or (max_new_tokens(req.task) if req.task else config.limits.default_max_tokens)
        prepared = await asyncio.to_thread(
            prepare_chat, req, processor, sampler, config.limits, config.allow_remote_images
        )
        sampling = req.temperature is not None and req.temperature > 0
        job = GenerationJob(
            query=prepared.query,
            encoding=prepared.encoding,
            max_new_tokens=min(budget, config.limits.max_tokens),
            min_new_tokens=req.min_tokens,
            do_sample=sampling,
            temperature=req.temperature or 1.0,
            top_p=req.top_p if req.top_p is not None else 1.0,
            seed=req.seed,
            stop=tuple(req.stop or ()),
        )
        try:
            engine.submit(job)
        except QueueFull as exc:
            raise ApiError(
                503,
                f"the server is busy ({exc}); retry later",
                type="server_overloaded",
                code="queue_full",
                headers={"Retry-After": str(config.engine.retry_after_s)},
            ) from None
        metrics.priors.labels(used=str(bool(prepared.prior and prepared.prior.grid is not None)).lower()).inc()
        cid = completion_id()

        def extension(text: str) -> dict[str, Any]:
            image = prepared.first_image
            ext: dict[str, Any] = {
                "prior": prepared.prior.info if prepared.prior else {"used": False},
                **boxes_extension(text, processor.settings.coords, image, prepared.geo),
                "images": [
                    {
                        "width": im.width,
                        "height": im.height,
                        "format": im.meta.driver,
                        "bands": im.meta.count,
                        "dtype": im.meta.dtype,
                        "georeferenced": im.georef is not None,
                    }
                    for im in prepared.images
                ],
            }
            if req.task is not None:
                from sarvlm.tasks.registry import parse_prediction

                w, h = (image.width, image.height) if image is not None else (None, None)
                ext["task"] = req.task
                ext["parsed"] = parse_prediction(req.task, text, coords=processor.settings.coords, width=w, height=h)
            return ext

        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(
                _sse(job, engine, cid, config.model_id, extension, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )

        async def collect() -> tuple[str, str, int]:
            assert job.events is not None
            while True:
                event = await job.events.get()
                if event[0] == "done":
                    return event[3], event[1], event[2]
                if event[0] == "error":
                    raise ApiError(500, event[1], type="server_error")

        collector = asyncio.ensure_future(collect())
        watcher = asyncio.ensure_future(_wait_disconnect(request))
        try:
            await asyncio.wait({collector, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not collector.done():
                engine.withdraw(job)  # the client went away (or this task was cancelled): stop generating
                collector.cancel()
            watcher.cancel()
        if collector.cancelled():
            return Response(status_code=499)
        text, reason, count = collector.result()
        return completion_response(
            cid, config.model_id, text, _FINISH.get(reason, reason), job.prompt_tokens, count, extension(text)
        )

    @app.post("/v1/sarvlm/quicklook")
    async def quicklook(request: Request) -> Any:
        authorize(request)
        data = await json_body(request)
        url = data.get("image")
        geo = parse(GeoSpec, data["geo"]) if data.get("geo") is not None else None
        return await asyncio.to_thread(_quicklook, url, geo, sampler, config)

    @app.get("/ui", include_in_schema=False)
    async def ui_redirect() -> Any:
        return RedirectResponse("/ui/")

    app.mount("/ui", StaticFiles(directory=str(UI_DIR), html=True), name="ui")
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.limits.max_body_bytes)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    return app


async def _wait_disconnect(request: Any) -> None:
    """Returns when the client disconnects (the body has been read, so the next message is that)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _sse_line(payload: Any) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _sse(
    job: GenerationJob, engine: Engine, cid: str, model_id: str, extension: Any, include_usage: bool
) -> AsyncIterator[str]:
    """Server-sent events of one streamed completion, ending with ``data: [DONE]``."""
    created = int(time.time())
    assert job.events is not None
    try:
        yield _sse_line(completion_chunk(cid, model_id, created, {"role": "assistant", "content": ""}))
        while True:
            event = await job.events.get()
            if event[0] == "delta":
                yield _sse_line(completion_chunk(cid, model_id, created, {"content": event[1]}))
            elif event[0] == "done":
                _, reason, count, text = event
                ext = await asyncio.to_thread(extension, text)
                yield _sse_line(
                    completion_chunk(cid, model_id, created, {}, _FINISH.get(reason, reason), extension=ext)
                )
                if include_usage:
                    yield _sse_line(
                        completion_chunk(
                            cid,
                            model_id,
                            created,
                            {},
                            usage_counts=usage(job.prompt_tokens, count),
                            empty_choices=True,
                        )
                    )
                break
            else:
                yield _sse_line(error_body(event[1], "server_error"))
                break
        yield "data: [DONE]\n\n"
    finally:
        engine.withdraw(job)  # no-op when it finished; stops the generation when the client went away


def _quicklook(url: Any, geo: GeoSpec | None, sampler: PriorSampler, config: ServeConfig) -> dict[str, Any]:
    """Quick-look PNG, footprint GeoJSON and prior overlay of one uploaded image."""
    from sarvlm.core.errors import InputError, SarvlmError
    from sarvlm.serve.geo import answer_georef
    from sarvlm.serve.images import decode_image, image_bytes
    from sarvlm.serve.quicklook import png_data_url, render_prior_overlay, render_quicklook

    limits = config.limits
    try:
        data = image_bytes(
            url, allow_remote=config.allow_remote_images, max_bytes=limits.max_image_bytes, where="image"
        )
        image = decode_image(data, limits.max_pixels, where="image")
        prior = sampler.sample(image, geo)
        georef, georef_from = answer_georef(image, geo)
    except InputError as exc:
        raise ApiError(400, str(exc), param="image", code="invalid_image") from None
    except SarvlmError as exc:
        raise ApiError(400, str(exc), param="geo") from None
    look = render_quicklook(image)
    overlay = None
    if prior.grid is not None:
        overlay = png_data_url(render_prior_overlay(prior.grid, image.width, image.height, look.size))
    footprint = None
    if georef is not None:
        ring = footprint_polygon(georef, image.width, image.height)
        footprint = {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"from": georef_from},
        }
    return {
        "width": image.width,
        "height": image.height,
        "format": image.meta.driver,
        "bands": image.meta.count,
        "dtype": image.meta.dtype,
        "georeferenced": image.georef is not None,
        "quicklook": png_data_url(look),
        "quicklook_size": list(look.size),
        "prior": prior.info,
        "prior_overlay": overlay,
        "footprint": footprint,
    }
