"""Judge time of one `make demo` step on the embedded llama.cpp judge (SmolLM2-135M), without training.

    PYTHONPATH=src python benchmarks/embedded_judge.py                # 4 steps after a warm-up step
    PYTHONPATH=src python benchmarks/embedded_judge.py --steps 6 --level 2

A demo step judges 2 prompts x 4 completions against each prompt's current reference, soft verdicts
in both orders (16 calls, 2 in flight), with the demo's own judge and reward settings
(`configs/demo.yaml`). The completions here are the first words of other prompts' references, cut
to the demo's completion length, a different set each step, and the judge cache is off, so every
call reaches the server. The server is started as the demo starts it, with the same context window
and threads.

Besides the wall time, each step reports the prompt tokens the server actually evaluated and the time
it spent on them (from llama.cpp's own timing lines in its log): prompt tokens it could reuse from
the previous request are not evaluated again, so this count is the work, independent of the load. The
wall time needs an otherwise idle machine: the judge's time is CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from writing_rl.config import LocalJudgeSettings
from writing_rl.judge import JudgeConfig, PairwiseJudge
from writing_rl.reward import PairItem, PairwiseReward, RewardConfig
from writing_rl.server import local_judge_limits, local_server

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "writing_rl" / "assets" / "demo_samples.jsonl"
DEMO = REPO / "configs" / "demo.yaml"
PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")


def prompt_evals(log: Path) -> list[tuple[float, int]]:
    """(milliseconds, tokens) of every prompt evaluation the server has logged so far."""
    return [(float(ms), int(n)) for ms, n in PROMPT_EVAL.findall(log.read_text(errors="replace"))]


def completions(samples: list[dict], step: int, prompt_index: int, n: int, words: int) -> list[str]:
    """`n` policy answers for one prompt: other prompts' references, cut to `words` words."""
    others = [ref for j, s in enumerate(samples) if j != prompt_index for ref in s["references"]]
    start = (step * n) % len(others)
    picked = [others[(start + k) % len(others)] for k in range(n)]
    return [" ".join(text.split()[:words]) for text in picked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps (after one warm-up step)")
    parser.add_argument("--prompts", type=int, default=2, help="prompts per step (the demo: 2)")
    parser.add_argument("--group", type=int, default=4, help="completions per prompt (the demo: 4)")
    parser.add_argument("--words", type=int, default=36, help="words per completion (48 tokens is ~36 words)")
    parser.add_argument("--level", type=int, default=1, help="reference index judged against (0 = weakest)")
    args = parser.parse_args()

    demo = yaml.safe_load(DEMO.read_text())
    samples = [json.loads(line) for line in SAMPLES.read_text().splitlines()]
    settings = LocalJudgeSettings(**{k: v for k, v in demo["local_judge"].items() if k != "enabled"})
    with tempfile.TemporaryDirectory() as work, local_server(settings, work) as server:
        judge_cfg = dict(demo["judge"], endpoint=dict(demo["judge"]["endpoint"], base_url=server.base_url))
        judge = PairwiseJudge(local_judge_limits(JudgeConfig(**judge_cfg), settings))
        reward = PairwiseReward(judge, RewardConfig(**demo["reward"]))
        print(
            f"# embedded judge, {settings.n_threads or os.cpu_count()} threads, load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.prompts} prompts x {args.group} completions, "
            f"{reward.config.position}, {judge.config.mode} via {judge.config.soft_via}"
        )
        seconds, tokens, eval_s = [], [], []
        for step in range(args.steps + 1):
            items = []
            for p in range(args.prompts):
                index = (step * args.prompts + p) % len(samples)
                sample = samples[index]
                reference = sample["references"][min(args.level, len(sample["references"]) - 1)]
                for answer in completions(samples, step, index, args.group, args.words):
                    items.append(PairItem(sample["prompt"], answer, reference))
            calls_before, evals_before = judge.client.stats.requests, len(prompt_evals(server.log_path))
            started = time.perf_counter()
            results = reward.score_batch_sync(items)
            took = time.perf_counter() - started
            calls = judge.client.stats.requests - calls_before
            time.sleep(0.5)  # the server writes its timing lines after the reply
            evals = prompt_evals(server.log_path)[evals_before:]
            step_tokens, step_eval = sum(n for _, n in evals), sum(ms for ms, _ in evals) / 1000
            unknown = sum(r.outcome is None for r in results)
            label = "warm-up" if step == 0 else f"step {step}"
            print(
                f"{label}: {took:.2f} s judging, {calls} calls, {unknown} unknown; the server evaluated "
                f"{step_tokens} prompt tokens in {step_eval:.2f} s",
                flush=True,
            )
            if step:
                seconds.append(took)
                tokens.append(step_tokens)
                eval_s.append(step_eval)
        reward.close()
    print(
        f"mean per step: {statistics.mean(seconds):.2f} s judging (min {min(seconds):.2f}, max {max(seconds):.2f}), "
        f"{statistics.mean(tokens):.0f} prompt tokens evaluated in {statistics.mean(eval_s):.2f} s"
    )


if __name__ == "__main__":
    main()
