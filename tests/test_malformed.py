"""Malformed replies are unknowns: past the HTTP status, a failure is an unknown, never an exception.

- every endpoint reply is read against its shape (`endpoint/replies.py`); any other body is retried, then an
  EndpointError with reason `bad_response` and an excerpt of the body;
- the judge and the critic turn any unexpected exception of one call into an unknown with reason `internal`,
  logged once with its traceback at debug level; the rest of the batch is scored;
- a batch's workers run in one TaskGroup: an exception that escapes one cancels the others;
- the parsers of judge and critic replies are bounded on adversarial input;
- training through a judge that serves 40% malformed replies finishes, and scores the rest.
"""

import asyncio
import json
import logging
import math
import random
import re
import threading
import time
from collections import Counter

import pytest
from fake_openai import FakeOpenAIServer, chat_reply, completion_reply

from writing_rl import writingbench
from writing_rl.critic import CriticConfig, PointwiseCritic, score_distribution
from writing_rl.data import Criterion
from writing_rl.endpoint import EndpointConfig, EndpointError, OpenAICompatClient, replies
from writing_rl.endpoint.replies import MalformedReply, read_reply
from writing_rl.eval import longbench_write as lbw
from writing_rl.judge import JudgeConfig, Judgement, PairwiseJudge, Verdict
from writing_rl.judge.pairwise import verdict_position_top
from writing_rl.judge.verdict import cut_fences, fence_pattern, parse_verdict
from writing_rl.reasons import Reason
from writing_rl.reward import PairItem, PairwiseReward

CHOICE = {"index": 0, "message": {"role": "assistant", "content": "fine\n[[B]]"}, "finish_reason": "stop"}
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def chat(choice: dict | None = None, **body) -> tuple:
    return ("json", {"id": "c1", "object": "chat.completion", "choices": [choice or CHOICE], "usage": USAGE, **body})


def chat_logprobs(logprobs) -> tuple:
    return chat({**CHOICE, "logprobs": logprobs})


def completion(choice: dict) -> tuple:
    return ("json", {"id": "c1", "object": "text_completion", "choices": [choice], "usage": USAGE})


def completion_logprobs(logprobs) -> tuple:
    return completion({"index": 0, "text": "B", "logprobs": logprobs})


