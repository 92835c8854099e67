"""A real OpenAI-compatible chat-completions server on 127.0.0.1 (random port) with scripted replies.

``script(body, n)`` gets the request's JSON body and its 1-based number and returns ``(status, payload)``
or ``(status, payload, delay_s)``: ``payload`` is a str (sent as the assistant's content in a normal
completion), a dict (sent as the JSON body as it is) or bytes (sent raw). Used by the annotation tests
and the benchmark; the ``openai`` SDK talks to it over HTTP like to any server.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def completion(content: str, model: str, n: int = 1, finish: str = "stop", usage: tuple[int, int] = (100, 20)) -> dict:
    return {
        "id": f"c{n}",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


class FakeOpenAI:
    def __init__(self, script):
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stall)

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    n = len(server.requests)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    out = server.script(body, n)
                    status, payload = out[0], out[1]
                    if len(out) > 2 and out[2]:
                        time.sleep(out[2])
                    if isinstance(payload, str):
                        data = json.dumps(completion(payload, body.get("model", "m"), n)).encode()
                    elif isinstance(payload, bytes):
                        data = payload
                    else:
                        data = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that gave up (timeout test) is not an error of the server

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def error(status: int, message: str, kind: str = "error") -> tuple[int, dict]:
    return status, {"error": {"message": message, "type": kind}}
