"""In-test stand-ins for the curriculum (the `GroupCurriculum` protocol), reached through `curriculum_factory`.

`Recording` keeps the method's contract in one process: the first ask fixes a group's level (from `LEVELS`,
by sample key, else 0); every report is recorded. `RecordingActor` is the same behind a named Ray actor, so
reward workers in other processes share it.
"""

from __future__ import annotations

from typing import Any

LEVELS: dict[str, int] = {}
INSTANCES: dict[str, Recording] = {}


class Recording:
    def __init__(self) -> None:
        self.levels: dict[str, int] = {}
        self.asks: list[tuple[str, str, int, int]] = []
        self.reports: list[dict[str, Any]] = []

    async def assign(self, uid: str, sample_key: str, n_refs: int, step: int) -> int:
        self.asks.append((uid, sample_key, n_refs, step))
        return self.levels.setdefault(uid, LEVELS.get(sample_key, 0))

    async def report(self, uid, rollout_id, sample_key, n_refs, level, outcome, step, record=None) -> None:  # type: ignore[no-untyped-def]
        self.reports.append(
            {
                "uid": uid,
                "rollout_id": rollout_id,
                "sample_key": sample_key,
                "n_refs": n_refs,
                "level": level,
                "outcome": outcome,
                "step": step,
                "record": record,
            }
        )


def connect_local(name: str) -> Recording:
    return INSTANCES.setdefault(name, Recording())


class RecordingActor(Recording):
    def __init__(self, levels: dict[str, int]) -> None:
        super().__init__()
        LEVELS.update(levels)

    async def state(self) -> dict[str, Any]:
        return {"asks": self.asks, "reports": self.reports}


class _ActorClient:
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def assign(self, *args: Any) -> int:
        return await self.handle.assign.remote(*args)

    async def report(self, *args: Any) -> None:
        await self.handle.report.remote(*args)


def connect_actor(name: str) -> _ActorClient:
    import ray

    return _ActorClient(ray.get_actor(name))