# Each: (how it is asked for, the body served). "chat" and "completion" ask without log-probabilities, the
# "_logprobs" kinds with them. Every one must end as EndpointError(bad_response) after its retries.
MALFORMED = {
    "choices not a list": ("chat", ("json", {"choices": {"0": "x"}})),
    "choices a string": ("chat", ("json", {"choices": "x"})),
    "choice not an object": ("chat", ("json", {"choices": ["x"]})),
    "null message": ("chat", ("json", {"choices": [{"message": None}]})),
    "no message": ("chat", ("json", {"choices": [{"text": "[[B]]"}]})),
    "content not a string": ("chat", ("json", {"choices": [{"message": {"content": 7}}]})),
    "null content": ("chat", ("json", {"choices": [{"message": {"role": "assistant", "content": None}}]})),
    "empty choices": ("chat", ("json", {"choices": []})),
    "no choices": ("chat", ("json", {"unexpected": True})),
    "a JSON array": ("chat", ("json", [{"choices": [CHOICE]}])),
    "a JSON string": ("chat", ("json", "[[B]]")),
    "JSON null": ("chat", ("json", None)),
    "an HTML page": ("chat", ("garbage", "<html><body><h1>502 Bad Gateway</h1></body></html>")),
    "a truncated body": (
        "chat",
        ("garbage", '{"choices": [{"index": 0, "message": {"role": "assistant", "content": "[[B'),
    ),
    "an empty body": ("chat", ("garbage", "")),
    "nested 100,000 deep": ("chat", ("garbage", "[" * 100_000)),
    "not UTF-8": ("chat", ("garbage", b'{"choices": [{"message": {"content": "\xff\xfe"}}]}')),
    "usage not an object": ("chat", chat(usage="lots")),
    "usage a list": ("chat", chat(usage=[10, 5])),
    "usage counts not numbers": ("chat", chat(usage={"prompt_tokens": "ten", "completion_tokens": 5})),
    "usage counts negative": ("chat", chat(usage={"prompt_tokens": -10})),
    "chat logprobs not an object": ("chat_logprobs", chat_logprobs("A")),
    "chat logprobs content not a list": ("chat_logprobs", chat_logprobs({"content": {"token": "A"}})),
    "chat logprobs item not an object": ("chat_logprobs", chat_logprobs({"content": ["A"]})),
    "chat logprobs token not a string": ("chat_logprobs", chat_logprobs({"content": [{"token": 5}]})),
    "chat top_logprobs not a list": (
        "chat_logprobs",
        chat_logprobs({"content": [{"token": "A", "top_logprobs": {"A": -0.1}}]}),
    ),
    "chat top_logprobs item not an object": (
        "chat_logprobs",
        chat_logprobs({"content": [{"token": "A", "top_logprobs": [["A", -0.1]]}]}),
    ),
    "chat top_logprobs item without token": (
        "chat_logprobs",
        chat_logprobs({"content": [{"token": "A", "top_logprobs": [{"logprob": -0.1}]}]}),
    ),
    "chat top logprob a string": (
        "chat_logprobs",
        chat_logprobs({"content": [{"token": "A", "top_logprobs": [{"token": "A", "logprob": "-0.1"}]}]}),
    ),
    "chat top logprob null": (
        "chat_logprobs",
        chat_logprobs({"content": [{"token": "A", "top_logprobs": [{"token": "A", "logprob": None}]}]}),
    ),
    "completion without text": ("completion", completion({"index": 0, "finish_reason": "length"})),
    "completion text not a string": ("completion", completion({"index": 0, "text": ["B"]})),
    "completion choice not an object": ("completion", ("json", {"choices": ["B"]})),
    "completion logprobs not an object": ("completion_logprobs", completion_logprobs(["B"])),
    "completion tokens not a list": (
        "completion_logprobs",
        completion_logprobs({"tokens": "B", "top_logprobs": [{"B": -0.1}]}),
    ),
    "completion token not a string": (
        "completion_logprobs",
        completion_logprobs({"tokens": [1], "top_logprobs": [{"B": -0.1}]}),
    ),
    "completion top_logprobs not a list": (
        "completion_logprobs",
        completion_logprobs({"tokens": ["B"], "top_logprobs": {"B": -0.1}}),
    ),
    "completion top_logprobs entry not an object": (
        "completion_logprobs",
        completion_logprobs({"tokens": ["B"], "top_logprobs": [[["B", -0.1]]]}),
    ),
    "completion top logprob not a number": (
        "completion_logprobs",
        completion_logprobs({"tokens": ["B"], "top_logprobs": [{"B": "high"}]}),
    ),
}

SHAPES = {
    "chat": replies.CHAT,
    "chat_logprobs": replies.CHAT_LOGPROBS,
    "completion": replies.COMPLETION,
    "completion_logprobs": replies.COMPLETION_LOGPROBS,
}


def raw_body(action: tuple) -> bytes:
    kind, payload = action
    if kind == "json":
        return json.dumps(payload).encode()
    return payload if isinstance(payload, bytes) else payload.encode()


def endpoint(server: FakeOpenAIServer, **kw) -> EndpointConfig:
    base = dict(base_url=server.base_url, model="fake-judge", timeout_s=5.0, backoff_initial_s=0.001)
    return EndpointConfig(**{**base, "backoff_max_s": 0.005, "max_retries": 2, **kw})


