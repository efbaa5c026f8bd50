"""A loopback OpenAI-compatible judge that answers after a fixed latency, for throughput benchmarks.

Run as its own process (a real judge is one), it prints `PORT <n>` once listening and stops when its
standard input closes (its parent exited) or after `--max-seconds`. It reads the two answers from
the judge prompt and prefers the longer one, so a benchmark can check that every verdict it gets
back belongs to the prompt it sent:
- `POST /v1/chat/completions`: "...\n[[A]]" or "[[B]]" (hard verdicts);
- `POST /v1/completions`: one token with top log-probabilities for A, B and C (soft verdicts);
- `GET /v1/models`: one model with a context length, so the judge fits prompts as against vLLM.

A minimal HTTP/1.1 server on asyncio streams with keep-alive: it costs far less per request than
the client under test, so the numbers measure the client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator

MODELS = json.dumps({"data": [{"id": "fake-judge", "max_model_len": 32768}]}).encode()


def answer_lengths(prompt: str) -> tuple[int, int]:
    """Characters of answer A and answer B between the judge prompt's last answer markers."""
    lengths = []
    for letter in "AB":
        start = prompt.rfind(f"<<<ANSWER {letter} ")
        end = prompt.rfind(f"<<<END ANSWER {letter} ")
        lengths.append(max(0, end - start))
    return lengths[0], lengths[1]


def reply(path: str, body: dict) -> dict:
    if path.endswith("/chat/completions"):
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    else:
        prompt = str(body.get("prompt", ""))
    a, b = answer_lengths(prompt)
    better = "A" if a > b else "B" if b > a else "C"
    if path.endswith("/chat/completions"):
        message = {"role": "assistant", "content": f"Answer {better} covers the task more fully.\n[[{better}]]"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
    else:
        top = {v: (-0.1 if v == better else -3.0) for v in "ABC"}
        choice = {"index": 0, "text": better, "logprobs": {"tokens": [better], "top_logprobs": [top]}}
    return {"choices": [choice], "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 1}}


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            if method == "GET":
                payload = MODELS
            else:
                await asyncio.sleep(latency)
                payload = json.dumps(reply(path, json.loads(body or b"{}"))).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
                + payload
            )
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(latency: float, max_seconds: float) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, latency), "127.0.0.1", 0, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    loop, parent_gone = asyncio.get_running_loop(), asyncio.Event()

    def watch_stdin() -> None:  # read() returns at EOF: the parent closed the pipe or exited
        sys.stdin.read()
        loop.call_soon_threadsafe(parent_gone.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    async with server:
        await asyncio.wait_for(parent_gone.wait(), timeout=max_seconds)


@contextlib.contextmanager
def fake_judge(latency: float) -> Iterator[str]:
    """Start the fake judge in its own process and yield its base URL; it exits when we close its stdin."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--latency", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("PORT "):
            raise SystemExit(f"the fake judge did not start (it printed {line!r})")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, required=True, help="seconds before each completion is answered")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="stop after this long in any case")
    args = parser.parse_args()
    with contextlib.suppress(TimeoutError, KeyboardInterrupt):
        asyncio.run(serve(args.latency, args.max_seconds))


if __name__ == "__main__":
    main()
