"""verl's naive reward manager, plus the rollout's identity for the curriculum:

    reward.reward_manager: {source: importlib, name: WritingRewardManager,
                            module: {path: pkg://writing_rl.verl.reward_manager}}

verl 0.9.1's `NaiveRewardManager.run_single` calls the reward function with the row's `data_source`,
`reward_model.ground_truth` and `extra_info` only (into which it merges the row's `tool_extra_fields`,
`num_turns` and `rollout_reward_scores`). The curriculum also needs to know which group a rollout belongs to
and which rollout of the group it is, so this manager adds to a copy of the row's `extra_info`, then leaves
the rest to verl's own `run_single`:

- `uid`: the prompt's group id (verl's trainer gives each prompt of a step a fresh uuid; its `rollout.n`
  rollouts share it),
- `rollout_id`: the rollout's `session_id` (0..n-1 within the group; verl's v1 agent loop sets it), so a
  retried call reports the same id and cannot count twice. Rows without one (the batch path,
  `RewardLoopManager.compute_rm_score`) carry nothing else that tells a group's rollouts apart: verl repeats
  the prompt's row `rollout.n` times (same `uid`, `index`, `extra_info`) and the worker gets each row alone,
  without its position. Their id is a digest of the response tokens, so a retried batch and the copies of
  the first rows that `compute_rm_score` pads the batch with report the same ids and count once; two
  rollouts of one group with token-identical responses count once too (the group then waits for its flush),
- `global_steps`: the training step (a row field in the v1 agent loop, else the batch's `meta_info`).

A copy, because verl's repeat leaves a group's rows sharing one `extra_info` dict, and verl's `run_single`
writes into the dict it is given: identity set in place would reach the group's other rollouts.

This module imports verl at load time: verl loads it, in the `verl` environment only, after the version check.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from .version import check_verl_version

check_verl_version()  # before the experimental import below: a clear error instead of its ImportError

from verl import DataProto  # noqa: E402
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager  # noqa: E402


def _scalar(value: Any) -> Any:
    """numpy scalars (what DataProto rows hold) to Python values."""
    return value.item() if hasattr(value, "item") else value


def response_ids(data: DataProto) -> torch.Tensor:
    """The single row's response tokens without padding."""
    ids = data[0].batch["responses"]
    return ids[: int(data[0].batch["attention_mask"][-ids.shape[-1] :].sum())]


def response_digest(ids: torch.Tensor) -> str:
    """The batch path's rollout id: the same response tokens, the same id (see the module docstring)."""
    return "response-" + hashlib.blake2b(ids.to(torch.int64).numpy().tobytes(), digest_size=12).hexdigest()


def rollout_identity(data: DataProto) -> dict[str, Any]:
    """`uid`, `rollout_id` and `global_steps` of the single row in `data` (None where verl gave none)."""
    row = data[0].non_tensor_batch
    uid = row.get("uid")
    session = row.get("session_id")
    step = row.get("global_steps", data.meta_info.get("global_steps"))
    return {
        "uid": None if uid is None else str(_scalar(uid)),
        "rollout_id": str(_scalar(session)) if session is not None else response_digest(response_ids(data)),
        "global_steps": None if step is None else int(_scalar(step)),
    }


def with_identity(data: DataProto) -> DataProto:
    """The row verl's `run_single` scores (the last), its `extra_info` a copy holding `rollout_identity`;
    `data` itself is left as it was."""
    last = data[-1:]  # a new DataProto: replacing a key of its non-tensor batch leaves `data`'s alone
    extra = dict(last[0].non_tensor_batch.get("extra_info") or {})
    extra.update(rollout_identity(last))
    column = np.empty(1, dtype=object)
    column[0] = extra
    last.non_tensor_batch["extra_info"] = column
    return last


class WritingRewardManager(NaiveRewardManager):
    """verl's naive manager; the reward function finds `uid`, `rollout_id` and `global_steps` in `extra_info`."""

    async def run_single(self, data: DataProto) -> dict:
        return await super().run_single(with_identity(data))