async def ask(client: OpenAICompatClient, kind: str, case: str = "which is better?"):
    """One call of `kind`; `case` is its whole prompt (the scripted server looks the reply up by it)."""
    if kind == "chat":
        return await client.chat([{"role": "user", "content": case}])
    if kind == "chat_logprobs":
        return await client.chat([{"role": "user", "content": case}], top_logprobs=5)
    if kind == "completion":
        return await client.complete(case)
    return await client.complete(case, top_logprobs=5)


def prompt_of(body: dict) -> str:
    return body["messages"][-1]["content"] if "messages" in body else body["prompt"]


@pytest.fixture(scope="module")
def scripted():
    """One server for the reply tests: the reply to a request is the one scripted for its prompt."""
    with FakeOpenAIServer(lambda p, b, n: {**MALFORMED, **VALID}[prompt_of(b)][1]) as server:
        yield server


def calls_for(server: FakeOpenAIServer, case: str) -> int:
    return sum(1 for _, body, _ in server.requests if prompt_of(body) == case)


# -- (a) the reply parse ------------------------------------------------------------------------


@pytest.mark.parametrize("name", MALFORMED)
def test_the_parse_refuses_each_malformed_body_naming_it(name):
    kind, action = MALFORMED[name]
    raw = raw_body(action)
    with pytest.raises(MalformedReply) as caught:
        read_reply(raw, SHAPES[kind])
    message = str(caught.value)
    assert repr(raw[:20].decode("utf-8", errors="replace"))[1:-1] in message  # an excerpt of the body
    assert len(message) < 600  # short, however long the body


@pytest.mark.parametrize("name", MALFORMED)
async def test_each_malformed_body_is_retried_then_bad_response(name, scripted):
    kind, _ = MALFORMED[name]
    client = OpenAICompatClient(endpoint(scripted))
    with pytest.raises(EndpointError) as caught:
        await ask(client, kind, name)
    await client.aclose()
    assert calls_for(scripted, name) == 3  # the first try and two retries
    assert caught.value.reason is Reason.BAD_RESPONSE
    assert "gave up after 3 attempts: malformed response" in str(caught.value)
    s = client.stats
    assert (s.requests, s.retries, s.failures) == (1, 2, 1)
    assert (s.prompt_tokens, s.completion_tokens, s.no_usage) == (0, 0, 0)  # nothing counted from a bad body


async def test_a_malformed_body_then_a_good_one_is_read_after_one_retry():
    bodies = iter([MALFORMED["choice not an object"][1], MALFORMED["usage not an object"][1], chat()])
    with FakeOpenAIServer(lambda p, b, n: next(bodies)) as server:
        client = OpenAICompatClient(endpoint(server))
        res = await client.chat([{"role": "user", "content": "q"}])
        await client.aclose()
    assert res.text == "fine\n[[B]]" and client.stats.retries == 2 and client.stats.failures == 0
    assert (client.stats.prompt_tokens, client.stats.completion_tokens) == (10, 5)


async def test_a_body_cut_short_on_the_wire_is_a_transport_failure():
    with FakeOpenAIServer(lambda p, b, n: ("cut", '{"choices": [{"message": {"content": "[[B]]"}}]}')) as server:
        client = OpenAICompatClient(endpoint(server, max_retries=1))
        with pytest.raises(EndpointError) as caught:
            await client.chat([{"role": "user", "content": "q"}])
        await client.aclose()
        assert server.calls() == 2
    assert caught.value.reason is Reason.TRANSPORT


