"""`sarvlm serve` over real HTTP: a uvicorn server on loopback, the openai SDK and httpx as clients.

One server per module (a tiny Qwen2.5-VL taught to answer QUESTION with a box, and a real
AlphaEarth-layout COG prior source); the back-pressure/cancellation checks use a second server
on the same model with a one-request engine.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest

from _priors_world import build_tiles
from _serve_helpers import data_url, png_bytes, running_server, utm_to_lonlat, write_geotiff
from _serve_model import ANSWER, QUESTION, shared_taught_model
from sarvlm.serve.app import ServeConfig, create_app
from sarvlm.serve.engine import EngineConfig
from sarvlm.serve.limits import Limits

openai = pytest.importorskip("openai")

NW = (5.970, 45.028)  # north-west corner of the test GeoTIFF, inside the 2020/2022 tiles of zone 31N
LIMITS = Limits(max_body_bytes=1_000_000, max_images=2, max_pixels=300 * 300, max_tokens=64, default_max_tokens=24)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    build_tiles(root / "aef")
    transform = write_geotiff(root / "scene.tif", *NW)
    model, processor = shared_taught_model(tmp_path_factory)
    config = ServeConfig(model_id="tiny-taught", limits=LIMITS, priors_source=f"aef-cog:{root / 'aef'}")
    app = create_app(model, processor, config)
    with running_server(app) as base:
        yield {
            "base": base,
            "app": app,
            "model": model,
            "processor": processor,
            "tif": (root / "scene.tif").read_bytes(),
            "transform": transform,
            "root": root,
        }


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served["base"] + "/v1", api_key="unused", max_retries=0, timeout=120)


def image_message(url: str, text: str = QUESTION, **part_extra) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": url}, **part_extra}, {"type": "text", "text": text}],
        }
    ]


def post(served, body, **kw) -> httpx.Response:
    return httpx.post(served["base"] + "/v1/chat/completions", json=body, timeout=120, **kw)


# -- API core ------------------------------------------------------------------------------


def test_models_health_and_metrics_endpoints(served, client):
    assert [m.id for m in client.models.list().data] == ["tiny-taught"]
    health = httpx.get(served["base"] + "/health").json()
    assert (
        health["status"] == "ok" and health["model"] == "tiny-taught" and health["prior_source"].startswith("aef-cog:")
    )
    text = httpx.get(served["base"] + "/metrics").text
    for name in (
        "sarvlm_requests_total",
        "sarvlm_request_latency_seconds_bucket",
        "sarvlm_completion_tokens_total",
        "sarvlm_queue_depth",
    ):
        assert name in text
    assert 'sarvlm_requests_total{endpoint="/v1/models",status="200"}' in text


def test_chat_completion_through_the_openai_sdk_answers_with_boxes(served, client):
    png = png_bytes(64, 48)
    resp = client.chat.completions.create(
        model="tiny-taught", messages=image_message(data_url(png, "image/png")), max_tokens=24
    )
    choice = resp.choices[0]
    assert choice.message.content == ANSWER and choice.finish_reason == "stop"
    processor = served["processor"]
    assert (
        resp.usage.prompt_tokens > 10 and resp.usage.completion_tokens == len(processor.tokenizer(ANSWER).input_ids) + 1
    )
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    ext = resp.model_extra["sarvlm"]
    assert ext["prior"]["used"] is False and "not georeferenced" in ext["prior"]["reason"]
    from sarvlm.tasks.parsing import parse_boxes

    expected = parse_boxes(ANSWER, processor.settings.coords, 64, 48)
    assert [b["pixel"] for b in ext["boxes"]] == [[round(v, 2) for v in box] for box in expected]
    assert ext["boxes"][0]["lonlat"] is None and ext["geojson"] is None
    assert ext["images"] == [
        {"width": 64, "height": 48, "format": "PNG", "bands": 1, "dtype": "uint8", "georeferenced": False}
    ]


def test_streaming_matches_the_plain_answer_and_ends_with_done(served, client):
    messages = image_message(data_url(png_bytes(64, 48), "image/png"))
    plain = client.chat.completions.create(model="tiny-taught", messages=messages, max_tokens=24)
    stream = client.chat.completions.create(
        model="tiny-taught", messages=messages, max_tokens=24, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3  # streamed in pieces
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    assert final.choices[0].finish_reason == "stop" and final.model_extra["sarvlm"]["boxes"]
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    with httpx.stream(
        "POST", served["base"] + "/v1/chat/completions", json={"messages": messages, "stream": True}, timeout=60
    ) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in raw.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"


def test_stop_sequences_and_seeded_sampling(served, client):
    messages = image_message(data_url(png_bytes(), "image/png"))
    cut = client.chat.completions.create(model="tiny-taught", messages=messages, max_tokens=24, stop=[","])
    assert cut.choices[0].message.content == ANSWER.split(",")[0] and cut.choices[0].finish_reason == "stop"
    runs = [
        client.chat.completions.create(
            model="tiny-taught", messages=messages, max_tokens=12, temperature=1.5, top_p=1.0, seed=s
        ).choices[0]
        for s in (7, 7, 8)
    ]
    assert runs[0].message.content == runs[1].message.content
    short = client.chat.completions.create(
        model="tiny-taught", messages=messages, max_tokens=3, extra_body={"min_tokens": 3}
    )
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"


# -- geo extension -------------------------------------------------------------------------


def test_geotiff_brings_its_footprint_prior_and_lonlat_boxes(served, client):
    resp = client.chat.completions.create(
        model="tiny-taught", messages=image_message(data_url(served["tif"], "image/tiff")), max_tokens=24
    )
    ext = resp.model_extra["sarvlm"]
    prior = ext["prior"]
    # the file's ACQUISITION_DATE says 2021; the source has 2020 and 2022 there (tie → the earlier)
    assert prior["used"] is True and prior["footprint_from"] == "image"
    assert (prior["year_requested"], prior["year"], prior["year_from"]) == (2021, 2020, "image tag")
    assert prior["valid_nodes"] == prior["nodes"] == int(np.prod(served["processor"].settings.prior_grid))
    assert ext["georef"] == "image" and ext["images"][0]["georeferenced"] is True
    box = ext["boxes"][0]
    x1, y1, x2, y2 = box["pixel"]
    lon, lat = utm_to_lonlat(served["transform"], [x1, x2, x2, x1, x1], [y1, y1, y2, y2, y1])
    assert np.allclose(np.array(box["lonlat"]), np.stack([lon, lat], axis=1), atol=1e-6)
    feature = ext["geojson"]["features"][0]
    assert feature["geometry"]["type"] == "Polygon" and feature["geometry"]["coordinates"][0] == box["lonlat"]
    # the prior reaches the model: the same request without it is answered differently or equally,
    # but the response must say it was not used
    off = client.chat.completions.create(
        model="tiny-taught",
        messages=image_message(data_url(served["tif"], "image/tiff")),
        max_tokens=4,
        extra_body={"geo": {"prior": False}},
    )
    assert off.model_extra["sarvlm"]["prior"] == {"used": False, "reason": "disabled by the request (geo.prior: false)"}


def test_geo_bbox_and_year_for_a_plain_png(served, client):
    bbox = [5.970, 45.020, 5.980, 45.028]
    resp = client.chat.completions.create(
        model="tiny-taught",
        messages=image_message(data_url(png_bytes(64, 48), "image/png")),
        max_tokens=24,
        extra_body={"geo": {"bbox": bbox, "year": 2023}},
    )
    ext = resp.model_extra["sarvlm"]
    assert ext["prior"]["used"] and ext["prior"]["year"] == 2022 and ext["prior"]["footprint_from"] == "request"
    x1, y1, x2, y2 = ext["boxes"][0]["pixel"]
    lon = lambda x: bbox[0] + x / 64 * (bbox[2] - bbox[0])  # north-up box on the pixel edges
    lat = lambda y: bbox[3] - y / 48 * (bbox[3] - bbox[1])
    ring = ext["boxes"][0]["lonlat"]
    assert np.allclose(ring[0], [lon(x1), lat(y1)], atol=1e-7) and np.allclose(ring[2], [lon(x2), lat(y2)], atol=1e-7)
    # per-image geo (on the image part) wins over the request's
    per_image = post(
        served,
        {
            "messages": image_message(data_url(png_bytes(64, 48), "image/png"), geo={"bbox": bbox, "year": 2020}),
            "geo": {"bbox": bbox, "year": 2023},
            "max_tokens": 2,
        },
    ).json()
    assert per_image["sarvlm"]["prior"]["year"] == 2020


def test_quicklook_renders_sar_stretch_footprint_and_prior_overlay(served):
    from PIL import Image

    from sarvlm.serve.images import decode_data_url

    out = httpx.post(
        served["base"] + "/v1/sarvlm/quicklook", json={"image": data_url(served["tif"], "image/tiff")}, timeout=60
    ).json()
    assert out["georeferenced"] and out["dtype"] == "float32" and out["prior"]["used"]
    look = Image.open(__import__("io").BytesIO(decode_data_url(out["quicklook"])))
    arr = np.asarray(look)
    assert look.mode == "L" and look.size == (64, 64) and arr.min() == 0 and arr.max() == 255  # full 8-bit range
    overlay = Image.open(__import__("io").BytesIO(decode_data_url(out["prior_overlay"])))
    assert overlay.mode == "RGBA" and overlay.size == (64, 64) and len({tuple(p) for p in overlay.getdata()}) > 4
    ring = out["footprint"]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and np.allclose(ring[0], NW, atol=1e-6)


# -- errors and limits ---------------------------------------------------------------------


def _error(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in resp.text
    return body["error"]


def test_bad_requests_get_openai_shaped_4xx(served, client):
    base = served["base"] + "/v1/chat/completions"
    assert "JSON" in _error(httpx.post(base, content=b"{nope", timeout=30), 400)["message"]
    assert _error(post(served, {"messages": []}), 400)["param"] == "messages"
    assert _error(post(served, {"messages": [{"role": "robot", "content": "x"}]}), 400)["param"].startswith("messages")
    assert "n > 1" in _error(post(served, {"messages": [{"role": "user", "content": "x"}], "n": 2}), 400)["message"]
    assert _error(post(served, {"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}), 404)
    err = _error(post(served, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 65}), 400)
    assert err["code"] == "max_tokens_exceeded"
    # a seed torch cannot take is the client's error, not a failed generation (500)
    huge_seed = {"messages": [{"role": "user", "content": "x"}], "temperature": 1.0, "seed": 2**70, "max_tokens": 2}
    assert _error(post(served, huge_seed), 400)["param"] == "seed"
    parts = [{"type": "input_audio", "input_audio": {}}]
    assert "not supported" in _error(post(served, {"messages": [{"role": "user", "content": parts}]}), 400)["message"]
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="tiny-taught", messages=[{"role": "user", "content": "<image> hi"}])
    assert "image_url" in str(exc.value)
    assert _error(httpx.get(served["base"] + "/nowhere"), 404)["type"] == "not_found_error"
    assert httpx.get(served["base"] + "/health").status_code == 200  # still up


@pytest.mark.parametrize(
    "url, words",
    [
        ("http://127.0.0.1:9/x.png", "remote image URLs are refused"),
        ("/etc/passwd", "only data URLs"),
        ("/vsicurl/http://example.com/a.tif", "only data URLs"),
        ("file:///etc/passwd", "only data URLs"),
        ("data:image/png;base64,@@@", "invalid base64"),
        ("data:text/plain;base64," + __import__("base64").b64encode(b"hello").decode(), "not a PNG, JPEG or GeoTIFF"),
    ],
)
def test_image_urls_other_than_data_urls_are_refused(served, url, words):
    err = _error(post(served, {"messages": image_message(url)}), 400)
    assert words in err["message"] and err["param"].endswith("image_url")


def test_a_vrt_disguised_as_tif_does_not_read_server_files(served, tmp_path):
    secret = tmp_path / "secret.tif"
    write_geotiff(secret, *NW)
    vrt = f"""<VRTDataset rasterXSize="64" rasterYSize="64"><VRTRasterBand dataType="Float32" band="1">
    <SimpleSource><SourceFilename relativeToVRT="0">{secret}</SourceFilename><SourceBand>1</SourceBand></SimpleSource>
    </VRTRasterBand></VRTDataset>""".encode()
    for mime in ("image/tiff", "image/png"):
        err = _error(post(served, {"messages": image_message(data_url(vrt, mime))}), 400)
        assert err["code"] == "invalid_image" and str(secret) not in err["message"]
    # the same bytes opened by GDAL from memory without the allow-list would read the secret file:
    from sarvlm.serve.images import open_raster_bytes

    with pytest.raises(Exception, match="not a PNG, JPEG or GeoTIFF"):
        open_raster_bytes(vrt, 10**6)


def test_a_small_file_declaring_huge_dimensions_is_refused_before_reading(served, tmp_path):
    import rasterio

    bomb = tmp_path / "bomb.tif"
    with rasterio.open(
        bomb,
        "w",
        driver="GTiff",
        width=200_000,
        height=200_000,
        count=1,
        dtype="uint8",
        tiled=True,
        blockxsize=2048,
        blockysize=2048,
        sparse_ok=True,
        BIGTIFF="YES",
    ):
        pass
    data = bomb.read_bytes()
    assert len(data) < 1_000_000
    start = time.monotonic()
    err = _error(post(served, {"messages": image_message(data_url(data, "image/tiff"))}), 400)
    assert "200000x200000" in err["message"] and "exceeds the limit" in err["message"]
    assert time.monotonic() - start < 10
    too_big = png_bytes(400, 300)  # 120000 pixels > 90000
    assert (
        "exceeds the limit"
        in _error(post(served, {"messages": image_message(data_url(too_big, "image/png"))}), 400)["message"]
    )


def test_body_limits_hold_for_declared_and_chunked_uploads(served):
    big = {"messages": [{"role": "user", "content": "x" * 1_200_000}]}
    err = _error(post(served, big), 413)
    assert err["code"] == "body_too_large" and "declared" in err["message"]

    def chunks():
        payload = json.dumps(big).encode()
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    resp = httpx.post(served["base"] + "/v1/chat/completions", content=chunks(), timeout=60)
    assert "content-length" not in resp.request.headers  # sent chunked: no size known before reading
    err = _error(resp, 413)
    assert err["code"] == "body_too_large" and "declared" not in err["message"]
    three = [{"type": "image_url", "image_url": {"url": data_url(png_bytes(8, 8), "image/png")}}] * 3
    err = _error(post(served, {"messages": [{"role": "user", "content": three}]}), 400)
    assert err["code"] == "too_many_images"
    assert httpx.get(served["base"] + "/health").status_code == 200


def test_api_key_is_required_when_set(served):
    app = create_app(served["model"], served["processor"], ServeConfig(model_id="k", api_key="s3cret"))
    with running_server(app) as base:
        err = _error(httpx.get(base + "/v1/models"), 401)
        assert err["type"] == "authentication_error"
        assert _error(httpx.get(base + "/v1/models", headers={"Authorization": "Bearer nope"}), 401)
        ok = openai.OpenAI(base_url=base + "/v1", api_key="s3cret", max_retries=0).models.list()
        assert ok.data[0].id == "k"
        assert httpx.get(base + "/health").status_code == 200  # liveness stays open


# -- concurrency: back-pressure, cancellation, batching -------------------------------------


@pytest.fixture(scope="module")
def busy(served):
    """A one-request-at-a-time server on the same model, with a queue of one."""
    config = ServeConfig(
        model_id="busy",
        limits=Limits(max_tokens=4000, default_max_tokens=8),
        engine=EngineConfig(max_batch=4, max_queue=1, retry_after_s=3),
    )
    app = create_app(served["model"], served["processor"], config)
    with running_server(app) as base:
        yield base, app


def _long(n: int, stream: bool = False) -> dict:
    return {"messages": [{"role": "user", "content": "go"}], "max_tokens": n, "min_tokens": n, "stream": stream}


def _wait(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_queue_overflow_is_503_with_retry_after_and_disconnect_cancels(busy):
    base, app = busy
    metrics, engine = app.state.metrics, app.state.engine
    with (
        httpx.Client(timeout=120) as http,
        http.stream("POST", base + "/v1/chat/completions", json=_long(3000, True)) as first,
    ):
        lines = first.iter_lines()
        assert next(lines).startswith("data: ")  # the long generation is running
        assert _wait(lambda: engine.running == 1)
        results = []
        threads = [
            threading.Thread(
                target=lambda: results.append(httpx.post(base + "/v1/chat/completions", json=_long(4), timeout=120))
            )
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        assert _wait(lambda: len(results) >= 2)  # one waits in the queue; the others are refused at once
        refused = [r for r in results if r.status_code == 503]
        assert len(refused) == 2 and all(r.headers["retry-after"] == "3" for r in refused)
        assert refused[0].json()["error"]["code"] == "queue_full"
        assert metrics.value("sarvlm_rejected_requests_total") == 2
        # the client of the long stream goes away: its generation stops, the queued request runs
    assert _wait(lambda: metrics.value("sarvlm_cancelled_requests_total") == 1)
    for t in threads:
        t.join(120)
    assert sorted(r.status_code for r in results) == [200, 503, 503]
    assert _wait(lambda: engine.running == 0 and engine.queue_depth == 0)
    assert metrics.value("sarvlm_completion_tokens_total") < 3000  # the 3000-token stream was cut short


def test_non_streaming_client_timeout_cancels_generation(busy):
    base, app = busy
    metrics, engine = app.state.metrics, app.state.engine
    before = metrics.value("sarvlm_cancelled_requests_total")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(base + "/v1/chat/completions", json=_long(3000), timeout=httpx.Timeout(60, read=1.5))
    assert _wait(lambda: metrics.value("sarvlm_cancelled_requests_total") == before + 1)
    assert _wait(lambda: engine.running == 0)


def test_waiting_greedy_requests_are_batched(busy):
    base, app = busy
    metrics = app.state.metrics
    engine = app.state.engine
    count0, sum0 = metrics.value("sarvlm_batch_size_count"), metrics.value("sarvlm_batch_size_sum")
    steps0, tokens0 = metrics.value("sarvlm_batch_row_steps_total"), metrics.value("sarvlm_completion_tokens_total")
    config = engine.config
    engine.config = EngineConfig(max_batch=4, max_queue=8)
    try:
        results = []
        blocker = threading.Thread(
            target=lambda: results.append(httpx.post(base + "/v1/chat/completions", json=_long(120), timeout=120))
        )
        blocker.start()
        assert _wait(lambda: engine.running == 1)
        threads = [
            threading.Thread(
                target=lambda i=i: results.append(
                    httpx.post(
                        base + "/v1/chat/completions",
                        json={"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 4, "min_tokens": 4},
                        timeout=120,
                    )
                )
            )
            for i in range(3)
        ]
        for t in threads:
            t.start()
        assert _wait(lambda: engine.queue_depth == 3)
        for t in [blocker, *threads]:
            t.join(120)
    finally:
        engine.config = config
    assert [r.status_code for r in results] == [200] * 4
    # two batches: the blocker alone, then the three waiting requests together
    assert metrics.value("sarvlm_batch_size_count") - count0 == 2
    assert metrics.value("sarvlm_batch_size_sum") - sum0 == 4
    # occupancy counters: the blocker computed 120 row-steps for its 120 tokens; the batch of three
    # at most 3 rows x 4 steps, at least one row-step per token
    # the engine counts a batch's tokens after its last row has answered: let the counters settle
    assert _wait(
        lambda: (
            metrics.value("sarvlm_completion_tokens_total") - tokens0 >= 120 + 3 * 4
            and metrics.value("sarvlm_batch_row_steps_total") - steps0 >= 120 + 3 * 4
        ),
        timeout=30,
    )
    tokens = metrics.value("sarvlm_completion_tokens_total") - tokens0
    row_steps = metrics.value("sarvlm_batch_row_steps_total") - steps0
    assert 120 + 3 <= tokens <= row_steps <= 120 + 3 * 4


def test_a_qwen3_vl_model_serves_the_same_api(served):
    from sarvlm.models.loading import load_model

    model, processor = load_model("tiny-qwen3-vl")
    config = ServeConfig(model_id="q3", priors_source=f"aef-cog:{served['root'] / 'aef'}")
    with running_server(create_app(model, processor, config)) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=120)
        resp = client.chat.completions.create(
            model="q3",
            messages=image_message(data_url(served["tif"], "image/tiff")),
            max_tokens=5,
            extra_body={"min_tokens": 5},
        )
    assert resp.usage.completion_tokens == 5 and resp.choices[0].finish_reason == "length"
    assert resp.model_extra["sarvlm"]["prior"]["used"] is True


def test_remote_image_urls_only_with_allow_remote_images(served, tmp_path):
    import functools
    import http.server

    (tmp_path / "scene.png").write_bytes(png_bytes(64, 48))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as files:
        threading.Thread(target=files.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{files.server_address[1]}/scene.png"
        config = ServeConfig(model_id="remote", allow_remote_images=True, limits=LIMITS)
        try:
            with running_server(create_app(served["model"], served["processor"], config)) as base:
                ok = httpx.post(base + "/v1/chat/completions", json={"messages": image_message(url)}, timeout=60)
                missing = httpx.post(
                    base + "/v1/chat/completions", json={"messages": image_message(url + ".nope")}, timeout=60
                )
        finally:
            files.shutdown()
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == ANSWER
    assert ok.json()["sarvlm"]["images"][0]["width"] == 64
    assert "HTTP 404" in _error(missing, 400)["message"]


def test_annotate_uses_sarvlm_serve_as_its_openai_endpoint(served, tmp_path):
    """`sarvlm annotate` (openai SDK client) talks to `sarvlm serve` (OpenAI-compatible server) end to end."""
    import json

    from sarvlm.cli.main import main as cli_main
    from sarvlm.synth.world import generate_world

    generate_world(tmp_path / "world", scenes=2, seed=0, size=64)
    before = httpx.get(served["base"] + "/metrics").text
    out = tmp_path / "annotated.jsonl"
    code = cli_main(
        [
            "annotate",
            str(tmp_path / "world" / "samples.jsonl"),
            "--out",
            str(out),
            "--prompt",
            "geovl",
            "--endpoint",
            served["base"] + "/v1",
            "--model",
            "tiny-taught",
            "--response-format",
            "none",
            "--max-tokens",
            "16",
            "--max-retries",
            "0",
        ]
    )
    assert code == 0 and out.exists()
    report = json.loads((tmp_path / "annotated_annotate" / "report.json").read_text())
    # Every record went to the server and came back with a status: the tiny model cannot write the
    # 8-field JSON, so its replies are counted (unparsable or conflicting), never lost or fatal.
    assert sum(report["status"].values()) == 2
    assert report["status"].get("failed", 0) == 0 and report["requests_sent"] == 2
    after = httpx.get(served["base"] + "/metrics").text
    assert before != after  # the server counted the requests
