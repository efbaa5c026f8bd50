"""One training rank's judge, run under torchrun by tests/test_ranks.py.

Builds the judge exactly as `writing-rl train` does on this rank (`rank_judge`: its share of the
endpoint's concurrency, its own cache file), judges a batch of pairs with both ranks starting together,
judges the same batch again (all cache hits), gathers the judge metrics as the trainer's reward step
does, and writes what it saw to `rank{R}.json`.

usage: rank_worker.py BASE_URL TOTAL_CONCURRENCY RUN_DIR OUT_DIR N_PAIRS
"""

import asyncio
import json
import sys
from pathlib import Path

from writing_rl.engines.rank_metrics import gather_judge_metrics, judge_counters
from writing_rl.judge import JudgeConfig
from writing_rl.training.judge import rank_judge
from writing_rl.training.trl_inputs import process_state


def pairs(rank: int, n: int) -> list[tuple[str, str, str, None]]:
    """Answer A grows with i, answer B stays 45 characters: a judge that prefers the longer answer says
    B for i < 7 and A from then on. The question names the rank, so no two ranks send the same prompt."""
    return [(f"Rank {rank}, task {i}: describe the sea.", "alpha " * (i + 1), "beta " * 9, None) for i in range(n)]


async def judge_twice(judge, items):  # type: ignore[no-untyped-def]
    try:
        first = await judge.judge_many(items)
        again = await judge.judge_many(items)
    finally:
        await judge.aclose()
    return first, again


def main() -> None:
    base_url, total, run_dir, out_dir, n = sys.argv[1:6]
    state = process_state()  # as `writing-rl train` sets it up
    rank, world = state.process_index, state.num_processes
    cfg = JudgeConfig(
        mode="hard",
        endpoint={"base_url": base_url, "max_concurrency": int(total), "max_retries": 0, "timeout_s": 600},
    )
    items = pairs(rank, int(n))
    with rank_judge(cfg, Path(run_dir), rank, world) as judge:
        state.wait_for_everyone()  # both ranks send their batch at the same time, as after a generation round
        first, again = asyncio.run(judge_twice(judge, items))
        # a stand-in for the reward step's wall time, different per rank, to check how ranks combine
        local = judge_counters(judge) | {"time/judge_s": float(rank + 1)}
        combined = gather_judge_metrics(local, world)
        share = judge.client.config.max_concurrency
        cache_files = sorted(p.name for p in judge.cache.path.parent.iterdir() if f".rank{rank}." in p.name)
    report = {
        "rank": rank,
        "share": share,
        "cache_files": cache_files,  # while the run holds the cache open
        "verdicts": [j.verdict.value for j in first],
        "cached": [j.cached for j in again],
        "again": [j.verdict.value for j in again],
        "local": local,
        "combined": combined,
    }
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(report), encoding="utf-8")


if __name__ == "__main__":
    main()
