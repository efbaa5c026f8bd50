"""Our reward manager is verl's own `NaiveRewardManager.run_single` plus the rollout's identity in `extra_info`:
every field verl's manager hands the reward function reaches ours unchanged, and a group's rows, which share
one `extra_info` dict after verl's repeat, each keep their own identity."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import numpy as np
import pytest
from reward_batches import batch
from scripted_judge import SAMPLE

pytest.importorskip("verl.experimental.reward_loop")


class Recorder:
    """A reward function that records its kwargs and scores by the answer's length."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> dict[str, float]:
        self.calls.append(copy.deepcopy(kwargs))
        return {"score": float(len(kwargs["solution_str"])), "seen": 1.0}


def managers(tokenizer_dir: str) -> tuple[Any, Any, Recorder, Recorder]:
    """verl's plain manager and ours, each with its own recorder."""
    from transformers import AutoTokenizer
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

    from writing_rl.verl.reward_manager import WritingRewardManager

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    theirs, ours = Recorder(), Recorder()
    return NaiveRewardManager(None, tok, theirs), WritingRewardManager(None, tok, ours), theirs, ours


def with_agent_loop_fields(data):  # type: ignore[no-untyped-def]
    """What verl's agent loop adds to a row: tool fields, the turn count and the rollout's own reward scores."""
    tool_fields = np.empty(len(data), dtype=object)
    tool_fields[:] = [{"tool_calls": 2, "sandbox": "ok"} for _ in range(len(data))]
    scores = np.empty(len(data), dtype=object)
    scores[:] = [{"format": 0.5} for _ in range(len(data))]
    data.non_tensor_batch.update(
        {"tool_extra_fields": tool_fields, "__num_turns__": np.array([3] * len(data)), "reward_scores": scores}
    )
    return data


async def test_verls_fields_reach_the_reward_as_with_verls_own_manager(tiny_tokenizer):
    naive, ours, theirs_seen, ours_seen = managers(tiny_tokenizer)
    rows = [(SAMPLE, "g", "good good", 4)]
    expected = await naive.run_single(with_agent_loop_fields(batch(tiny_tokenizer, rows, step=7)))
    out = await ours.run_single(with_agent_loop_fields(batch(tiny_tokenizer, rows, step=7)))

    assert out == expected == {"reward_score": 9.0, "reward_extra_info": {"score": 9.0, "seen": 1.0}}
    (theirs,), (mine,) = theirs_seen.calls, ours_seen.calls
    assert theirs["extra_info"]["tool_calls"] == 2 and theirs["extra_info"]["num_turns"] == 3  # what verl adds
    assert theirs["extra_info"]["rollout_reward_scores"] == {"format": 0.5}
    identity = {"uid": "g", "rollout_id": "4", "global_steps": 7}
    assert mine == theirs | {"extra_info": theirs["extra_info"] | identity}  # verl's call, plus the identity


async def test_rows_sharing_one_extra_info_keep_their_own_identity(tiny_tokenizer):
    """verl's repeat (`np.repeat` of the object column) leaves a group's rows holding one `extra_info` dict, and
    verl's run_single writes into the dict it gets: identity set in place would leak between the rollouts."""
    _, ours, _, seen = managers(tiny_tokenizer)
    group = batch(tiny_tokenizer, [(SAMPLE, "g", "good", None)], step=2).repeat(3, interleave=True)
    group.non_tensor_batch["session_id"] = np.array([0, 1, 2])  # as the agent loop numbers a group's rollouts
    shared = group.non_tensor_batch["extra_info"][0]
    assert all(info is shared for info in group.non_tensor_batch["extra_info"])
    before = copy.deepcopy(shared)

    await asyncio.gather(*(ours.run_single(group[i : i + 1]) for i in range(3)))

    assert sorted(call["extra_info"]["rollout_id"] for call in seen.calls) == ["0", "1", "2"]
    assert shared == before  # the batch's dict is left as it was
