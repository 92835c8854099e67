"""LLM judges against a fake OpenAI-compatible server on 127.0.0.1: retries, cache, resume,
unparsable replies, concurrency limit, five-dimension averaging, and the CLI path."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sarvlm.core.errors import SarvlmError
from sarvlm.eval.judges import (
    JudgeUnavailable,
    LLMJudge,
    five_dimension_scores,
    parse_binary,
    parse_five_dimensions,
    sarlang_binary_judgements,
)


class FakeServer:
    """Chat-completions endpoint whose reply is ``reply_fn(prompt, model)``; can fail the first requests."""

    def __init__(self, reply_fn, fail_first: int = 0, fail_status: int = 503, delay: float = 0.0):
        self.reply_fn, self.fail_first, self.fail_status, self.delay = reply_fn, fail_first, fail_status, delay
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    n = len(server.requests)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay)
                    if n <= server.fail_first:
                        self._send(server.fail_status, {"error": {"message": "overloaded", "type": "server_error"}})
                        return
                    content = server.reply_fn(body["messages"][0]["content"], body["model"])
                    self._send(
                        200,
                        {
                            "id": f"c{n}",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": content},
                                }
                            ],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                        },
                    )
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _send(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server_factory():
    servers = []

    def make(*a, **kw):
        s = FakeServer(*a, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def _match_reply(prompt, model):
    # "1" when the predicted answer repeats the ground truth's first word, else "0".
    gt = prompt.split("Ground Truth Answer: ")[1].split("\n")[0]
    pred = prompt.split("Predicted Answer: ")[1].split("\n")[0]
    return "1" if gt.split()[0] in pred else "0"


def test_strict_parsers():
    assert parse_binary("1") is True and parse_binary(" 0.\n") is False and parse_binary("'1'") is True
    assert parse_binary("1 because") is None and parse_binary("Yes") is None and parse_binary("") is None
    ok = parse_five_dimensions('```json\n{"FL": 18, "QR": 20, "GTA": 15, "MC": 17, "PID": 19}\n```')
    assert ok == {"FL": 18, "QR": 20, "GTA": 15, "MC": 17, "PID": 19}
    assert parse_five_dimensions('{"FL": 21, "QR": 20, "GTA": 15, "MC": 17, "PID": 19}') is None
    assert parse_five_dimensions('{"FL": 18, "QR": 20, "GTA": 15, "MC": 17}') is None
    assert parse_five_dimensions('Scores: {"FL": 18}') is None


def test_binary_judge_cache_and_temperature(server_factory, tmp_path):
    srv = server_factory(_match_reply)
    judge = LLMJudge("judge-a", base_url=srv.url, api_key="k", cache_dir=tmp_path / "cache", backoff=0.01)
    items = [("shape?", "oval", "an oval tank"), ("what?", "pond", "swimming pool"), ("what?", "river", "a river")]
    assert sarlang_binary_judgements(judge, items) == [True, False, True]
    # SARLANG-1M's request: max_tokens=100 and no temperature, as the released script sends it.
    assert len(srv.requests) == 3 and all("temperature" not in r and r["max_tokens"] == 100 for r in srv.requests)
    assert "Synonyms are also treated as a match" in srv.requests[0]["messages"][0]["content"]
    # Second run, new judge object (new process): everything from the disk cache.
    again = LLMJudge("judge-a", base_url=srv.url, api_key="k", cache_dir=tmp_path / "cache")
    assert sarlang_binary_judgements(again, items) == [True, False, True] and len(srv.requests) == 3
    # Another model at the same endpoint is a different cache key.
    other = LLMJudge("judge-b", base_url=srv.url, api_key="k", cache_dir=tmp_path / "cache")
    sarlang_binary_judgements(other, items[:1])
    assert len(srv.requests) == 4


def test_retries_with_backoff_then_success(server_factory, tmp_path):
    srv = server_factory(lambda p, m: "1", fail_first=2, fail_status=503)
    judge = LLMJudge("j", base_url=srv.url, api_key="k", max_retries=3, backoff=0.01)
    assert judge.complete("prompt") == "1" and judge.requests_made == 3 and len(srv.requests) == 3


def test_endpoint_down_gives_clear_error_and_resume(server_factory, tmp_path):
    srv = server_factory(lambda p, m: "1", fail_first=10**6, fail_status=500)
    cache = tmp_path / "cache"
    items = [("q", f"gt{i}", f"p{i}") for i in range(4)]
    down = LLMJudge("j", base_url=srv.url, api_key="k", cache_dir=cache, max_retries=1, backoff=0.01, concurrency=2)
    with pytest.raises(
        JudgeUnavailable, match=r"no reply after 2 attempts.*0 of 4 replies are cached.*rerun to resume"
    ):
        sarlang_binary_judgements(down, items)
    assert len(srv.requests) == 8  # 4 prompts x 2 attempts, bounded
    # The endpoint comes back for two prompts only: they are cached, the error says so.
    srv.fail_first = len(srv.requests)
    srv.reply_fn = lambda p, m: "1" if "gt0" in p or "gt1" in p else (_ for _ in ()).throw(RuntimeError())
    half = LLMJudge("j", base_url=srv.url, api_key="k", cache_dir=cache, max_retries=0, backoff=0.01)
    with pytest.raises(JudgeUnavailable, match="2 of 4 replies are cached"):
        sarlang_binary_judgements(half, items)
    n_before = len(srv.requests)
    srv.reply_fn = lambda p, m: "0"
    resumed = LLMJudge("j", base_url=srv.url, api_key="k", cache_dir=cache)
    assert sarlang_binary_judgements(resumed, items) == [True, True, False, False]
    assert len(srv.requests) == n_before + 2  # only the two missing prompts were asked again


def test_client_error_is_not_retried(server_factory):
    srv = server_factory(lambda p, m: "1", fail_first=10, fail_status=401)
    judge = LLMJudge("j", base_url=srv.url, api_key="bad", max_retries=3, backoff=0.01)
    with pytest.raises(SarvlmError, match="HTTP 401"):
        judge.complete("x")
    assert len(srv.requests) == 1


def test_concurrency_limit(server_factory):
    srv = server_factory(lambda p, m: "1", delay=0.05)
    judge = LLMJudge("j", base_url=srv.url, api_key="k", concurrency=3)
    judge.complete_many([f"p{i}" for i in range(12)])
    assert srv.max_in_flight == 3 and len(srv.requests) == 12


def test_five_dimensions_several_judges_unparsable_counted_not_zero(server_factory):
    def reply(prompt, model):
        if model == "strict-judge":
            return json.dumps({"FL": 18, "QR": 16, "GTA": 14, "MC": 15, "PID": 13})
        if "broken" in prompt:
            return "I would give it a 7/10"
        return json.dumps({"FL": 20, "QR": 20, "GTA": 20, "MC": 20, "PID": 20})

    srv = server_factory(reply)
    judges = [LLMJudge(m, base_url=srv.url, api_key="k", max_tokens=128) for m in ("strict-judge", "kind-judge")]
    items = [
        {"question": "Describe.", "reference": "A crater.", "answer": "A crater."},
        {"question": "Describe.", "reference": "A rille.", "answer": "broken answer"},
    ]
    res = five_dimension_scores(judges, items)
    strict, kind = res["judges"]["strict-judge"], res["judges"]["kind-judge"]
    assert strict["overall"] == 76 and strict["unparsable"] == 0
    assert kind["unparsable"] == 1 and kind["scored"] == 1 and kind["FL"] == 20  # not dragged to 0 by the bad reply
    assert res["average"]["overall"] == pytest.approx((76 + 100) / 2) and res["average"]["FL"] == 19


def test_cli_eval_with_judge(server_factory, tmp_path, monkeypatch):
    from sarvlm.cli.main import main
    from sarvlm.core.example import InstructionExample, Message, Prediction, write_jsonl

    srv = server_factory(_match_reply)
    monkeypatch.setenv("SARVLM_JUDGE_API_KEY", "k")
    ex = [
        InstructionExample(
            id=f"v{i}",
            sample_id="s",
            task="vqa",
            images=[],
            answer=a,
            messages=[Message(role="user", content="What is it?"), Message(role="assistant", content=a)],
        )
        for i, a in enumerate(["pond", "oval", "yes"])
    ]
    preds = [
        Prediction(id="v0", prediction="a pond"),
        Prediction(id="v1", prediction="circular"),
        Prediction(id="v2", prediction="yes"),
    ]
    write_jsonl(tmp_path / "t.jsonl", ex)
    write_jsonl(tmp_path / "p.jsonl", preds)
    rc = main(
        [
            "eval",
            str(tmp_path / "p.jsonl"),
            "--data",
            str(tmp_path / "t.jsonl"),
            "--out",
            str(tmp_path / "rep"),
            "--judge",
            f"gpt-judge@{srv.url}",
            "--vqa-protocol",
            "sarlang1m",
            "--no-plots",
        ]
    )
    assert rc == 0
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    vqa = m["tasks"]["vqa"]
    # "a pond" contains "pond" (substring rule), "yes" exact, "circular" goes to the judge which says 0.
    assert vqa["judged"] == 1 and vqa["accuracy"] == pytest.approx(2 / 3) and len(srv.requests) == 1
    assert (tmp_path / "rep.judge-cache").is_dir()


def test_evaluate_five_dimensions_table(server_factory, tmp_path):
    from sarvlm.core.example import InstructionExample, Message, Prediction, write_jsonl
    from sarvlm.eval import evaluate
    from sarvlm.eval.judges import judges_from_spec

    srv = server_factory(lambda p, m: json.dumps({"FL": 18, "QR": 17, "GTA": 16, "MC": 15, "PID": 14}))
    ex = [
        InstructionExample(
            id=f"c{i}",
            sample_id="s",
            task="caption",
            images=[],
            answer=a,
            messages=[Message(role="user", content="<image>Describe."), Message(role="assistant", content=a)],
        )
        for i, a in enumerate(["a crater with ejecta", "a sinuous rille"])
    ]
    write_jsonl(tmp_path / "t.jsonl", ex)
    write_jsonl(
        tmp_path / "p.jsonl", [Prediction(id="c0", prediction="a crater"), Prediction(id="c1", prediction="a rille")]
    )
    judges = judges_from_spec([f"j1@{srv.url}", f"j2@{srv.url}"], cache_dir=tmp_path / "cache", api_key="k")
    m = evaluate(
        tmp_path / "p.jsonl", tmp_path / "t.jsonl", tmp_path / "rep", judge=judges, five_dimensions=True, plots=False
    )
    assert m["judges"]["caption"]["average"]["overall"] == 80
    assert "LunarOS-Mini Table I" in (tmp_path / "rep" / "report.md").read_text() and len(srv.requests) == 4
