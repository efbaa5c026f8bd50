"""The judge each training process calls: the embedded server's lifetime, and each rank's share and cache.

`rank_reward` builds only what `reward.kind` calls: the pairwise judge, or the pointwise scorer (a rule, or the
critic), each with its own cache file and its own credentials check, never the other's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..critic import CriticConfig
from ..judge import JudgeConfig, PairwiseJudge, build_judge
from ..judge.cache import JudgeCache, rank_cache_path
from ..judge.judgement import Judge
from ..pointwise import CriticScorer, PointScorer, PointwiseReward, build_scorer, called_endpoint, check_credentials
from ..reward import PairwiseReward
from .config import TrainConfig
from .trl_inputs import process_state


@contextlib.contextmanager
def judge_endpoint(cfg: TrainConfig, run_dir: Path) -> Iterator[TrainConfig]:
    """The config to use, its `base_url: local` endpoints (the judge's and the critic's) pointed at the embedded
    judge, which the main process starts with `local_judge.enabled` (the same address on every rank)."""
    from ..server import local_judge_limits, local_server, point_local_endpoints

    judge = local_judge_limits(cfg.judge, cfg.local_judge)

    def served(url: str | None) -> TrainConfig:
        critic = None if cfg.critic is None else point_local_endpoints(cfg.critic, url)
        return cfg.model_copy(update={"judge": point_local_endpoints(judge, url), "critic": critic})

    if not cfg.local_judge.enabled:
        yield served(None)
        return
    from accelerate.utils import broadcast_object_list

    state = process_state()
    server = None
    box: list[Any] = [None]
    try:
        if state.is_main_process:
            server = local_server(cfg.local_judge, run_dir).start()
            box = [server.base_url]
        if state.num_processes > 1:
            broadcast_object_list(box, from_process=0)
        yield served(box[0])
    finally:
        if server is not None:
            server.stop()


@contextlib.contextmanager
def rank_judge(judge_cfg: JudgeConfig, run_dir: Path, rank: int, world_size: int) -> Iterator[Judge]:
    """This process's judge: its share of the endpoint's `max_concurrency` (the configured number is the
    total over all ranks), and a cache file of its own that it holds locked until the run ends, so no
    SQLite file is shared by processes that may sit on different hosts (shared WAL breaks on NFS)."""
    if judge_cfg.backend == "rule":
        yield build_judge(judge_cfg)
        return
    cache_path = rank_cache_path(judge_cfg.cache_path or run_dir / "judge_cache.sqlite", rank, world_size)
    share = judge_cfg.endpoint.for_rank(rank, world_size, "judge.endpoint")
    cache = JudgeCache(cache_path, exclusive=True)
    try:
        yield PairwiseJudge(
            judge_cfg.model_copy(update={"endpoint": share, "cache_path": str(cache_path)}), cache=cache
        )
    finally:
        cache.close()


@contextlib.contextmanager
def rank_scorer(cfg: TrainConfig, run_dir: Path, rank: int, world_size: int) -> Iterator[PointScorer]:
    """This process's pointwise scorer (`reward.kind: pointwise`): the rule, or the critic with its share of the
    endpoint's `max_concurrency` and a cache file of its own, as `rank_judge` gives the pairwise judge."""
    called = called_endpoint(cfg.reward.kind, cfg.judge, cfg.critic)
    field = called[0] if called else "critic.endpoint"

    def for_rank(critic: CriticConfig) -> CriticConfig:
        cache_path = rank_cache_path(critic.cache_path or run_dir / "critic_cache.sqlite", rank, world_size)
        share = critic.endpoint.for_rank(rank, world_size, field)
        return critic.model_copy(update={"endpoint": share, "cache_path": str(cache_path)})

    scorer = build_scorer(cfg.judge, cfg.critic, for_rank)
    try:
        yield scorer
    finally:
        if isinstance(scorer, CriticScorer) and scorer.critic.cache is not None:
            scorer.critic.cache.close()


@contextlib.contextmanager
def rank_reward(
    cfg: TrainConfig, run_dir: Path, rank: int, world_size: int
) -> Iterator[PairwiseReward | PointwiseReward]:
    """This process's reward for `cfg.reward.kind`, with the credentials of the endpoint it calls checked now
    (a `ConfigError`, before training starts). `cfg`: the config as `judge_endpoint` resolved it."""
    reward: PairwiseReward | PointwiseReward
    with contextlib.ExitStack() as stack:
        if cfg.reward.kind == "pointwise":
            reward = PointwiseReward(stack.enter_context(rank_scorer(cfg, run_dir, rank, world_size)), cfg.reward)
        else:
            reward = PairwiseReward(stack.enter_context(rank_judge(cfg.judge, run_dir, rank, world_size)), cfg.reward)
        check_credentials(reward)
        yield reward
