"""Verdicts to rewards, with position-bias handling; an unknown verdict is a missing reward.

`reference_first` is the published default (reference in position A, "position-disadvantage");
`policy_first` suits weak writers; `both_average` and `both_agree` judge both orders to cancel the
judge's position bias at twice the cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator
from tqdm.auto import tqdm

from .aio import run_sync
from .judge.pairwise import Judgement, PairwiseJudge
from .judge.verdict import Verdict

Outcome = Literal["win", "tie", "loss"]
PositionMode = Literal["reference_first", "policy_first", "both_average", "both_agree"]


class RewardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: PositionMode = "reference_first"
    win: float = 1.0
    tie: float = 0.5
    loss: float = 0.0

    @model_validator(mode="after")
    def _ordered(self) -> RewardConfig:
        if not self.loss <= self.tie <= self.win:
            raise ValueError(f"reward values must satisfy loss <= tie <= win, got {self.loss}, {self.tie}, {self.win}")
        return self


@dataclass(frozen=True)
class PairReward:
    """Reward of one policy answer against one reference; `reward is None` means unknown."""

    reward: float | None
    outcome: Outcome | None
    judgements: tuple[Judgement, ...]


@dataclass
class RewardStats:
    win: int = 0
    tie: int = 0
    loss: int = 0
    unknown: int = 0

    def add(self, r: PairReward) -> None:
        if r.outcome is None:
            self.unknown += 1
        else:
            setattr(self, r.outcome, getattr(self, r.outcome) + 1)


class PairwiseReward:
    """Scores policy answers against references through a `PairwiseJudge`."""

    def __init__(self, judge: PairwiseJudge, config: RewardConfig | None = None):
        self.judge = judge
        self.config = config or RewardConfig()
        self.stats = RewardStats()

    def _value(self, outcome: Outcome) -> float:
        return {"win": self.config.win, "tie": self.config.tie, "loss": self.config.loss}[outcome]

    def _one_order(self, j: Judgement, policy_pos: Verdict) -> tuple[float, Outcome] | None:
        """Reward and outcome for one judged order; soft probabilities give an expected reward."""
        if j.verdict is Verdict.UNKNOWN:
            return None
        other = Verdict.B if policy_pos is Verdict.A else Verdict.A
        hard: Outcome = "win" if j.verdict is policy_pos else "loss" if j.verdict is other else "tie"
        if j.probs is None:
            return self._value(hard), hard
        p = j.probs
        soft = (
            p.for_letter(policy_pos) * self.config.win
            + p.tie * self.config.tie
            + p.for_letter(other) * self.config.loss
        )
        return soft, hard

    async def score(self, question: str, policy: str, reference: str, criteria: str | None = None) -> PairReward:
        mode = self.config.position
        if mode == "reference_first":
            j = await self.judge.judge(question, reference, policy, criteria)
            judged = [(j, self._one_order(j, Verdict.B))]
        elif mode == "policy_first":
            j = await self.judge.judge(question, policy, reference, criteria)
            judged = [(j, self._one_order(j, Verdict.A))]
        else:
            j_ref, j_pol = await asyncio.gather(
                self.judge.judge(question, reference, policy, criteria),
                self.judge.judge(question, policy, reference, criteria),
            )
            judged = [(j_ref, self._one_order(j_ref, Verdict.B)), (j_pol, self._one_order(j_pol, Verdict.A))]
        judgements = tuple(j for j, _ in judged)
        results = [r for _, r in judged]
        if any(r is None for r in results):
            out = PairReward(None, None, judgements)
        elif len(results) == 1:
            out = PairReward(results[0][0], results[0][1], judgements)
        else:
            outcomes = {r[1] for r in results}
            agreed: Outcome = outcomes.pop() if len(outcomes) == 1 else "tie"
            if mode == "both_agree":
                out = PairReward(self._value(agreed), agreed, judgements)
            else:
                out = PairReward(sum(r[0] for r in results) / 2, agreed, judgements)
        self.stats.add(out)
        return out

    async def score_batch(
        self, items: Sequence[tuple[str, str, str, str | None]], progress: bool = False
    ) -> list[PairReward]:
        """Score (question, policy answer, reference, criteria) tuples concurrently, in order."""
        bar = tqdm(total=len(items), desc="judging", unit="pair", disable=not progress)

        async def one(item: tuple[str, str, str, str | None]) -> PairReward:
            r = await self.score(*item)
            bar.update(1)
            return r

        try:
            return list(await asyncio.gather(*(one(i) for i in items)))
        finally:
            bar.close()

    def score_batch_sync(
        self, items: Sequence[tuple[str, str, str, str | None]], progress: bool = False
    ) -> list[PairReward]:
        return run_sync(self.score_batch(items, progress=progress))

    def close(self) -> None:
        run_sync(self.judge.aclose())
