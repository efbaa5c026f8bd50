"""verl's naive reward manager, plus the rollout's identity for the curriculum:

    reward.reward_manager: {source: importlib, name: WritingRewardManager,
                            module: {path: pkg://writing_rl.verl.reward_manager}}

verl 0.9.1's `NaiveRewardManager.run_single` calls the reward function with the row's `data_source`,
`reward_model.ground_truth` and `extra_info` only. The curriculum also needs to know which group a rollout
belongs to and which rollout of the group it is, so this manager adds, from the row's non-tensor fields:

- `uid`: the prompt's group id (verl's trainer gives each prompt of a step a fresh uuid; its `rollout.n`
  rollouts share it),
- `rollout_id`: the rollout's `session_id` (0..n-1 within the group; verl's v1 agent loop sets it), so a
  retried call reports the same id and cannot count twice. Rows without one (the batch path,
  `RewardLoopManager.compute_rm_score`) get a fresh random id: they are scored exactly once,
- `global_steps`: the training step (a row field in the v1 agent loop, else the batch's `meta_info`).

This module imports verl at load time: verl loads it, in the `verl` environment only.
"""

from __future__ import annotations

import uuid
from typing import Any

from verl import DataProto
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager


def _scalar(value: Any) -> Any:
    """numpy scalars (what DataProto rows hold) to Python values."""
    return value.item() if hasattr(value, "item") else value


def rollout_identity(data: DataProto) -> dict[str, Any]:
    """`uid`, `rollout_id` and `global_steps` of the single row in `data` (None where verl gave none)."""
    row = data[0].non_tensor_batch
    uid = row.get("uid")
    session = row.get("session_id")
    step = row.get("global_steps", data.meta_info.get("global_steps"))
    return {
        "uid": None if uid is None else str(_scalar(uid)),
        "rollout_id": str(_scalar(session)) if session is not None else uuid.uuid4().hex,
        "global_steps": None if step is None else int(_scalar(step)),
    }


class WritingRewardManager(NaiveRewardManager):
    """Scores one rollout with `compute_score(..., uid=, rollout_id=, global_steps=)`."""

    async def run_single(self, data: DataProto) -> dict:
        data = data[-1:]  # as verl's naive manager: a multi-turn output is scored on its last sequence
        item = data[0]
        response_ids = item.batch["responses"]
        valid = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
        text = await self.loop.run_in_executor(
            None, lambda: self.tokenizer.decode(response_ids[:valid], skip_special_tokens=True)
        )
        kwargs = {
            "data_source": item.non_tensor_batch["data_source"],
            "solution_str": text,
            "ground_truth": item.non_tensor_batch["reward_model"]["ground_truth"],
            "extra_info": dict(item.non_tensor_batch.get("extra_info") or {}),
            **rollout_identity(data),
        }
        if self.is_async_reward_score:
            result = await self.compute_score(**kwargs)
        else:
            result = await self.loop.run_in_executor(None, lambda: self.compute_score(**kwargs))
        if isinstance(result, dict):
            return {"reward_score": result["score"], "reward_extra_info": dict(result)}
        return {"reward_score": result, "reward_extra_info": {"acc": result}}
