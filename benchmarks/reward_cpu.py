"""CPU time of the reward path per pair, without a network: what each judge call costs our event loop.

    PYTHONPATH=src python benchmarks/reward_cpu.py [--pairs 1024] [--words 40] [--modes hard soft]

`PairwiseReward.score_batch` with a `PairwiseJudge` whose client answers at once, in process, with
the fake judge's own reply (`fake_judge_server.reply`: the longer answer wins), so everything but
the HTTP request runs: the screen, the sanitiser, the prompt, fitting it to the context window,
the chat template (soft mode), parsing the verdict, combining the reward. Every reward is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from fake_judge_server import reply  # a sibling script
from reward_throughput import forget_sanitised, make_items

from writing_rl.endpoint import EndpointConfig
from writing_rl.endpoint.client import ChatResult
from writing_rl.judge import JudgeConfig, PairwiseJudge
from writing_rl.judge.sanitize import rule_prefilter
from writing_rl.reward import PairwiseReward


class InstantClient:
    """The fake judge's answer, without the network."""

    async def chat(self, messages: list[dict[str, str]], **_: object) -> ChatResult:
        return ChatResult(text=reply("/chat/completions", {"messages": messages})["choices"][0]["message"]["content"])

    async def complete(self, prompt: str, **_: object) -> ChatResult:
        choice = reply("/completions", {"prompt": prompt})["choices"][0]
        return ChatResult(text=choice["text"], token_logprobs=[(choice["text"], choice["logprobs"]["top_logprobs"][0])])

    async def aclose(self) -> None:
        return None


def cpu_per_pair(mode: str, pairs: int, words: int) -> float:
    items, expected = make_items(pairs, words, group=8)
    endpoint = EndpointConfig(base_url="http://unused.invalid/v1", model="fake-judge", max_concurrency=256)
    judge = PairwiseJudge(JudgeConfig(endpoint=endpoint, mode=mode, context_window=32768), client=InstantClient())  # type: ignore[arg-type]
    reward = PairwiseReward(judge)
    forget_sanitised()
    started = time.process_time()
    results = asyncio.run(reward.score_batch(items))
    seconds = time.process_time() - started
    if [r.outcome for r in results] != expected:
        raise SystemExit(f"wrong rewards in {mode} mode")
    return seconds / pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1024)
    parser.add_argument(
        "--words", type=int, default=40, help="words per reference (policy answers: an eighth more or less)"
    )
    parser.add_argument("--modes", nargs="+", choices=["hard", "soft"], default=["hard", "soft"])
    args = parser.parse_args()
    rule_prefilter()  # built once per process, as in a training run
    for mode in args.modes:
        cpu_per_pair(mode, 64, args.words)  # first use: imports, the chat template, the tokenizer estimate
    print("| mode | pairs | words | CPU per pair |\n| --- | --- | --- | --- |")
    for mode in args.modes:
        print(f"| {mode} | {args.pairs} | {args.words} | {cpu_per_pair(mode, args.pairs, args.words) * 1e3:.2f} ms |")


if __name__ == "__main__":
    main()
