"""The curriculum as a named Ray actor, so verl's reward workers on every node share one curriculum.

`start_curriculum` creates it (or returns the one already running under that name) on the driver's node,
where the run folder is: its store is the run folder's `curriculum.sqlite`, its per-step line goes to
`metrics.jsonl` and the rollout records to `rollouts.jsonl`, so `writing-rl curriculum show RUN`,
`writing-rl rollouts RUN` and `writing-rl report RUN` read a verl run like a TRL one. The actor is *not* detached: it lives as long as the job that started it (`writing-rl train-verl`),
so a crashed run cannot leave a stale curriculum (with half-reported groups) behind for the next run to
pick up by name; the next run starts a fresh actor and restores it from the checkpoint it resumes.

Ray runs an actor's calls one at a time, which is all the locking `CurriculumGroups` needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..curriculum import Curriculum, CurriculumConfig
from ..outcome import Outcome
from ..rollouts import RolloutRecord, RolloutSettings, RolloutWriter
from ..run_layout import CURRICULUM_STORE, METRICS
from .groups import DEFAULT_ACTOR_NAME, CurriculumGroups, GroupSettings


class RunFolderCurriculum(CurriculumGroups):
    """`CurriculumGroups` over a run folder's store and metrics file (the body of the Ray actor)."""

    def __init__(
        self, run_dir: str, config: CurriculumConfig, settings: GroupSettings, rollouts: RolloutSettings | None = None
    ):
        run = Path(run_dir)
        writer = RolloutWriter(run, rollouts or RolloutSettings())
        super().__init__(Curriculum(config, run / CURRICULUM_STORE), settings, run / METRICS, writer)


CurriculumActor = ray.remote(max_restarts=0)(RunFolderCurriculum)


def start_curriculum(
    run_dir: str | Path,
    config: CurriculumConfig,
    settings: GroupSettings,
    name: str = DEFAULT_ACTOR_NAME,
    namespace: str | None = None,
    rollouts: RolloutSettings | None = None,
) -> ray.actor.ActorHandle:
    """The named curriculum actor, created on this node if it does not exist yet (Ray must be initialised)."""
    here = ray.get_runtime_context().get_node_id()
    return CurriculumActor.options(  # type: ignore[attr-defined]
        name=name,
        namespace=namespace,
        get_if_exists=True,
        num_cpus=0,  # bookkeeping only: leave every CPU to verl's resource pools
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
    ).remote(str(Path(run_dir).resolve()), config, settings, rollouts)


class CurriculumClient:
    """`GroupCurriculum` over the actor's handle: awaitable calls for verl's async reward path."""

    def __init__(self, handle: ray.actor.ActorHandle):
        self.handle = handle

    async def assign(self, uid: str, sample_key: str, n_refs: int, step: int) -> int:
        return await self.handle.assign.remote(uid, sample_key, n_refs, step)

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
        await self.handle.report.remote(uid, rollout_id, sample_key, n_refs, level, outcome, step, record)

    def snapshot(self, step: int | None = None) -> dict[str, Any]:
        return ray.get(self.handle.snapshot.remote(step))

    def restore(self, snapshot: dict[str, Any]) -> None:
        ray.get(self.handle.restore.remote(snapshot))


def connect_curriculum(name: str = DEFAULT_ACTOR_NAME, namespace: str | None = None) -> CurriculumClient:
    """The running curriculum actor `name` (in the caller's Ray namespace unless one is given); a `GroupCurriculum`."""
    try:
        handle = ray.get_actor(name, namespace=namespace)
    except ValueError as err:
        raise RuntimeError(
            f"no curriculum actor '{name}' in this Ray cluster: start the run with `writing-rl train-verl`"
        ) from err
    return CurriculumClient(handle)
