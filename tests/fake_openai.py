"""A scripted OpenAI-compatible server on loopback, for fault injection.

A real HTTP server in a thread: the client under test goes through its whole network path. Each
request is handed to `behaviour(path, body, n)` (n = 1-based request count), which returns one of:
- ("json", dict)            a normal response
- ("status", code[, text])  an HTTP error (with `text` as its error message)
- ("garbage", text)         a 200 with a non-JSON body (text, or bytes as they are)
- ("cut", text)             a 200 that promises more bytes than `text` and closes the connection after it
- ("sleep", seconds, reply) wait (to trip client timeouts), then send `reply`

`GET /models` answers `models` (by default one model and no context length, like llama-cpp-python), after
`models_delay_s`.
With `keep_alive=True` connections are kept alive (HTTP/1.1), as real servers do; `client_ports`
holds every client port seen, so a test can count the connections a client opened. `peak_in_flight`
is the most POSTs it was answering at once (all clients together).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Behaviour = Callable[[str, dict[str, Any], int], tuple]


def fenced_answers(prompt: str) -> tuple[str, str]:
    """(answer A, answer B) as a judge prompt fences them; each answer's fence has an id of its own.
    The last markers count: the first ones may be in the rules that describe the fences."""
    ids = dict(re.findall(r"<<<ANSWER ([AB]) (\w+)>>>", prompt))
    a = prompt.rsplit(f"<<<ANSWER A {ids['A']}>>>", 1)[1].split(f"<<<END ANSWER A {ids['A']}>>>", 1)[0]
    b = prompt.rsplit(f"<<<ANSWER B {ids['B']}>>>", 1)[1].split(f"<<<END ANSWER B {ids['B']}>>>", 1)[0]
    return a, b


def chat_reply(text: str, top_logprobs: list[tuple[str, dict[str, float]]] | None = None) -> tuple:
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if top_logprobs is not None:
        choice["logprobs"] = {
            "content": [
                {
                    "token": tok,
                    "logprob": top.get(tok, -1.0),
                    "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top.items()],
                }
                for tok, top in top_logprobs
            ]
        }
    return ("json", {"choices": [choice], "usage": {"prompt_tokens": 10, "completion_tokens": 5}})


def completion_reply(text: str, top: dict[str, float]) -> tuple:
    return (
        "json",
        {
            "choices": [
                {
                    "index": 0,
                    "text": text,
                    "logprobs": {"tokens": [text], "top_logprobs": [top]},
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1},
        },
    )


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 resets connections a concurrent client opens at once


class FakeOpenAIServer:
    def __init__(
        self,
        behaviour: Behaviour,
        models: dict[str, Any] | None = None,
        keep_alive: bool = False,
        port: int = 0,
        models_delay_s: float = 0.0,
    ):
        self.behaviour = behaviour
        models_body = json.dumps(models or {"data": [{"id": "fake"}]}).encode()
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.client_ports: set[int] = set()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    outer.requests.append((self.path, body, dict(self.headers)))
                    outer.client_ports.add(self.client_address[1])
                    n = len(outer.requests)
                    outer.in_flight += 1
                    outer.peak_in_flight = max(outer.peak_in_flight, outer.in_flight)
                try:
                    action = outer.behaviour(self.path, body, n)
                    if action[0] == "sleep":
                        time.sleep(action[1])
                        action = action[2]
                finally:
                    # counted out before the answer leaves, so a client never sees more than it sent
                    with outer._lock:
                        outer.in_flight -= 1
                try:
                    if action[0] == "json":
                        self._send(200, json.dumps(action[1]).encode())
                    elif action[0] == "status":
                        message = action[2] if len(action) > 2 else "scripted failure"
                        self._send(action[1], json.dumps({"error": message}).encode())
                    elif action[0] == "garbage":
                        self._send(200, action[1] if isinstance(action[1], bytes) else action[1].encode())
                    elif action[0] == "cut":
                        self._send(200, action[1].encode(), length=len(action[1].encode()) + 100)
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                time.sleep(models_delay_s)
                self._send(200, models_body)

            def _send(self, code: int, payload: bytes, length: int | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload) if length is None else length))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = _Server(("127.0.0.1", port), Handler)  # a given port: a server restarted where it was
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def calls(self, path_suffix: str = "") -> int:
        return sum(1 for p, _, _ in self.requests if p.endswith(path_suffix))

    def __enter__(self) -> FakeOpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