TOPS = [("[[", {"[[": -0.01}), ("A", {"A": math.log(0.8), "B": math.log(0.2)}), ("]]", {"]]": -0.01})]
# Each: (how it is asked for, the body served, the text and token log-probabilities read, the usage counted as
# (prompt tokens, completion tokens, replies without usage)).
VALID = {
    "chat": ("chat", chat(), "fine\n[[B]]", [], (10, 5, 0)),
    "chat, logprobs not asked for but sent as garbage": (
        "chat",
        chat_logprobs("garbage"),
        "fine\n[[B]]",
        [],
        (10, 5, 0),
    ),
    "chat without usage": ("chat", ("json", {"choices": [CHOICE]}), "fine\n[[B]]", [], (0, 0, 1)),
    "chat, usage null": ("chat", chat(usage=None), "fine\n[[B]]", [], (0, 0, 1)),
    "chat, usage empty": ("chat", chat(usage={}), "fine\n[[B]]", [], (0, 0, 1)),
    "chat, usage counts as floats and nulls": (
        "chat",
        chat(usage={"prompt_tokens": 12.0, "completion_tokens": None}),
        "fine\n[[B]]",
        [],
        (12, 0, 0),
    ),
    "chat, two choices": (
        "chat",
        ("json", {"choices": [CHOICE, {"message": {"content": "second"}}]}),
        "fine\n[[B]]",
        [],
        (0, 0, 1),
    ),
    "chat with logprobs": ("chat_logprobs", chat_reply("[[A]]", top_logprobs=TOPS), "[[A]]", TOPS, (10, 5, 0)),
    "chat, logprobs asked for, none sent": ("chat_logprobs", chat(), "fine\n[[B]]", [], (10, 5, 0)),
    "chat, logprobs null": ("chat_logprobs", chat_logprobs(None), "fine\n[[B]]", [], (10, 5, 0)),
    "chat, logprobs content null": ("chat_logprobs", chat_logprobs({"content": None}), "fine\n[[B]]", [], (10, 5, 0)),
    "chat, logprobs item without token or top_logprobs": (
        "chat_logprobs",
        chat_logprobs({"content": [{"logprob": -0.1}, {"token": "A", "top_logprobs": None}]}),
        "fine\n[[B]]",
        [("", {}), ("A", {})],
        (10, 5, 0),
    ),
    "chat, integer and infinite logprobs": (
        "chat_logprobs",
        chat_logprobs(
            {
                "content": [
                    {"token": "A", "top_logprobs": [{"token": "A", "logprob": 0}, {"token": "B", "logprob": -math.inf}]}
                ]
            }
        ),
        "fine\n[[B]]",
        [("A", {"A": 0.0, "B": -math.inf})],
        (10, 5, 0),
    ),
    "completion": ("completion", completion({"index": 0, "text": "B", "logprobs": None}), "B", [], (10, 5, 0)),
    "completion with logprobs": (
        "completion_logprobs",
        completion_reply("B", {"B": -0.1, "A": -2.5}),
        "B",
        [("B", {"B": -0.1, "A": -2.5})],
        (10, 1, 0),
    ),
    "completion, a null top_logprobs entry": (
        "completion_logprobs",
        completion_logprobs({"tokens": ["B", "]]"], "top_logprobs": [None, {"]]": -0.01}], "text_offset": [0, 1]}),
        "B",
        [("B", {}), ("]]", {"]]": -0.01})],
        (10, 5, 0),
    ),
    "completion, logprobs asked for, none sent": (
        "completion_logprobs",
        completion({"text": "B"}),
        "B",
        [],
        (10, 5, 0),
    ),
}


@pytest.mark.parametrize("name", VALID)
async def test_valid_bodies_are_read_as_before(name, scripted):
    kind, _, text, tokens, usage = VALID[name]
    client = OpenAICompatClient(endpoint(scripted))
    res = await ask(client, kind, name)
    await client.aclose()
    assert calls_for(scripted, name) == 1
    assert res.text == text and res.token_logprobs == tokens
    s = client.stats
    assert (s.prompt_tokens, s.completion_tokens, s.no_usage) == usage and s.retries == 0


