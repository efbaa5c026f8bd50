"""The curriculum for verl's scattered rollouts: one level per group, each group decided exactly once.

verl scores every rollout on its own (reward workers on any node), so `CurriculumGroups` gathers a group's
outcomes by `uid` and hands the whole group to our `Curriculum` once, exactly as the TRL engine does after
each generation batch. It is plain Python (the Ray actor in `curriculum_actor.py` only wraps it), and every
call is expected one at a time (a Ray actor runs its methods serially).

Steps are verl's `global_steps` (the step being trained, 1-based), as metrics.jsonl and the rollout records
number them; the store is stamped with the steps completed before the batch (`completed_steps`), as in TRL
(`run_layout` documents both), so `static` milestones, `curriculum show` and the report's level plot mean the
same thing for both engines.

Each counted report's rollout record (sent by the reward function) is appended to the run folder's
`rollouts.jsonl` right away, numbered by its arrival in the group (`index`); duplicates and refused reports
write nothing, so the file holds one record per rollout the curriculum counted. The step's metrics line
summarises those same records with the TRL engine's function (`step_metrics`: `judge/*`, `reward/*`), next to
the curriculum's own counts (`curriculum/*`, decisions counted when made).

Memory stays bounded: a decided group's uid is remembered for `forget_after_steps` steps, and any report or
ask older than that is refused by its step, so a late duplicate can never start the group again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..curriculum import Curriculum
from ..outcome import Outcome
from ..rollouts import RolloutRecord, RolloutWriter
from ..run_layout import completed_steps
from ..step_metrics import step_metrics

SNAPSHOT_VERSION = 1
DEFAULT_ACTOR_NAME = "writing_rl_curriculum"  # the Ray actor's name unless the recipe names another


class FlushSettings(BaseModel):
    """How long an incomplete group waits, and how long a decided one is remembered."""

    model_config = ConfigDict(extra="forbid")

    flush_after_steps: int = Field(
        2, ge=1, description="decide a group with the outcomes it has once it is this many steps old"
    )
    forget_after_steps: int = Field(
        8, ge=1, description="forget decided groups this many steps after their step; older reports are refused"
    )

    @model_validator(mode="after")
    def _check(self) -> FlushSettings:
        if self.forget_after_steps < self.flush_after_steps:
            raise ValueError(
                "forget_after_steps must be at least flush_after_steps (a pending group is never forgotten)"
            )
        return self


class GroupSettings(FlushSettings):
    group_size: int = Field(1, ge=1, description="rollouts per prompt (verl's actor_rollout_ref.rollout.n)")


class GroupSample(NamedTuple):
    """What `Curriculum` reads of a sample: its key and how many references it has."""

    key: str
    references: range


@dataclass
class PendingGroup:
    sample_key: str
    n_refs: int
    level: int
    step: int  # the step of the first ask or report
    outcomes: dict[str, Outcome | None] = field(default_factory=dict)  # rollout_id -> outcome


@dataclass
class StepCounts:
    """What the run folder's metrics.jsonl gets for one step: the records of the reports counted (for
    `step_metrics`), and the curriculum's decisions, counted when made."""

    records: list[RolloutRecord] = field(default_factory=list)
    groups: int = 0
    flushed: int = 0
    promotions: int = 0
    duplicates: int = 0
    refused: int = 0


