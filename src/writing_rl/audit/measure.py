"""Judging the audit's reference pairs, in both orders, through the judge and reward the run uses.

Each pair costs two calls: the stronger reference in position A, then in position B. The same two
calls give the run's reward for either reference as the policy (`PairwiseReward.combine`): with the
stronger as the policy and the weaker as its current reference, and the other way round. So every
measure is read from exactly what training would see, in every position mode, at two calls a pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from ..aio import gather_all, gather_with_progress
from ..judge.judgement import Judge, Judgement
from ..judge.verdict import Verdict
from ..reward import PairReward, PairwiseReward
from ..text_metrics import count_length
from .pairs import TierPair

Winner = Literal["stronger", "weaker", "tie"]


@dataclass(frozen=True)
class Reading:
    """One call, read from the stronger reference's side: its expected score (win 1, tie 0.5), its net
    preference P(stronger) − P(weaker), and the score of whatever sat in position A. None when unknown."""

    judgement: Judgement
    stronger_in_a: bool

    @property
    def known(self) -> bool:
        return self.judgement.verdict is not Verdict.UNKNOWN

    def _probs(self) -> tuple[float, float, float]:
        """(P(A), P(B), P(tie)); a hard verdict counts as certain."""
        j = self.judgement
        if j.probs is not None:
            return j.probs.a, j.probs.b, j.probs.tie
        return {Verdict.A: (1.0, 0.0, 0.0), Verdict.B: (0.0, 1.0, 0.0), Verdict.TIE: (0.0, 0.0, 1.0)}[j.verdict]

    def stronger_weaker_tie(self) -> tuple[float, float, float]:
        a, b, tie = self._probs()
        return (a, b, tie) if self.stronger_in_a else (b, a, tie)

    @property
    def first_score(self) -> float:
        a, _, tie = self._probs()
        return a + 0.5 * tie

    @property
    def net(self) -> float:
        strong, weak, _ = self.stronger_weaker_tie()
        return strong - weak

    @property
    def winner(self) -> Winner:
        v = self.judgement.verdict
        if v is Verdict.TIE:
            return "tie"
        return "stronger" if (v is Verdict.A) == self.stronger_in_a else "weaker"


@dataclass(frozen=True)
class PairResult:
    """A pair's two calls and the run's reward for each reference as the policy."""

    pair: TierPair
    stronger_first: Reading
    weaker_first: Reading
    reward_stronger: PairReward  # the stronger reference as the policy, the weaker as its reference
    reward_weaker: PairReward

    @property
    def readings(self) -> tuple[Reading, Reading]:
        return self.stronger_first, self.weaker_first

    @property
    def both_known(self) -> bool:
        return self.stronger_first.known and self.weaker_first.known

    @property
    def net(self) -> float | None:
        """Position-averaged net preference for the stronger reference, in [-1, 1]."""
        return (self.stronger_first.net + self.weaker_first.net) / 2 if self.both_known else None

    @property
    def agreement(self) -> float | None:
        """1 when the position-averaged verdict prefers the stronger reference, 0.5 a tie, 0 the weaker.

        The averaged probabilities decide, as the reward's `both_average` outcome does: the likeliest of
        stronger, weaker and tie, with a tie between stronger and weaker counted as a tie."""
        if not self.both_known:
            return None
        sums = [
            x + y for x, y in zip(self.stronger_first.stronger_weaker_tie(), self.weaker_first.stronger_weaker_tie())
        ]
        strong, weak, tie = sums
        if strong > weak and strong >= tie:
            return 1.0
        if weak > strong and weak >= tie:
            return 0.0
        return 0.5

    @property
    def swap_consistent(self) -> bool | None:
        return self.stronger_first.winner == self.weaker_first.winner if self.both_known else None

    @property
    def reward_agreement(self) -> float | None:
        """1 when the run's reward is higher for the stronger reference as the policy than for the weaker,
        0.5 when equal, 0 when lower: whether the reward orders the two as it should."""
        high, low = self.reward_stronger.reward, self.reward_weaker.reward
        if high is None or low is None:
            return None
        return 1.0 if high > low else 0.5 if high == low else 0.0

    @cached_property  # counted once: the texts are long and the figures read it several times
    def lengths(self) -> tuple[int, int]:
        """(stronger, weaker) in words and CJK characters, as LongBench-Write counts them."""
        return count_length(self.pair.stronger_text), count_length(self.pair.weaker_text)


async def judge_pairs(
    judge: Judge, reward: PairwiseReward, pairs: list[TierPair], progress: bool = True
) -> list[PairResult]:
    """Both orders of every pair, concurrently (the judge's endpoint bounds the calls in flight)."""
    calls = []
    for p in pairs:
        question, criteria, sample = p.sample.prompt_text, p.sample.criteria_text, p.sample
        calls.append(judge.judge(question, p.stronger_text, p.weaker_text, criteria, sample))
        calls.append(judge.judge(question, p.weaker_text, p.stronger_text, criteria, sample))
    judgements = await gather_with_progress(calls, "judge audit") if progress else await gather_all(calls)
    results = []
    for k, p in enumerate(pairs):
        stronger_first, weaker_first = judgements[2 * k], judgements[2 * k + 1]
        results.append(
            PairResult(
                pair=p,
                stronger_first=Reading(stronger_first, stronger_in_a=True),
                weaker_first=Reading(weaker_first, stronger_in_a=False),
                # reference_first puts the reference in A: with the weaker as reference, that is weaker_first
                reward_stronger=reward.combine({"reference_first": weaker_first, "policy_first": stronger_first}),
                reward_weaker=reward.combine({"reference_first": stronger_first, "policy_first": weaker_first}),
            )
        )
    return results