async def test_models_bodies_of_any_shape_give_no_window():
    bodies = [
        [1, 2],
        {"data": "x"},
        {"data": {"a": 1}},
        {"data": ["x", 3]},
        {"data": [{"id": "fake-judge", "n_ctx": True}]},
    ]
    for body in bodies:
        with FakeOpenAIServer(lambda p, b, n: chat(), models=body) as server:
            client = OpenAICompatClient(endpoint(server))
            assert await client.context_window() is None, body
            await client.aclose()
    with FakeOpenAIServer(
        lambda p, b, n: chat(), models={"data": ["x", {"id": "fake-judge", "n_ctx": 2048}]}
    ) as server:
        client = OpenAICompatClient(endpoint(server))
        assert await client.context_window() == 2048
        await client.aclose()


# -- (b) the judge's and the critic's boundary -----------------------------------------------------


def items(n: int):
    return [PairItem(f"question {i}", f"policy answer {i}", f"reference {i}") for i in range(n)]


async def test_an_unexpected_exception_in_one_judge_call_is_an_unknown_and_the_batch_is_scored(monkeypatch, caplog):
    from writing_rl.judge import pairwise

    def behaviour(path, body, n):
        return chat_reply("BOOM\n[[B]]" if "question 2\n" in body["messages"][1]["content"] else "fine\n[[B]]")

    real = pairwise.parse_verdict

    def parse_verdict(text, nonce=None):
        if text.startswith("BOOM"):
            raise ValueError("a bug in the verdict parser")
        return real(text, nonce)

    monkeypatch.setattr(pairwise, "parse_verdict", parse_verdict)
    caplog.set_level(logging.DEBUG, logger="writing_rl")
    with FakeOpenAIServer(behaviour) as server:
        judge = PairwiseJudge(JudgeConfig(endpoint=endpoint(server, max_concurrency=3)))
        reward = PairwiseReward(judge)
        results = await reward.score_batch(items(6))
        await judge.aclose()
    assert [r.reward for r in results] == [1.0, 1.0, None, 1.0, 1.0, 1.0]
    broken = results[2]
    assert broken.missing_reason is Reason.INTERNAL and broken.judgements[0].verdict is Verdict.UNKNOWN
    assert "ValueError: a bug in the verdict parser" in broken.missing_detail
    assert judge.stats.by_reason == {"internal": 1} and judge.stats.failed_calls == 1
    logged = [r for r in caplog.records if r.exc_info and r.levelno == logging.DEBUG]
    assert len(logged) == 1 and logged[0].exc_info[0] is ValueError  # once, with its traceback


@pytest.mark.parametrize("escaping", [asyncio.CancelledError, KeyboardInterrupt, SystemExit, MemoryError])
def test_the_judge_boundary_lets_cancellation_and_interrupts_pass(escaping, monkeypatch):
    judge = PairwiseJudge(JudgeConfig(endpoint=EndpointConfig(base_url="http://127.0.0.1:9/v1")))

    async def raising(*args):
        raise escaping()

    monkeypatch.setattr(judge, "_judge_sanitised", raising)
    call = judge.judge("q", "a", "b")  # driven by hand: a KeyboardInterrupt must not reach an event loop
    with pytest.raises(escaping):
        call.send(None)


@pytest.mark.parametrize("escaping", [asyncio.CancelledError, KeyboardInterrupt, SystemExit, MemoryError])
def test_the_critic_boundary_lets_cancellation_and_interrupts_pass(escaping, monkeypatch):
    critic = PointwiseCritic(CriticConfig(endpoint=EndpointConfig(base_url="http://127.0.0.1:9/v1")))

    async def raising(*args):
        raise escaping()

    monkeypatch.setattr(critic, "_score_criterion", raising)
    call = critic.score_criterion("q", "r", Criterion(name="n", criteria_description="d"))
    with pytest.raises(escaping):
        call.send(None)