class CurriculumGroups:
    def __init__(
        self,
        curriculum: Curriculum,
        settings: GroupSettings,
        metrics_path: str | Path | None = None,
        rollouts: RolloutWriter | None = None,
    ):
        self.curriculum = curriculum
        self.settings = settings
        self.metrics_path = Path(metrics_path) if metrics_path else None
        self.rollouts = rollouts
        self.pending: dict[str, PendingGroup] = {}
        self.decided: dict[str, tuple[int, int]] = {}  # uid -> (step, level), insertion-ordered by decision
        self.step = 0  # the latest step seen
        self.counts = StepCounts()
        self.logged_step = 0  # the last step written to metrics.jsonl

    # -- the contract (GroupCurriculum), synchronous ------------------------------------------------
    def assign(self, uid: str, sample_key: str, n_refs: int, step: int) -> int:
        self._advance(step)
        if uid in self.pending:
            return self.pending[uid].level
        if uid in self.decided:
            return self.decided[uid][1]
        level = self.curriculum.level(GroupSample(sample_key, range(n_refs)), completed_steps(step))  # type: ignore[arg-type]
        if not self._too_old(step):
            self.pending[uid] = PendingGroup(sample_key, n_refs, level, step)
        return level

    def report(
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
        self._advance(step)
        if uid in self.decided or (self._too_old(step) and uid not in self.pending):
            self.counts.refused += uid not in self.decided
            self.counts.duplicates += uid in self.decided
            return
        group = self.pending.setdefault(uid, PendingGroup(sample_key, n_refs, level, step))
        if (group.sample_key, group.n_refs, group.level) != (sample_key, n_refs, level):
            raise ValueError(
                f"group {uid}: report for sample {sample_key!r} at level {level}/{n_refs} refs, but the group is "
                f"sample {group.sample_key!r} at level {group.level}/{group.n_refs} refs"
            )
        if rollout_id in group.outcomes:
            self.counts.duplicates += 1
            return
        if record is not None:
            record = record.model_copy(update={"index": len(group.outcomes)})
            self.counts.records.append(record)
            if self.rollouts is not None:
                self.rollouts.write([record])
        group.outcomes[rollout_id] = outcome
        if len(group.outcomes) >= self.settings.group_size:
            self._decide(uid)

    # -- time ----------------------------------------------------------------------------------------
    def flush(self, step: int | None = None) -> int:
        """Decide every pending group at least `flush_after_steps` older than `step`; returns how many."""
        step = self.step if step is None else step
        stale = [u for u, g in self.pending.items() if g.step <= step - self.settings.flush_after_steps]
        for uid in stale:
            self.counts.flushed += 1
            self._decide(uid)
        return len(stale)

    def _advance(self, step: int) -> None:
        if step <= self.step:
            return
        self._write_metrics(upto=step - 1)
        self.step = step
        self.flush(step)
        horizon = step - self.settings.forget_after_steps
        for uid in [u for u, (s, _) in self.decided.items() if s < horizon]:
            del self.decided[uid]

    def _too_old(self, step: int) -> bool:
        return step < self.step - self.settings.forget_after_steps

    def _decide(self, uid: str) -> None:
        group = self.pending.pop(uid)
        outcomes: Sequence[Outcome | None] = list(group.outcomes.values())
        sample = GroupSample(group.sample_key, range(group.n_refs))
        result = self.curriculum.record(sample, group.level, outcomes, completed_steps(group.step))  # type: ignore[arg-type]
        self.decided[uid] = (group.step, group.level)
        self.counts.groups += 1
        self.counts.promotions += result.promoted

    # -- run folder ----------------------------------------------------------------------------------
    def _write_metrics(self, upto: int) -> None:
        """One metrics.jsonl line for the step just closed: the judge and reward keys of its counted records
        (omitted when no report sent one), and the curriculum's keys."""
        c = self.counts
        if self.metrics_path is None or upto <= self.logged_step or not (c.groups or c.records):
            self.logged_step = max(self.logged_step, upto)
            return
        levels = self.curriculum.store.levels()
        row = {
            "step": upto,
            "time": time.time(),
            **(step_metrics(c.records) if c.records else {}),
            "curriculum/promotions": float(c.promotions),
            "curriculum/mean_level": sum(levels.values()) / max(len(levels), 1),
            "curriculum/groups": float(c.groups),
            "curriculum/flushed_groups": float(c.flushed),
            "curriculum/duplicate_reports": float(c.duplicates),
            "curriculum/refused_reports": float(c.refused),
        }
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        with self.metrics_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        self.counts = StepCounts()
        self.logged_step = upto

    def finish(self) -> None:
        """End of training: the last step's metrics line."""
        self._write_metrics(upto=self.step)

    # -- checkpoints ---------------------------------------------------------------------------------
    def snapshot(self, step: int | None = None) -> dict[str, Any]:
        """Store, pending groups and remembered decisions as JSON-able data.

        Pending groups travel with the snapshot: after a restore, their missing rollouts may still report
        (verl re-issues in-flight prompts in its async modes), or the group is flushed `flush_after_steps`
        later with what it has. With `step` (the checkpoint's), that step's metrics line is written first.
        """
        if step is not None:
            self._write_metrics(upto=step)
        return {
            "version": SNAPSHOT_VERSION,
            "step": self.step,
            "store": self.curriculum.store.snapshot(),
            "pending": {uid: asdict(g) for uid, g in self.pending.items()},
            "decided": [[uid, s, lvl] for uid, (s, lvl) in self.decided.items()],
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Back to exactly the snapshot's state; metrics.jsonl and rollouts.jsonl lose the lines of later steps."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"curriculum snapshot version {snapshot.get('version')!r}, expected {SNAPSHOT_VERSION}")
        self.curriculum.store.restore(snapshot["store"])
        self.pending = {uid: PendingGroup(**g) for uid, g in snapshot["pending"].items()}
        self.decided = {uid: (s, lvl) for uid, s, lvl in snapshot["decided"]}
        self.step = self.logged_step = int(snapshot["step"])
        self.counts = StepCounts()
        from ..jsonl import trim_steps

        for path in (self.metrics_path, None if self.rollouts is None else self.rollouts.path):
            if path is not None:
                trim_steps(path, self.step)

    def levels(self) -> dict[str, int]:
        return self.curriculum.store.levels()
