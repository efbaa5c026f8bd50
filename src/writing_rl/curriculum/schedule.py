"""Which reference each prompt is compared against, and when it moves up.

- `dynamic` (the method): each sample starts at its weakest reference and is promoted on success,
  judged over its whole GRPO group; at the top it stays against the strongest.
- `static`: every sample's level rises together at fixed steps (`milestones`).
- `none`: a random reference each step (the same one for the whole group), for the ablation.
- `fixed`: always the reference at `fixed_level` (-1: the strongest), the ablation's fixed baseline.

`step` is everywhere the number of steps completed before the batch (`run_layout`'s step numbering).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..data import Sample
from ..outcome import Outcome
from .store import CurriculumStore, RecordResult


class CurriculumConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedule: Literal["dynamic", "static", "none", "fixed"] = "dynamic"
    rule: Literal["wins", "win_rate"] = Field(
        "wins", description="dynamic: promote after `wins_to_promote` wins at a level, or on a win rate over a window"
    )
    wins_to_promote: int = Field(1, ge=1, description="rule=wins: wins needed at the current level (the paper: 1)")
    window: int = Field(8, ge=1, description="rule=win_rate: most recent outcomes at the current level to look at")
    min_win_rate: float = Field(
        0.5, gt=0, le=1, description="rule=win_rate: promote when the window's rate reaches this"
    )
    tie_credit: float = Field(0.0, ge=0, le=1, description="how much a tie counts as a win for promotion")
    milestones: list[int] = Field(default_factory=list, description="static: steps at which every level rises by one")
    fixed_level: int = Field(
        -1, description="fixed: the reference index every sample uses; negative counts from the strongest"
    )
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> CurriculumConfig:
        if self.milestones != sorted(self.milestones):
            raise ValueError("milestones must be increasing steps")
        if self.schedule == "static" and not self.milestones:
            raise ValueError("schedule 'static' needs milestones (steps at which levels rise)")
        return self


OUTCOME_SCORE = {"win": 1.0, "loss": 0.0}


class Curriculum:
    """The schedule over a store. In multi-process training only the main process holds the store
    (`store=None` elsewhere): it decides every promotion and broadcasts the levels."""

    def __init__(self, config: CurriculumConfig, store: CurriculumStore | str | Path | None):
        self.config = config
        self._store = store if isinstance(store, CurriculumStore) or store is None else CurriculumStore(store)

    @property
    def store(self) -> CurriculumStore:
        if self._store is None:
            raise RuntimeError("this process holds no curriculum store: only the main process reads and writes it")
        return self._store

    def _score(self, outcome: Outcome) -> float:
        return self.config.tie_credit if outcome == "tie" else OUTCOME_SCORE[outcome]

    def should_promote(self, history: list[float]) -> bool:
        c = self.config
        if c.rule == "wins":
            return sum(history) >= c.wins_to_promote
        recent = history[-c.window :]
        return len(recent) >= c.window and sum(recent) / len(recent) >= c.min_win_rate

    def level(self, sample: Sample, step: int) -> int:
        top = len(sample.references) - 1
        c = self.config
        if c.schedule == "dynamic":
            return min(self.store.level(sample.key), top)
        if c.schedule == "static":
            return min(sum(1 for m in c.milestones if step >= m), top)
        if c.schedule == "fixed":
            return min(max(c.fixed_level if c.fixed_level >= 0 else top + 1 + c.fixed_level, 0), top)
        digest = hashlib.sha256(f"{c.seed}:{sample.key}:{step}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % len(sample.references)

    def reference(self, sample: Sample, step: int) -> tuple[int, str]:
        level = self.level(sample, step)
        return level, sample.references[level]

    def record(self, sample: Sample, level_used: int, outcomes: Sequence[Outcome | None], step: int) -> RecordResult:
        """Record a group's outcomes (unknowns skipped): the sample's level for the next step, and whether this
        group promoted it (never under a schedule other than `dynamic`), so no caller re-derives promotions.

        Every schedule writes the store: `dynamic` its promotions, the others the level each group was
        judged at (see `CurriculumStore.record_scheduled`)."""
        scores = [self._score(o) for o in outcomes if o is not None]
        if self.config.schedule != "dynamic":
            self.store.record_scheduled(sample.key, len(sample.references), level_used, scores, step)
            return RecordResult(self.level(sample, step + 1), False)
        return self.store.record(sample.key, len(sample.references), level_used, scores, step, self.should_promote)