async def test_an_unexpected_exception_in_one_critic_call_is_a_missing_score_and_the_rest_are_scored(
    monkeypatch, caplog
):
    def behaviour(path, body, n):
        broken = "Broken criterion" in body["messages"][1]["content"]
        return chat_reply("BOOM" if broken else '{"score": 7, "reason": "fine"}')

    real = writingbench.parse_score

    def parse_score(text):
        if text == "BOOM":
            raise KeyError("a bug in the score parser")
        return real(text)

    monkeypatch.setattr(writingbench, "parse_score", parse_score)
    caplog.set_level(logging.DEBUG, logger="writing_rl")
    rubric = [Criterion(name=name, criteria_description="d") for name in ("Clarity", "Broken criterion", "Depth")]
    with FakeOpenAIServer(behaviour) as server:
        critic = PointwiseCritic(CriticConfig(endpoint=endpoint(server), parse_retries=0))
        result = await critic.score("question", "response", rubric)
        await critic.aclose()
    assert result.per_criterion == [7.0, None, 7.0] and result.score == 7.0
    assert [c.missing_reason for c in result.criteria] == [None, Reason.INTERNAL, None]
    broken = result.criteria[1].reason
    assert "KeyError" in broken and "a bug in the score parser" in broken
    assert len([r for r in caplog.records if r.exc_info and r.levelno == logging.DEBUG]) == 1


async def test_an_unexpected_exception_in_one_longbench_write_rating_is_missing():
    from writing_rl.eval.runner import INTERNAL, _or_internal

    async def broken(request, output):
        raise AttributeError("a bug in the rating")

    rated = await _or_internal(broken("request", "output"), "the LongBench-Write quality call", (None, INTERNAL))
    assert rated == (None, "internal")
    with pytest.raises(MemoryError):  # the process, not one call, is in trouble: it passes

        async def out_of_memory():
            raise MemoryError

        await _or_internal(out_of_memory(), "the call", (None, INTERNAL))


# -- the TaskGroup ----------------------------------------------------------------------------------


class JudgeWithoutBoundary:
    """A judge that lets a bug escape (as no judge of ours does) on question 3, and is slow on the rest."""

    max_concurrency = 8

    def __init__(self) -> None:
        self.cancelled = 0
        self.finished = 0

    async def judge(self, question, answer_a, answer_b, criteria=None, sample=None) -> Judgement:
        if question == "question 3":
            await asyncio.sleep(0.05)
            raise RuntimeError("a bug nobody caught")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return Judgement(Verdict.B)


async def test_an_exception_escaping_one_call_cancels_the_rest_of_the_batch():
    judge = JudgeWithoutBoundary()
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="a bug nobody caught"):  # itself, not an ExceptionGroup
        await PairwiseReward(judge).score_batch(items(8))  # type: ignore[arg-type]
    assert time.perf_counter() - started < 2
    assert judge.cancelled == 7 and judge.finished == 0  # none left running


async def test_a_cancelled_call_leaves_the_context_window_query_to_the_next():
    models = {"data": [{"id": "fake-judge", "max_model_len": 4096}]}
    with FakeOpenAIServer(lambda p, b, n: chat_reply("[[A]]"), models=models, models_delay_s=0.3) as server:
        judge = PairwiseJudge(JudgeConfig(endpoint=endpoint(server)))
        first = asyncio.ensure_future(judge.judge("q", "a", "b"))
        await asyncio.sleep(0.1)  # waiting for /models
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        second = await judge.judge("q", "a", "b")
        await judge.aclose()
    assert second.verdict is Verdict.A and await judge.context_window() == 4096


# -- (d) bounded parsers ----------------------------------------------------------------------------


def quick(parse, *args, limit_s: float = 1.0):
    started = time.perf_counter()
    result = parse(*args)
    assert time.perf_counter() - started < limit_s, f"{parse.__name__} took {time.perf_counter() - started:.1f}s"
    return result


