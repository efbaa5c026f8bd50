"""CPU time of reading one endpoint reply: the typed parse (`endpoint/replies.py`) against the unchecked read it
replaced (orjson and `dict.get`, which crashed on a body of another shape), on the bodies the reward path gets.

    PYTHONPATH=src python benchmarks/reply_parse.py [--repeat 5]

Each row times the whole read, from the body's bytes to the text and the token log-probabilities the client
returns (and the usage counts), best of `--repeat` runs: a hard verdict (chat, no log-probabilities), a soft
verdict (/completions, one token with 20 alternatives), a soft verdict via chat (8 tokens x 20) and a judge that
explains first via chat (1024 tokens x 20).
"""

from __future__ import annotations

import argparse
import timeit
from typing import Any

import orjson
from fake_judge_server import reply  # a sibling script: the fake judge's own replies

from writing_rl.endpoint import replies


def unchecked_chat(raw: bytes) -> tuple[str, list, int]:
    """The client's read before the typed parse (endpoint/client.py at 7726e3a)."""
    body = orjson.loads(raw)
    if not isinstance(body, dict) or not body.get("choices"):
        raise ValueError("no choices in response")
    choice = body["choices"][0]
    text = (choice.get("message") or {}).get("content")
    if not isinstance(text, str):
        raise ValueError("no text")
    tokens = []
    for item in (choice.get("logprobs") or {}).get("content") or []:
        top = {t["token"]: t["logprob"] for t in item.get("top_logprobs") or []}
        tokens.append((item.get("token", ""), top))
    usage = body.get("usage") or {}
    return text, tokens, int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)


def unchecked_completion(raw: bytes) -> tuple[str, list, int]:
    body = orjson.loads(raw)
    if not isinstance(body, dict) or not body.get("choices"):
        raise ValueError("no choices in response")
    choice = body["choices"][0]
    text = choice.get("text")
    if not isinstance(text, str):
        raise ValueError("no text")
    lp = choice.get("logprobs") or {}
    tokens = [(t, dict(top or {})) for t, top in zip(lp.get("tokens") or [], lp.get("top_logprobs") or [])]
    usage = body.get("usage") or {}
    return text, tokens, int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)


def typed_chat(raw: bytes, shape: replies.Shape) -> tuple[str, list, int]:
    """What `OpenAICompatClient.chat` and `post` do with a body now."""
    body = replies.read_reply(raw, shape)
    choice = body["choices"][0]
    tokens = [
        (item.get("token", ""), {t["token"]: t["logprob"] for t in item.get("top_logprobs") or ()})
        for item in (choice.get("logprobs") or {}).get("content") or ()
    ]
    usage = body.get("usage") or {}
    return (
        choice["message"]["content"],
        tokens,
        (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0),
    )


def typed_completion(raw: bytes, shape: replies.Shape) -> tuple[str, list, int]:
    choice = (body := replies.read_reply(raw, shape))["choices"][0]
    lp = choice.get("logprobs") or {}
    tokens = [(t, top or {}) for t, top in zip(lp.get("tokens") or (), lp.get("top_logprobs") or ())]
    usage = body.get("usage") or {}
    return choice["text"], tokens, (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)


def chat_with_logprobs(tokens: int, alternatives: int) -> bytes:
    """A vLLM-style chat reply with log-probabilities (its `bytes` fields included, as vLLM sends them)."""
    content = [
        {
            "token": f"tok{i}",
            "logprob": -0.5,
            "bytes": [116, 111, 107],
            "top_logprobs": [{"token": f"alt{j}", "logprob": -0.1 * j, "bytes": [97]} for j in range(alternatives)],
        }
        for i in range(tokens)
    ]
    message = {"role": "assistant", "content": "Answer B covers the task more fully.\n[[B]]", "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": {"content": content}, "finish_reason": "stop"}
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "judge"}
    return orjson.dumps({**body, "choices": [choice], "usage": {"prompt_tokens": 900, "completion_tokens": tokens}})


def best(read, raw: bytes, number: int, repeat: int) -> float:
    """Seconds per read, the best of `repeat` runs of `number` reads."""
    return min(timeit.repeat(lambda: read(raw), number=number, repeat=repeat)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    prompt = "<<<ANSWER A 0123456789abcdef>>>short<<<END ANSWER A 0123456789abcdef>>>"
    prompt += "<<<ANSWER B 0123456789abcdef>>>the longer one<<<END ANSWER B 0123456789abcdef>>>"
    hard = orjson.dumps(reply("/v1/chat/completions", {"messages": [{"content": prompt}]}))
    soft = orjson.dumps(reply("/v1/completions", {"prompt": prompt}))
    rows = [
        ("hard verdict (chat)", hard, unchecked_chat, lambda raw: typed_chat(raw, replies.CHAT), 20_000),
        (
            "soft verdict (/completions, 1 x 20)",
            soft,
            unchecked_completion,
            lambda raw: typed_completion(raw, replies.COMPLETION_LOGPROBS),
            20_000,
        ),
        (
            "soft verdict via chat (8 x 20)",
            chat_with_logprobs(8, 20),
            unchecked_chat,
            lambda raw: typed_chat(raw, replies.CHAT_LOGPROBS),
            2_000,
        ),
        (
            "reason first via chat (1024 x 20)",
            chat_with_logprobs(1024, 20),
            unchecked_chat,
            lambda raw: typed_chat(raw, replies.CHAT_LOGPROBS),
            20,
        ),
    ]
    print("| reply | bytes | unchecked read | typed parse | difference |\n| --- | --- | --- | --- | --- |")
    for name, raw, old, new, number in rows:
        if old(raw) != new(raw):
            raise SystemExit(f"{name}: the two reads differ")
        before, after = (best(f, raw, number, args.repeat) for f in (old, new))
        print(
            f"| {name} | {len(raw):,} | {before * 1e6:.1f} µs | {after * 1e6:.1f} µs | "
            f"{(after - before) * 1e6:+.1f} µs ({after / before - 1:+.0%}) |"
        )


if __name__ == "__main__":
    main()
