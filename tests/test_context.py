"""Answers that do not fit the judge's context: cut in the middle with a visible marker, or unknown with
reason `context_overflow`; the window comes from the config, the server's /models, or its overflow error."""

import json
import re
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer, chat_reply

from writing_rl.endpoint import EndpointConfig
from writing_rl.judge import JudgeConfig, PairwiseJudge, Verdict
from writing_rl.judge.context import CUT_MARKER, ESTIMATE, estimate_tokens, fit_pair, load_counter
from writing_rl.reasons import Reason, window_from_message
from writing_rl.reward import PairItem, PairwiseReward

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]
HEAD_A, TAIL_A = "Opening of answer A.", "Closing of answer A."
HEAD_B, TAIL_B = "Opening of answer B.", "Closing of answer B."


def long_answer(head: str, tail: str, words: int) -> str:
    return head + " " + " ".join(f"word{i % 97}" for i in range(words)) + " " + tail


def endpoint(server: FakeOpenAIServer) -> EndpointConfig:
    return EndpointConfig(base_url=server.base_url, model="fake-judge", max_retries=0, timeout_s=30)


def prompt_tokens(body: dict) -> int:
    return sum(estimate_tokens(m["content"]) for m in body["messages"])


def test_the_estimate_is_never_below_the_embedded_judges_own_count():
    """SmolLM2's tokenizer (small, English-centred: a hard case for Chinese) on every shipped and public text."""
    pytest.importorskip("llama_cpp")
    from writing_rl.server import embedded_gguf_path

    exact = load_counter(str(embedded_gguf_path()))
    assert exact.exact and not ESTIMATE.exact
    files = [*SHARED.glob("*.jsonl"), REPO / "src" / "writing_rl" / "assets" / "demo_samples.jsonl"]
    texts = []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [row.get("prompt") or row.get("query"), *row.get("references", [])]
    texts = [t for t in texts if isinstance(t, str)]
    assert len(texts) > 300
    over = [t[:60] for t in texts if exact.count(t) > estimate_tokens(t)]
    assert over == []