SIX = ["Relevance", "Accuracy", "Coherence", "Clarity", "Breadth and Depth", "Reading Experience"]
ADVERSARIAL_QUALITY = {
    "100,000 [": "[" * 100_000,
    "100,000 open objects": '{"a": ' * 100_000,
    "deep inside a json block": "```json\n" + "[" * 100_000 + "\n```",
    "8,000 unclosed json blocks": "```json\nx " * 8_000,
    "an integer too long for int": "{" + ", ".join(f'"{d}": 1' + "0" * 5000 for d in SIX) + "}",
    "an integer too large for float": "{" + ", ".join(f'"{d}": 1' + "0" * 400 for d in SIX) + "}",
    "a megabyte of text": "The response is fine. " * 50_000,
}


@pytest.mark.parametrize("name", ADVERSARIAL_QUALITY)
def test_parse_quality_on_adversarial_replies_is_no_score_quickly(name):
    assert quick(lbw.parse_quality, ADVERSARIAL_QUALITY[name]) is None


def test_parse_quality_reads_valid_replies_as_the_official_scorer():
    scores = {"Analysis": "Clear.", **{d: 4 for d in SIX}}
    block = "Analysis first.\n```json\n" + json.dumps(scores, indent=2) + "\n```\nThat is all."
    assert lbw.parse_quality(block) == {d: 4.0 for d in SIX}
    assert lbw.parse_quality(json.dumps(scores)) == {d: 4.0 for d in SIX}
    assert lbw.parse_quality("```json\n" + json.dumps(scores)) is None  # an unclosed block: asked again
    assert lbw.parse_quality("```json " + json.dumps(scores) + "\n```") is None  # no newline after ```json
    two = "```json\n" + json.dumps({**scores, "Accuracy": 2}) + "\n```\n```json\n" + json.dumps(scores) + "\n```"
    assert lbw.parse_quality(two)["Accuracy"] == 2.0  # the first block, as re.search finds it


def test_the_json_block_is_what_the_official_pattern_captures():
    official = re.compile(r"```json\n(.*?)\n```", re.DOTALL)
    pieces = ["```json\n", "```json", "\n```", "```", "`", "\n", "json", "x", "{}", " "]
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        m = official.search(text)
        assert lbw._json_block(text) == (m.group(1) if m else None), text


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"score": 1' + "0" * 5000 + ', "reason": "x"}', 'prose {"score": 1' + "0" * 5000 + "} prose"],
    ids=["deep", "long int", "long int in prose"],
)
def test_the_critics_parsers_on_adversarial_replies_are_no_score(text):
    assert quick(writingbench.parse_score, text) is None
    assert quick(writingbench.parse_score_lenient, text) is None


NONCE = "0123456789abcdef"


def test_parse_verdict_with_thousands_of_unclosed_fences_is_quick():
    text = f"<<<ANSWER B {NONCE}>>> " * 5_000 + "\nSo:\n[[A]]"
    assert quick(parse_verdict, text, NONCE) is Verdict.A


def test_cutting_fences_in_one_pass_cuts_what_the_pattern_cut():
    other = "fedcba9876543210"
    pieces = [
        f"<<<ANSWER A {NONCE}>>>",
        f"<<<ANSWER B {NONCE}>>>",
        f"<<<END ANSWER A {NONCE}>>>",
        f"<<<END ANSWER B {NONCE}>>>",
        f"<<<ANSWER A {other}>>>",
        f"<<<END ANSWER A {other}>>>",
        f"<<<ANSWER B {other}>>>",
        f"<<<<ANSWER B {NONCE}>>>",
        "<<<",
        ">>>",
        "x",
        "\n",
        "[[A]]",
        "A ",
    ]
    rng = random.Random(1)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert cut_fences(text, NONCE) == fence_pattern(NONCE).sub(" ", text), text


def test_token_readers_on_adversarial_tokens():
    distribution = quick(score_distribution, {"1" * 5000: -0.1, "0" * 5000 + "7": -0.5, "7": -0.2})
    assert set(distribution) == {7} and distribution[7] == pytest.approx(math.exp(-0.5) + math.exp(-0.2))
    tokens = [("[", {"[": -0.1})] * 200_000 + [("[[", {}), ("A", {"A": -0.1})]
    assert quick(verdict_position_top, tokens) == [("A", -0.1)]


