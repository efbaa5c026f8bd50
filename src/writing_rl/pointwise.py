"""Pointwise reward (`reward.kind: pointwise`): the policy's answer scored alone, the paper's alternative to the
pairwise comparison, so the two can be compared on the same runs.

A scorer gives the answer a score on its own scale, normalised to s in [0, 1], and the reward is
`loss + (win - loss) * s`, the same range as the pairwise reward:
- a rule judge (`judge.backend: rule`): the rule's own 0-100 score of the answer (`judge/rules.py`), s = score / 100;
  the rule judge's tolerance, position bias and noise belong to its pairwise verdicts and are not used;
- an LLM: the WritingBench-style pointwise critic (`critic.py`, per-criterion 1-10, averaged; `mode: soft` reads
  the expected score), s = (score - 1) / 9.
The reference is never read, and there is no outcome (win, tie, loss): the curriculum has nothing to schedule
(`check` refuses `dynamic` and `static` schedules under pointwise). Everything else is the pairwise reward's: the
injection screen runs first (`penalize`: the loss value, no call; `unknown`: missing with reason `injection`), and
an unscored answer is a missing reward with the critic's reason code, never a zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tqdm.auto import tqdm

from .aio import gather_all, run_sync
from .critic import CriterionScore, CriticConfig, PointwiseCritic, criteria_list
from .endpoint import EndpointConfig, EndpointError
from .errors import ConfigError
from .judge.judgement import JudgeStats
from .judge.rules import RULES, RuleNotApplicable
from .judge.screen import Injection, screen
from .reasons import Reason
from .reward import PairItem, PairwiseReward, RewardConfig, RewardStats

if TYPE_CHECKING:
    from .judge import JudgeConfig
    from .judge.judgement import Judgement


@dataclass(frozen=True)
class PointScore:
    """What a scorer said of one answer: `value` on its scale `low..high` (None: unscored), and each criterion's
    score with the scorer's reason (a rule's measure, the critic's words) or why it is missing."""

    scorer: str
    value: float | None
    low: float
    high: float
    criteria: tuple[CriterionScore, ...]

    @property
    def normalised(self) -> float | None:
        if self.value is None:
            return None
        return min(max((self.value - self.low) / (self.high - self.low), 0.0), 1.0)


@dataclass(frozen=True)
class PointReward:
    """Reward of one answer scored alone; `reward is None` means unknown. `score` is None when the injection
    screen decided the reward before any call. The pairwise fields (`outcome`, `judgements`, `orders`) are empty:
    there is nothing to schedule on and no judged order."""

    reward: float | None
    score: PointScore | None
    injection: Injection | None = None
    outcome: None = None
    judgements: tuple[Judgement, ...] = ()
    orders: tuple[str, ...] = ()

    @property
    def missing_reason(self) -> Reason | None:
        """Why the reward is unknown (a code): the screen's, or the first unscored criterion's."""
        if self.reward is not None:
            return None
        if self.score is None:
            return Reason.INJECTION
        return next((c.missing_reason for c in self.score.criteria if c.missing_reason), Reason.PARSE)

    @property
    def missing_detail(self) -> str | None:
        if self.reward is not None:
            return None
        if self.score is None and self.injection is not None:
            return f"the answer addresses the judge ({', '.join(self.injection.rules)}): {self.injection.excerpt!r}"
        return next((c.reason for c in (self.score.criteria if self.score else ()) if c.missing_reason), None)


class PointScorer(Protocol):
    """Scores one answer alone; counts its calls as a judge does (`engines.rank_metrics.judge_counters`)."""

    @property
    def base_url(self) -> str | None:
        """Where its calls go (None: no endpoint), for the outage wait and error messages."""

    @property
    def stats(self) -> JudgeStats: ...

    async def score(self, item: PairItem) -> PointScore: ...

    def call_stats(self) -> dict[str, float]: ...

    async def aclose(self) -> None: ...


class RuleScorer:
    """A known-truth rule's own 0-100 score of the answer (no endpoint)."""

    base_url = None

    def __init__(self, name: str):
        self.name = name
        self.measure = RULES[name]
        self.stats = JudgeStats()

    async def score(self, item: PairItem) -> PointScore:
        started = time.perf_counter()
        try:
            value, about = self.measure(item.answer, item.sample)
            criterion = CriterionScore(value, f"{self.name}: {value:.1f} ({about})")
        except RuleNotApplicable as err:
            value, criterion = None, CriterionScore(None, str(err), Reason.NOT_APPLICABLE)
        self.stats.judgements += 1
        self.stats.latency_s += time.perf_counter() - started
        return PointScore(f"rule {self.name}", value, 0.0, 100.0, (criterion,))

    def call_stats(self) -> dict[str, float]:
        return self.stats.call_stats()

    async def aclose(self) -> None:
        return None


class CriticScorer:
    """The pointwise critic's mean 1-10 score over the sample's criteria (a generic rubric without any)."""

    def __init__(self, critic: PointwiseCritic):
        self.critic = critic
        self.base_url: str | None = critic.config.endpoint.base_url

    @property
    def stats(self) -> JudgeStats:
        return JudgeStats(
            judgements=self.critic.stats.scored,
            cache_hits=self.critic.stats.cache_hits,
            failed_calls=self.critic.client.stats.failures,
        )

    async def score(self, item: PairItem) -> PointScore:
        criteria = criteria_list(item.sample.criteria if item.sample is not None else item.criteria)
        result = await self.critic.score(item.question, item.answer, criteria)
        c = self.critic.config
        return PointScore(f"critic {c.endpoint.model} ({c.mode})", result.score, 1.0, 10.0, result.criteria)

    def call_stats(self) -> dict[str, float]:
        return self.critic.client.stats.call_stats()

    async def aclose(self) -> None:
        await self.critic.aclose()


