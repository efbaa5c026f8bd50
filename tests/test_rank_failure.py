"""Rank 0 failing while it settles a batch stops every rank at once, instead of leaving the others waiting in
the broadcast until the collective's timeout (tens of minutes on NCCL)."""

from __future__ import annotations

import pytest

from writing_rl.curriculum import Curriculum, CurriculumConfig
from writing_rl.data import Sample
from writing_rl.engines import trl_grpo
from writing_rl.engines.trl_grpo import RankZeroFailed, Settled, WritingReward
from writing_rl.judge import JudgeConfig, build_judge
from writing_rl.reward import PairwiseReward, RewardConfig


@pytest.fixture
def reward_fn(tmp_path):  # type: ignore[no-untyped-def]
    sample = Sample(id=0, prompt="Write.", references=["a reference text"])
    judge = build_judge(JudgeConfig(backend="rule", rule={"name": "low_repetition"}))
    fn = WritingReward([sample], PairwiseReward(judge, RewardConfig()), Curriculum(CurriculumConfig(), tmp_path / "c"))
    yield fn
    fn.reward.close()


def test_rank_zero_tells_the_others_then_raises_its_own_error(reward_fn, monkeypatch):
    sent: list[Settled] = []
    monkeypatch.setattr(trl_grpo, "gather_to_main", lambda items, world: list(items))  # rank 0: gets them

    def broadcast(obj, world):  # type: ignore[no-untyped-def]
        sent.append(obj)
        return obj

    def disk_full(records, step):  # type: ignore[no-untyped-def]
        raise OSError("No space left on device")

    monkeypatch.setattr(trl_grpo, "broadcast_from_main", broadcast)
    monkeypatch.setattr(reward_fn, "_decide", disk_full)
    with pytest.raises(OSError, match="No space left"):
        reward_fn.settle([], step=3, local={"time/judge_s": 0.0}, log_metric=None)
    assert sent[0].failed == "OSError: No space left on device"


def test_another_rank_stops_with_rank_zeros_reason(reward_fn, monkeypatch):
    monkeypatch.setattr(trl_grpo, "gather_to_main", lambda items, world: None)  # not rank 0
    failed = Settled({}, failed="OSError: No space left on device")
    monkeypatch.setattr(trl_grpo, "broadcast_from_main", lambda obj, world: failed)
    logged: list[str] = []
    with pytest.raises(RankZeroFailed, match="rank 0 failed while settling step 3: OSError: No space left"):
        reward_fn.settle([], step=3, local={"time/judge_s": 0.0}, log_metric=lambda name, v: logged.append(name))
    assert logged == []  # nothing half-logged