# -- (c) training through a judge that serves malformed replies ------------------------------------

CHAT_MALFORMED = [(name, action) for name, (kind, action) in MALFORMED.items() if kind == "chat"]


@pytest.mark.train
def test_training_through_a_judge_serving_40_percent_malformed_replies(tmp_path, tiny_model):
    pytest.importorskip("trl")
    from writing_rl.train import TrainConfig, train

    served: Counter[str] = Counter()
    kinds: set[str] = set()
    lock = threading.Lock()

    def behaviour(path, body, n):
        with lock:
            served["replies"] += 1
            if n % 5 in (2, 4):  # two replies in five
                name, action = CHAT_MALFORMED[served["malformed"] % len(CHAT_MALFORMED)]
                served["malformed"] += 1
                kinds.add(name)
                return action
        return chat_reply("B is better.\n[[B]]" if n % 2 else "A is better.\n[[A]]")

    dataset = tmp_path / "s.jsonl"
    with dataset.open("w", encoding="utf-8") as fh:
        for i, prompt in enumerate(["Write a poem.", "Write a letter.", "Write a story."]):
            fh.write(
                json.dumps({"id": i, "prompt": prompt, "references": [f"reference {k} for {i}" for k in range(3)]})
            )
            fh.write("\n")
    with FakeOpenAIServer(behaviour) as server:
        endpoint_cfg = {"base_url": server.base_url, "timeout_s": 60, "max_retries": 1, "backoff_initial_s": 0.001}
        cfg = TrainConfig.model_validate(
            {
                "model": tiny_model,
                "dataset": str(dataset),
                "output_dir": str(tmp_path / "run"),
                "judge": {"mode": "hard", "endpoint": {**endpoint_cfg, "backoff_max_s": 0.005}},
                "reward": {"position": "reference_first"},
                "audit": {"pairs": 0},
                "grpo": {
                    "num_generations": 4,
                    "per_device_train_batch_size": 12,
                    "max_completion_length": 8,
                    "learning_rate": 1e-4,
                    "max_steps": 2,
                    "save_steps": 10,
                    "logging_steps": 1,
                    "report_to": ["none"],
                },
            }
        )
        crashes = 0
        try:
            run = train(cfg)
        except Exception:  # counted, then raised: the figure is printed either way
            crashes = 1
            raise
        finally:
            replies_served, malformed = served["replies"], served["malformed"]
            rollouts_path = tmp_path / "run" / "rollouts.jsonl"
            rollouts = (
                [json.loads(line) for line in rollouts_path.read_text().splitlines()] if rollouts_path.exists() else []
            )
            scored = sum(r["reward"] is not None for r in rollouts)
            print(
                f"\nfault injection: replies served {replies_served}, malformed {malformed} "
                f"({malformed / max(replies_served, 1):.0%}, {len(kinds)} kinds: {', '.join(sorted(kinds))}), "
                f"completions {len(rollouts)}, scored {scored}, unknown {len(rollouts) - scored}, crashes {crashes}"
            )
    assert (run / "final").is_dir()  # training finished
    assert len(rollouts) == 24 and {r["step"] for r in rollouts} == {1, 2}
    assert 0.3 <= malformed / replies_served <= 0.5
    assert scored == replies_served - malformed  # every well-formed reply became a reward
    unknown = [r for r in rollouts if r["reward"] is None]
    assert all(r["missing_reason"] == "bad_response" and "malformed response" in r["missing_detail"] for r in unknown)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "reward" in m]
    assert sum(m["judge/missing/bad_response"] for m in steps) == len(unknown)
    assert sum(m["judge/missing/internal"] for m in steps) == 0
    assert sum(m["judge/retries"] for m in steps) == replies_served - len(rollouts) > 0  # malformed ones, asked again
