"""The reward path screens the next wave's answers, and has the judge prepare their prompts, while the judge
works on this wave, so a returning worker only sends: the wait for the judge hides that CPU work."""

import asyncio
import time

import pytest
from fake_openai import FakeOpenAIServer, chat_reply, completion_reply

import writing_rl.reward as reward_module
from writing_rl.endpoint import EndpointConfig
from writing_rl.judge import JudgeConfig, PairwiseJudge
from writing_rl.judge.judgement import Judgement, JudgeStats
from writing_rl.judge.verdict import Verdict
from writing_rl.reward import PairItem, PairwiseReward, RewardConfig

WINDOW, WAVES, LATENCY = 4, 4, 0.3  # a latency long enough that a loaded machine still prefetches in it


class SlowJudge:
    """Answers after a fixed latency, at most WINDOW at once; B (the policy, reference first) wins."""

    max_concurrency = WINDOW

    def __init__(self) -> None:
        self.stats = JudgeStats()
        self.returned: dict[str, float] = {}  # policy answer -> when its call returned
        self.prepared: dict[str, float] = {}  # policy answer -> when its prompt was prepared

    async def prepare(self, question, answer_a, answer_b, criteria=None) -> None:
        self.prepared.setdefault(answer_b, time.perf_counter())

    async def judge(self, question, answer_a, answer_b, criteria=None, sample=None) -> Judgement:
        await asyncio.sleep(LATENCY)
        self.returned[answer_b] = time.perf_counter()
        return Judgement(Verdict.B, text="[[B]]")

    def call_stats(self) -> dict[str, float]:
        return {"calls": 0, "retries": 0, "latency_s": 0.0}

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("injection", ["penalize", "off"])
async def test_later_waves_are_screened_and_prepared_before_their_worker_is_free(monkeypatch, injection):
    screened: dict[str, float] = {}
    real_screen = reward_module.screen

    def timed_screen(text: str):
        screened.setdefault(text, time.perf_counter())
        return real_screen(text)

    monkeypatch.setattr(reward_module, "screen", timed_screen)
    items = [
        PairItem("Write about rivers.", f"River answer number {n}, plain prose.", "A reference.")
        for n in range(WINDOW * WAVES)
    ]
    judge = SlowJudge()
    results = await PairwiseReward(judge, RewardConfig(injection=injection)).score_batch(items)
    assert [r.outcome for r in results] == ["win"] * len(items)
    for n in range(WINDOW, len(items)):
        # the worker that takes call n is the one whose call n - WINDOW returns first
        policy, freed_by = items[n].answer, items[n - WINDOW].answer
        assert screened[policy] < judge.returned[freed_by], n
        assert judge.prepared[policy] < judge.returned[freed_by], n


async def test_a_prepared_pair_is_not_fitted_again_when_judged():
    """PairwiseJudge.prepare does the work `judge` would do before sending: `judge` finds it done."""

    def behaviour(path, body, n):
        return chat_reply("[[B]]")

    with FakeOpenAIServer(behaviour) as server:
        judge = PairwiseJudge(JudgeConfig(endpoint=EndpointConfig(base_url=server.base_url, max_retries=0)))
        fits = 0
        real_fit = judge._fit

        async def counted_fit(*args):
            nonlocal fits
            fits += 1
            return await real_fit(*args)

        judge._fit = counted_fit
        await judge.prepare("q", "answer one", "answer two")
        assert fits == 1
        verdict = await judge.judge("q", "answer one", "answer two")
        unprepared = await judge.judge("q", "answer one", "answer three")
        await judge.aclose()
    assert verdict.verdict is Verdict.B and unprepared.verdict is Verdict.B
    assert fits == 2  # the prepared pair was not fitted again; the other one was fitted by judge()


async def test_a_prepared_soft_prompt_is_rendered_once():
    """In soft mode via /completions, `prepare` also renders the chat template, which `judge` then reuses."""
    top = {"A": -3.0, "B": -0.1, "C": -4.0}

    def behaviour(path, body, n):
        return completion_reply("B", top)

    with FakeOpenAIServer(behaviour) as server:
        endpoint = EndpointConfig(base_url=server.base_url, max_retries=0)
        judge = PairwiseJudge(JudgeConfig(endpoint=endpoint, mode="soft", soft_via="completions"))
        renders = 0
        real_render = judge.chat_template.render

        def counted_render(messages):
            nonlocal renders
            renders += 1
            return real_render(messages)

        object.__setattr__(judge.chat_template, "render", counted_render)
        await judge.prepare("q", "answer one", "answer two")
        verdict = await judge.judge("q", "answer one", "answer two")
        await judge.aclose()
        prompt = server.requests[0][1]["prompt"]
    assert verdict.verdict is Verdict.B and renders == 1
    assert prompt.endswith("[[") and "answer two" in prompt
