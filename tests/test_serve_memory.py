"""`sarvlm serve` keeps nothing per request: no reference cycles holding requests, no objects that pile up.

The leak these tests pin (issue 17): the engine defined its ``StoppingCriteria`` class inside a
function, once per batch. A class is a reference cycle, and this one held the batch's rows, jobs,
prompt tensors and PIL images, so they waited for a full garbage collection — which, in a process
with a model's hundreds of thousands of long-lived objects, comes every few thousand requests: server RSS grew with
every request. Requests here go through the real app (FastAPI, the engine thread, the tiny
Qwen2.5-VL) in-process over httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import warnings

import httpx
import pytest

from _serve_helpers import data_url, png_bytes
from sarvlm.serve.app import ServeConfig, create_app
from sarvlm.serve.engine import EngineConfig

IMAGE = {"type": "image_url", "image_url": {"url": data_url(png_bytes(), "image/png")}}
BODY = {"messages": [{"role": "user", "content": [IMAGE, {"type": "text", "text": "ships?"}]}], "max_tokens": 3}
BAD = {
    "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
    ]
}


@pytest.fixture(scope="module")
def loaded():
    from sarvlm.models.loading import load_model

    return load_model("tiny-qwen2.5-vl")


@pytest.fixture
def app(loaded):
    """A fresh app per test (an engine stops for good when its app's lifespan ends)."""
    model, processor = loaded
    return create_app(model, processor, ServeConfig(model_id="t", engine=EngineConfig(max_batch=4, max_queue=2)))


async def _round(client: httpx.AsyncClient) -> collections.Counter:
    """8 concurrent completions (half streamed: batches and 503s), a bad image, bad JSON, metrics, a quick-look."""
    answers = list(
        await asyncio.gather(
            *(client.post("/v1/chat/completions", json={**BODY, "stream": i % 2 == 0}) for i in range(8))
        )
    )
    answers.append(await client.post("/v1/chat/completions", json=BAD))
    answers.append(await client.post("/v1/chat/completions", content=b"{"))
    answers.append(await client.get("/metrics"))
    answers.append(await client.post("/v1/sarvlm/quicklook", json={"image": IMAGE["image_url"]["url"]}))
    return collections.Counter(r.status_code for r in answers)


def _kind(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _server_kind(kind: str) -> bool:
    """Objects a request creates on the server side (not httpx's client-side objects)."""
    return kind.startswith(("sarvlm.", "torch.", "PIL.", "numpy.", "asyncio.", "starlette.", "fastapi.")) or kind in (
        "abc.ABCMeta",
        "builtins.type",
        "builtins.frame",
        "builtins.cell",
        "builtins.function",
    )


def _serve_rounds(app, rounds: int, between=None) -> list[collections.Counter]:
    async def main() -> list[collections.Counter]:
        statuses = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve.test", timeout=120) as client:
                for i in range(rounds):
                    statuses.append(await _round(client))
                    if between is not None:
                        between(i)
        return statuses

    return asyncio.run(main())


def test_requests_leave_no_reference_cycles_on_the_server(app):
    garbage: list[object] = []

    def between(i: int) -> None:
        if i == 0:  # warm-up round done: from here on, keep whatever the collector frees from cycles
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
        elif i == 3:
            gc.collect()
            gc.set_debug(0)
            garbage.extend(gc.garbage)
            gc.garbage.clear()

    try:
        statuses = _serve_rounds(app, 4, between)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert all(s[200] >= 3 and s[400] == 2 for s in statuses), statuses  # answers, batches, 4xx paths all ran
    server_cycles = collections.Counter(k for k in map(_kind, garbage) if _server_kind(k))
    garbage.clear()
    assert not server_cycles, f"per-request objects freed only by the cycle collector: {server_cycles.most_common(12)}"


def test_live_objects_do_not_grow_with_requests(app):
    counts: list[collections.Counter] = []

    def between(i: int) -> None:
        if i in (1, 4):
            gc.collect()
            counts.append(collections.Counter(map(_kind, gc.get_objects())))

    statuses = _serve_rounds(app, 5, between)
    assert all(s[200] >= 3 and s[400] == 2 for s in statuses), statuses
    first, last = counts
    answered = sum(s[200] for s in statuses[2:5])  # completions between the two counts (>= 9)
    # A per-request leak adds at least one object per request; a few one-off objects (the
    # to_thread pool starting another worker thread, lazy caches) are allowed.
    grown = {k: last[k] - first[k] for k in last if _server_kind(k) and last[k] - first[k] >= answered // 2}
    assert not grown, f"objects that pile up over {answered} answered requests: {grown}"
    assert app.state.engine.running == 0 and app.state.engine.queue_depth == 0


def test_serving_raises_no_transformers_future_warning(app):
    # The Qwen wrappers used to pass past_key_values=None next to generate()'s `cache`: one
    # FutureWarning per decoding step. catch_warnings patches the module, so the engine thread's count too.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        statuses = _serve_rounds(app, 1)
    assert statuses[0][200] >= 3, statuses
    future = [str(w.message)[:120] for w in caught if issubclass(w.category, FutureWarning)]
    assert not future, future
