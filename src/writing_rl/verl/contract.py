"""What the verl reward function needs from the curriculum, whoever serves it (a Ray actor or a local object).

verl scores each rollout on its own, in reward workers that may sit on different nodes, so the rollouts of one
prompt's group (one `uid`) arrive separately. The curriculum keeps the method's semantics anyway:

- `assign` fixes the group's level on the first ask; every later ask for the same `uid` gets the same level,
  so all rollouts of a group face the same reference.
- `report` is idempotent per (`uid`, `rollout_id`): a retried reward call cannot count twice. A group is
  decided (promotion or not) once all its rollouts have reported, or flushed with what it has after a
  configured number of steps. An unknown verdict (`outcome=None`) reports, so the group completes, but
  moves nothing. The rollout's record, when sent along, joins the run's rollout records once its report
  counts (a retried call's copy does not), so a verl run folder answers `writing-rl rollouts` as a TRL one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..outcome import Outcome

if TYPE_CHECKING:
    from ..rollouts import RolloutRecord


class GroupCurriculum(Protocol):
    async def assign(self, uid: str, sample_key: str, n_refs: int, step: int) -> int:
        """The reference index this group is judged against (0 = weakest)."""
        ...

    async def report(
        self,
        uid: str,
        rollout_id: str,
        sample_key: str,
        n_refs: int,
        level: int,
        outcome: Outcome | None,
        step: int,
        record: RolloutRecord | None = None,
    ) -> None:
        """One rollout's verdict against `level`; duplicates of (uid, rollout_id) are ignored."""
        ...