def test_the_estimate_is_the_sum_over_runs_that_cutting_uses():
    """`estimate_tokens` is computed in bulk; `_estimated_cut` walks the runs one by one. They must agree, or a
    cut answer could still overflow."""
    import random

    from writing_rl.judge.context import _RUN, _run_tokens

    rng = random.Random(7)
    alphabet = "abcXYZ  \t\n\r09.,!é中😀\u200b-_'"
    texts = [
        "",
        " ",
        "  a",
        "a  ",
        "\t\t\n",
        "word",
        "one  two   three",
        *("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(2000)),
    ]
    for text in texts:
        assert estimate_tokens(text) == sum(_run_tokens(m.group()) for m in _RUN.finditer(text)), repr(text)


def test_fit_pair_keeps_short_answers_whole_and_cuts_long_ones_in_the_middle():
    short, long = "A short answer.", long_answer(HEAD_B, TAIL_B, 2000)
    assert fit_pair(short, "also short", 100, ESTIMATE) == (short, "also short", (0, 0))
    a, b, cut = fit_pair(short, long, 600, ESTIMATE)
    assert a == short and cut[0] == 0 and cut[1] > 0
    assert b.startswith(HEAD_B) and b.endswith(TAIL_B) and "tokens cut here to fit the context window" in b
    assert estimate_tokens(a) + estimate_tokens(b) <= 600
    a, b, cut = fit_pair(long_answer(HEAD_A, TAIL_A, 3000), long, 600, ESTIMATE)
    assert min(cut) > 0 and estimate_tokens(a) + estimate_tokens(b) <= 600
    assert fit_pair(long, long, 40, ESTIMATE) is None  # no room worth judging in


def test_cut_marker_survives_sanitising():
    from writing_rl.judge.sanitize import sanitize

    marker = CUT_MARKER.format(n=1234)
    assert sanitize(marker) == marker


async def test_long_answers_are_cut_to_the_configured_window_and_the_cut_is_recorded():
    seen = {}

    def behaviour(path, body, n):
        seen["body"] = body
        return chat_reply("B reads better.\n[[B]]")

    a, b = long_answer(HEAD_A, TAIL_A, 3000), long_answer(HEAD_B, TAIL_B, 3000)
    with FakeOpenAIServer(behaviour) as server:
        judge = PairwiseJudge(JudgeConfig(endpoint=endpoint(server), context_window=2048, max_tokens=256))
        j = await judge.judge("Write a long essay.", a, b)
        await judge.aclose()
    assert j.verdict is Verdict.B and j.truncated is not None and min(j.truncated) > 0
    user = seen["body"]["messages"][1]["content"]
    assert user.count("tokens cut here to fit the context window") == 2
    for text in (HEAD_A, TAIL_A, HEAD_B, TAIL_B):  # the head and tail of each answer are kept
        assert text in user
    assert prompt_tokens(seen["body"]) + 256 <= 2048
    assert judge.stats.truncated == 1


async def test_overflow_unknown_spends_no_call_and_names_the_reason():
    with FakeOpenAIServer(lambda p, b, n: chat_reply("[[A]]")) as server:
        judge = PairwiseJudge(JudgeConfig(endpoint=endpoint(server), context_window=2048, overflow="unknown"))
        reward = PairwiseReward(judge)
        [r] = await reward.score_batch([PairItem("q", long_answer("x", "y", 3000), long_answer("u", "v", 3000))])
        await judge.aclose()
        assert server.calls() == 0
    assert r.reward is None and r.missing_reason is Reason.CONTEXT_OVERFLOW
    assert "context window (2048)" in r.missing_detail


async def test_the_window_the_server_reports_is_used():
    models = {"data": [{"id": "other", "max_model_len": 99999}, {"id": "fake-judge", "max_model_len": 2048}]}
    with FakeOpenAIServer(lambda p, b, n: chat_reply("[[A]]"), models=models) as server:
        judge = PairwiseJudge(JudgeConfig(endpoint=endpoint(server), max_tokens=256))
        j = await judge.judge("q", long_answer(HEAD_A, TAIL_A, 3000), "short")
        assert await judge.context_window() == 2048
        await judge.aclose()
        assert prompt_tokens(server.requests[0][1]) + 256 <= 2048
    assert j.verdict is Verdict.A and j.truncated[0] > 0 and j.truncated[1] == 0


async def test_the_window_named_in_an_overflow_error_is_learned_and_the_call_repeated_once():
    """vLLM and llama.cpp answer an over-long prompt with a 400 naming their context length."""

    def behaviour(path, body, n):
        if prompt_tokens(body) + body["max_tokens"] > 2048:
            message = (
                f"This model's maximum context length is 2048 tokens. However, you requested {prompt_tokens(body)}"
            )
            return ("status", 400, message)
        return chat_reply("[[B]]")

    with FakeOpenAIServer(behaviour) as server:
        judge = PairwiseJudge(JudgeConfig(endpoint=endpoint(server), max_tokens=256))
        j = await judge.judge("q", long_answer(HEAD_A, TAIL_A, 3000), long_answer(HEAD_B, TAIL_B, 3000))
        again = await judge.judge("q2", long_answer(HEAD_A, TAIL_A, 3000), "short")
        await judge.aclose()
        assert server.calls() == 3  # the first pair twice (overflow, then cut), the second once (cut at once)
    assert j.verdict is Verdict.B and min(j.truncated) > 0
    assert again.verdict is Verdict.B and again.truncated[0] > 0


async def test_an_overflow_that_persists_is_unknown_with_its_reason():
    body = "This model's maximum context length is 100000 tokens, your request has too many tokens"
    with FakeOpenAIServer(lambda p, b, n: ("status", 400, body)) as server:
        judge = PairwiseJudge(JudgeConfig(endpoint=endpoint(server)))
        j = await judge.judge("q", "a", "b")
        await judge.aclose()
    assert j.verdict is Verdict.UNKNOWN and j.reason is Reason.CONTEXT_OVERFLOW and "HTTP 400" in j.error


@pytest.mark.parametrize(
    "message, window",
    [
        ("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens", 4096),
        ("Requested tokens (5000) exceed context window of 2048", 2048),
        ("'max_tokens' is too large: 1024. This model's maximum context length is 8192 tokens", 8192),
        ("Bad request: temperature must be positive", None),
    ],
)
def test_window_from_server_messages(message, window):
    assert window_from_message(message) == window


def test_an_exact_tokenizer_cuts_by_tokens():
    pytest.importorskip("llama_cpp")
    from writing_rl.server import embedded_gguf_path

    counter = load_counter(str(embedded_gguf_path()))
    text = long_answer(HEAD_A, TAIL_A, 2000)
    a, b, cut = fit_pair(text, "short", 500, counter)
    assert counter.count(a) + counter.count(b) <= 500 and cut[0] > 0
    assert a.startswith(HEAD_A) and a.endswith(TAIL_A)
    assert re.search(r"\[… \d+ tokens cut here", a)
