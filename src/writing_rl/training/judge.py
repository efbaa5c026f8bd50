"""The judge each training process calls: the embedded server's lifetime, and each rank's share and cache.

`rank_reward` builds only what `reward.kind` calls: the pairwise judge, or the pointwise scorer (a rule, or the
critic), each with its own cache file and its own credentials check, never the other's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..critic import CriticConfig, PointwiseCritic
from ..endpoint import EndpointError, OpenAICompatClient
from ..errors import ConfigError
from ..judge import JudgeConfig, PairwiseJudge, build_judge
from ..judge.cache import JudgeCache, rank_cache_path
from ..judge.judgement import Judge
from ..pointwise import CriticScorer, PointScorer, PointwiseReward, RuleScorer, critic_for
from ..reward import PairwiseReward
from .config import TrainConfig
from .trl_inputs import process_state


@contextlib.contextmanager
def judge_endpoint(cfg: TrainConfig, run_dir: Path) -> Iterator[JudgeConfig]:
    """The judge config to use; with `local_judge.enabled` the main process starts the embedded judge
    and every rank's `base_url: local` endpoints point at it."""
    from ..server import local_judge_limits, local_server, point_local_endpoints

    judge = local_judge_limits(cfg.judge, cfg.local_judge)
    if not cfg.local_judge.enabled:
        yield point_local_endpoints(judge, None)
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
        yield point_local_endpoints(judge, box[0])
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
def rank_scorer(
    judge_cfg: JudgeConfig,
    critic: CriticConfig | None,
    run_dir: Path,
    rank: int,
    world_size: int,
    local_url: str | None,
) -> Iterator[PointScorer]:
    """This process's pointwise scorer (`reward.kind: pointwise`): the rule, or the critic with its share of the
    endpoint's `max_concurrency` and a cache file of its own, as `rank_judge` gives the pairwise judge.
    `local_url`: the embedded judge's address, for a critic whose endpoint says `base_url: local`."""
    if judge_cfg.backend == "rule":
        assert judge_cfg.rule is not None  # the config validator guarantees it
        yield RuleScorer(judge_cfg.rule.name)
        return
    from ..server import point_local_endpoints

    cfg = point_local_endpoints(critic_for(judge_cfg, critic), local_url)
    cache_path = rank_cache_path(cfg.cache_path or run_dir / "critic_cache.sqlite", rank, world_size)
    share = cfg.endpoint.for_rank(rank, world_size, "critic.endpoint")
    scorer = CriticScorer(PointwiseCritic(cfg.model_copy(update={"endpoint": share, "cache_path": str(cache_path)})))
    try:
        yield scorer
    finally:
        if scorer.critic.cache is not None:
            scorer.critic.cache.close()


@contextlib.contextmanager
def rank_reward(
    cfg: TrainConfig, judge_cfg: JudgeConfig, run_dir: Path, rank: int, world_size: int
) -> Iterator[PairwiseReward | PointwiseReward]:
    """This process's reward for `cfg.reward.kind`, with the credentials of the endpoint it calls checked now
    (a `ConfigError`, before training starts). `judge_cfg`: the judge as `judge_endpoint` resolved it."""
    if cfg.reward.kind == "pointwise":
        local_url = judge_cfg.endpoint.base_url if cfg.local_judge.enabled else None
        with rank_scorer(judge_cfg, cfg.critic, run_dir, rank, world_size, local_url) as scorer:
            if isinstance(scorer, CriticScorer):
                _check_credentials(scorer.critic.client)
            yield PointwiseReward(scorer, cfg.reward)
        return
    with rank_judge(judge_cfg, run_dir, rank, world_size) as judge:
        if isinstance(judge, PairwiseJudge):
            _check_credentials(judge.client)
        yield PairwiseReward(judge, cfg.reward)


def _check_credentials(client: OpenAICompatClient) -> None:
    try:
        client.check_credentials()
    except EndpointError as err:
        raise ConfigError(str(err)) from None
