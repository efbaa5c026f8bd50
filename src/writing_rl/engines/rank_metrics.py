"""Judge metrics over all training processes: each rank judges only its slice of a generation batch,
so a rank's own counters show a fraction of the load. Counts and summed latencies add up over the ranks;
the mean latency is the total latency over the total calls (not a mean of the ranks' means); the judge
time of a batch is the slowest rank's, since the ranks judge side by side and the step waits for all.

Also the two other hand-overs between ranks the reward function makes: what only rank 0 needs (the
rollout records) goes to rank 0 alone, and what rank 0 decides goes back to every rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from ..judge.judgement import JudgeStats

T = TypeVar("T")

COUNTS = (
    "judge/calls",
    "judge/cache_hits",
    "judge/retries",
    "judge/failed_calls",
    "judge/prompt_tokens",
    "judge/completion_tokens",
    "judge/no_usage",
)
SUMMED = (*COUNTS, "judge/latency_s")


class Counted(Protocol):
    """What the counters read: a pairwise judge, or a pointwise scorer (`pointwise.PointScorer`)."""

    @property
    def stats(self) -> JudgeStats: ...

    def call_stats(self) -> dict[str, float]: ...


def judge_counters(judge: Counted) -> dict[str, float]:
    """This process's totals since the start (calls spent, cache hits, retries, failures, the tokens the
    server reported and the answers that reported none, summed latency). A rule judge reports no tokens."""
    calls = judge.call_stats()
    return {
        "judge/calls": calls["calls"],
        "judge/cache_hits": judge.stats.cache_hits,
        "judge/retries": calls["retries"],
        "judge/failed_calls": judge.stats.failed_calls,
        "judge/prompt_tokens": calls.get("prompt_tokens", 0),
        "judge/completion_tokens": calls.get("completion_tokens", 0),
        "judge/no_usage": calls.get("no_usage", 0),
        "judge/latency_s": calls["latency_s"],
    }


def combine_ranks(per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
    """One batch's metrics from every rank's part of it (`SUMMED` counters plus `time/judge_s`)."""
    total = {name: float(sum(r[name] for r in per_rank)) for name in SUMMED}
    out = {name: total[name] for name in COUNTS}
    out["judge/mean_latency_s"] = total["judge/latency_s"] / max(total["judge/calls"], 1)
    out["time/judge_s"] = max(r["time/judge_s"] for r in per_rank)
    return out


def gather_judge_metrics(local: dict[str, float], num_processes: int) -> dict[str, float]:
    """`combine_ranks` over all processes; every rank must call it, and every rank gets the same answer."""
    if num_processes == 1:
        return combine_ranks([local])
    from accelerate.utils import gather_object

    return combine_ranks(gather_object([local]))


def gather_to_main(items: Sequence[T], num_processes: int) -> list[T] | None:
    """Every rank's `items`, in rank order, on rank 0 only (None on the others): for large objects only rank 0
    uses, which an all-gather would copy into every process. Every rank must call it."""
    if num_processes == 1:
        return list(items)
    import torch.distributed as dist

    box: list[Any] | None = [None] * num_processes if dist.get_rank() == 0 else None
    dist.gather_object(list(items), box, dst=0)
    return None if box is None else [x for part in box for x in part]


def broadcast_from_main(obj: T | None, num_processes: int) -> T:
    """Rank 0's `obj` on every rank (the others pass None). Every rank must call it."""
    if num_processes == 1:
        return obj  # type: ignore[return-value]
    from accelerate.utils import broadcast_object_list

    box = [obj]
    broadcast_object_list(box, from_process=0)
    return box[0]  # type: ignore[return-value]
