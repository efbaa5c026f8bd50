"""Reward-path throughput against a judge with a fixed latency: ours, the judge-bound ideal, and the
published pattern (12 threads, one blocking call per sample), side by side in one run.

    PYTHONPATH=src python benchmarks/reward_throughput.py                 # the three rows, hard and soft
    PYTHONPATH=src python benchmarks/reward_throughput.py --rows 256x64x0.2 --modes hard --no-baseline

Each row (calls x concurrency x latency in seconds) starts its own loopback fake judge
(`fake_judge_server.py`, another process, as a real judge is). "ours" is
`PairwiseReward.score_batch_sync` in `reference_first` order with `max_concurrency` = the row's
concurrency, timed for two training steps of new answers on one judge: the first step on a fresh
judge (it starts its HTTP client, opens its connections and asks `/models`, as the first step of a
run does), the next on the same judge, as every later step of a run; the sanitiser's memos are
emptied before each. "ideal" is ceil(calls / concurrency) x latency, what the judge alone needs.
Every verdict is checked against the one the fake judge gives for that prompt (the longer answer
wins), so a fast but wrong reward path fails the run instead of posting a number.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

import requests
from fake_judge_server import fake_judge  # a sibling script

from writing_rl.endpoint import EndpointConfig
from writing_rl.judge import JudgeConfig, PairwiseJudge, PairwiseTemplate, Verdict, parse_verdict
from writing_rl.judge.sanitize import hits, rule_prefilter, sanitize
from writing_rl.judge.screen import screen
from writing_rl.reward import PairItem, PairwiseReward, RewardConfig

ROWS = ["256x64x0.2", "1024x256x0.5", "1024x256x2.0"]
BASELINE_THREADS = 12
VOCABULARY = (
    "the river city morning light story reader careful between quiet letters winter garden history market "
    "distance promise harbour evening journey simple several question answer window travel season memory "
    "family village table language window summer during across because without another nothing"
)
WORDS = VOCABULARY.split()

def prose(rng: random.Random, words: int) -> str:
    sentences = []
    while words > 0:
        n = min(words, rng.randint(8, 20))
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + ".")
        words -= n
    return " ".join(sentences)


def make_items(calls: int, words: int, group: int, seed: int = 0) -> tuple[list[PairItem], list[str]]:
    """GRPO-shaped pairs: each group of `group` completions shares its prompt and reference; a policy
    answer longer than its reference (even indices) wins, a shorter one (odd indices) loses; both differ
    from it by an eighth of its length, so no answer is empty."""
    rng = random.Random(seed)
    items, expected = [], []
    for i in range(calls):
        if i % group == 0:
            question, reference = f"Write about place number {i // group}.", prose(rng, words)
        delta = max(2, words // 8)
        policy = prose(rng, words + (delta if i % 2 == 0 else -delta))
        items.append(PairItem(question, policy, reference))
        expected.append("win" if i % 2 == 0 else "loss")
    return items, expected


def forget_sanitised() -> None:
    """Empty the sanitiser's and screen's caches, so no measurement starts with another's work done."""
    for cached in (hits, sanitize, screen):
        cached.cache_clear()


def ours(
    base_url: str, batches: list[tuple[list[PairItem], list[str]]], concurrency: int, mode: str, workers: int
) -> list[float]:
    """Seconds per batch, each batch a training step's rewards, on one judge created for the first."""
    endpoint = EndpointConfig(base_url=base_url, model="fake-judge", max_concurrency=concurrency, timeout_s=120)
    config = RewardConfig(prepare_workers=workers) if workers else RewardConfig()
    reward = PairwiseReward(PairwiseJudge(JudgeConfig(endpoint=endpoint, mode=mode)), config)
    timings = []
    for items, expected in batches:
        forget_sanitised()
        started = time.perf_counter()
        results = reward.score_batch_sync(items)
        timings.append(time.perf_counter() - started)
        wrong = sum(r.outcome != e for r, e in zip(results, expected))
        if wrong:
            first = next(r for r, e in zip(results, expected) if r.outcome != e)
            raise SystemExit(f"{wrong} of {len(items)} rewards are wrong ({mode}); first: {first.missing_detail}")
    reward.close()
    return timings


def baseline(base_url: str, items: list[PairItem], expected: list[str]) -> float:
    """The published pattern: a pool of 12 threads, each sending one blocking request per sample."""
    template = PairwiseTemplate()

    def one(item: PairItem) -> str:
        messages, nonce = template.render(item.question, item.reference, item.answer)
        body = {"model": "fake-judge", "messages": messages, "temperature": 0.1, "max_tokens": 1024}
        resp = requests.post(f"{base_url}/chat/completions", json=body, timeout=120)
        resp.raise_for_status()
        verdict = parse_verdict(resp.json()["choices"][0]["message"]["content"], nonce=nonce)
        return "win" if verdict is Verdict.B else "loss" if verdict is Verdict.A else "tie"

    forget_sanitised()
    started = time.perf_counter()
    with ThreadPoolExecutor(BASELINE_THREADS) as pool:
        outcomes = list(pool.map(one, items))
    seconds = time.perf_counter() - started
    if outcomes != expected:
        raise SystemExit("the baseline's verdicts do not match the fake judge's")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=ROWS, help="CALLSxCONCURRENCYxLATENCY, e.g. 256x64x0.2")
    parser.add_argument("--modes", nargs="+", choices=["hard", "soft"], default=["hard", "soft"])
    parser.add_argument(
        "--words", type=int, default=800, help="words per reference (policy answers: an eighth more or less)"
    )
    parser.add_argument("--group", type=int, default=8, help="completions per prompt (they share its reference)")
    parser.add_argument(
        "--prepare-workers", type=int, default=0, help="reward.prepare_workers: processes that sanitise and screen"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the 12-thread baseline (slow rows)")
    args = parser.parse_args()

    rule_prefilter()  # built once per process (loaded from the user cache), as in a training run: not timed
    print(
        f"# reward path vs the judge-bound ideal; pyreqwest {version('pyreqwest')}, hyperscan {version('hyperscan')}, "
        f"Python {sys.version.split()[0]}"
    )
    print(
        f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.words} words per reference, "
        f"groups of {args.group} completions per prompt; prepare_workers={args.prepare_workers}"
    )
    print(
        "| mode | calls | concurrency | latency | ideal | ours, first step | of ideal | ours, next step | of ideal "
        "| 12-thread baseline | first step vs baseline |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in args.rows:
        calls, concurrency, latency = (f(x) for f, x in zip((int, int, float), row.split("x")))
        ideal = math.ceil(calls / concurrency) * latency
        steps = [make_items(calls, args.words, args.group, seed=step) for step in range(2)]
        with fake_judge(latency) as base_url:
            timings = {mode: ours(base_url, steps, concurrency, mode, args.prepare_workers) for mode in args.modes}
            base = None if args.no_baseline else baseline(base_url, *steps[0])
        for mode, (first, warm) in timings.items():
            base_cells = f"{base:.2f} s | {base / first:.1f}x" if base else "- | -"
            print(
                f"| {mode} | {calls} | {concurrency} | {latency} s | {ideal:.2f} s | {first:.2f} s | {ideal / first:.2f}x "
                f"| {warm:.2f} s | {ideal / warm:.2f}x | {base_cells} |",
                flush=True,
            )
    print(f"# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