def schedule_problem(kind: str, schedule: str) -> str | None:
    """Why a config is wrong to schedule references for this reward kind: a pointwise reward reads none, so a
    schedule that moves prompts through theirs would do nothing while the config claims it does."""
    if kind == "pointwise" and schedule in ("dynamic", "static"):
        return (
            f"curriculum.schedule: {schedule} moves prompts through their references, but reward.kind: pointwise "
            "scores each answer alone and reads no reference, so there is nothing to schedule: set "
            "curriculum.schedule: none"
        )
    return None


def critic_for(judge: JudgeConfig, critic: CriticConfig | None) -> CriticConfig:
    """The critic a pointwise LLM reward calls: the one configured, else the judge's model read as a critic
    (its endpoint; soft when the judge is soft, with its chat template; the official sampling otherwise)."""
    if critic is not None:
        return critic
    mode = "soft" if judge.mode == "soft" else "json"
    return CriticConfig(endpoint=judge.endpoint, mode=mode, chat_template=judge.chat_template)


def critic_problem(kind: str, judge: JudgeConfig, critic: CriticConfig | None) -> str | None:
    """Why a `critic` section is wrong here: only a pointwise reward with an LLM judge calls it, so anywhere else
    it would be accepted and silently ignored."""
    if critic is None or (kind == "pointwise" and judge.backend == "llm"):
        return None
    why = f"reward.kind is {kind}" if kind != "pointwise" else "judge.backend is rule (the rule scores the answers)"
    return f"critic: only reward.kind: pointwise with judge.backend: llm calls a critic, but {why}: remove it"


def reward_setup_problem(kind: str, schedule: str, judge: JudgeConfig, critic: CriticConfig | None) -> str | None:
    """What a run config (train or train-verl) gets wrong about its reward kind: a schedule with nothing to
    schedule, or a critic nothing calls."""
    return schedule_problem(kind, schedule) or critic_problem(kind, judge, critic)


def called_endpoint(kind: str, judge: JudgeConfig, critic: CriticConfig | None) -> tuple[str, EndpointConfig] | None:
    """(config field, endpoint) that a reward of `kind` calls, None for a rule judge: the one place that decides
    whose key, concurrency share and probe count (`check`, `train` and `train-verl` alike)."""
    if judge.backend == "rule":
        return None
    if kind == "pointwise" and critic is not None:
        return "critic.endpoint", critic.endpoint
    return "judge.endpoint", judge.endpoint  # the pairwise judge, or its model read as a critic (`critic_for`)


def build_scorer(
    judge: JudgeConfig,
    critic: CriticConfig | None = None,
    adapt: Callable[[CriticConfig], CriticConfig] | None = None,
) -> PointScorer:
    """The pointwise scorer of a judge config: its rule under `backend: rule`, else the critic (`critic_for`).
    `adapt`: the engine's change to the critic's config before it is built (its share of the endpoint, a cache)."""
    if judge.backend == "rule":
        assert judge.rule is not None  # the config validator guarantees it
        return RuleScorer(judge.rule.name)
    cfg = critic_for(judge, critic)
    return CriticScorer(PointwiseCritic(adapt(cfg) if adapt is not None else cfg))


class PointwiseReward:
    """Scores policy answers alone, with the batch interface of `PairwiseReward` (the reference is not read)."""

    def __init__(self, scorer: PointScorer, config: RewardConfig | None = None):
        self.scorer = scorer
        self.config = config or RewardConfig(kind="pointwise")
        self.stats = RewardStats()

    @property
    def judge(self) -> PointScorer:
        """What the engines count calls of (the name is the pairwise reward's)."""
        return self.scorer

    def value(self, normalised: float) -> float:
        return self.config.loss + (self.config.win - self.config.loss) * normalised

    async def _one(self, item: PairItem) -> PointReward:
        found = screen(item.answer)  # found and recorded under every policy, acted on unless `off`
        if not item.answer.strip():  # nothing to score: the loss value, without a call
            return PointReward(self.config.loss, None, found)
        if found is not None and self.config.injection != "off":
            return PointReward(self.config.loss if self.config.injection == "penalize" else None, None, found)
        score = await self.scorer.score(item)
        s = score.normalised
        return PointReward(None if s is None else self.value(s), score, found)

    async def score_batch(self, items: Sequence[PairItem], progress: bool = False) -> list[PointReward]:
        """Score the items concurrently (the scorer's endpoint caps the calls in flight); their rewards, in order.
        `progress`: a bar on stderr, as the pairwise reward shows."""
        bar = tqdm(total=len(items), desc="scoring", unit="answer", disable=not progress)

        async def one(item: PairItem) -> PointReward:
            result = await self._one(item)
            bar.update(1)
            return result

        try:
            results = list(await gather_all(one(item) for item in items))
        finally:
            bar.close()
        for r in results:
            self.stats.add(r)
        return results

    def score_batch_sync(self, items: Sequence[PairItem], progress: bool = False) -> list[PointReward]:
        return run_sync(self.score_batch(items, progress=progress))

    def close(self) -> None:
        run_sync(self.scorer.aclose())


def check_credentials(reward: PairwiseReward | PointwiseReward) -> None:
    """Fail before training (a `ConfigError`), not as a stream of unknown rewards, when the API key of the
    endpoint the reward calls is not set; only that endpoint's (both engines)."""
    from .judge import PairwiseJudge

    called = reward.judge
    if isinstance(called, CriticScorer):
        client = called.critic.client
    elif isinstance(called, PairwiseJudge):
        client = called.client
    else:  # a rule: no endpoint
        return
    try:
        client.check_credentials()
    except EndpointError as err:
        raise ConfigError(str(err)) from None
