"""The judge audit: can this judge tell the user's own references apart, in the way the run will ask it?

Draws tier pairs from the samples (`pairs.py`), judges each in both orders through the run's judge
(sanitising, cache, endpoint) and reads the run's reward off the same calls (`measure.py`), then the
figures, the verdict and the recommendations (`metrics.py`), and what the calls cost: latency, tokens.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..cost import MeasuredTokens
from ..data import Sample
from ..engines.rank_metrics import judge_counters
from ..eval.stats import Interval
from ..judge.judgement import Judge
from ..judge.pairwise import PairwiseJudge
from ..judge.rules import RuleJudge
from ..reasons import Reason
from ..reward import PairwiseReward, RewardConfig
from .measure import PairResult, judge_pairs
from .metrics import (
    LENGTH_CONTROL_MIN_PAIRS,
    THRESHOLDS,
    AuditFigures,
    AuditVerdict,
    Recommendation,
    figures,
    recommendations,
    verdict,
)
from .pairs import choose_pairs, control_pairs


class AuditSettings(BaseModel):
    """The audit `train` runs before it loads the model (and `check --audit`, `judge-audit` take)."""

    model_config = ConfigDict(extra="forbid")

    pairs: int = Field(
        32,
        ge=0,
        description="reference pairs judged in both orders before training (0: no audit); adjacent and "
        "weakest-vs-strongest pairs in turn",
    )
    control_share: float = Field(
        0.25,
        ge=0,
        le=1,
        description="length controls (the stronger reference cut to the weaker's length), as a share "
        f"of `pairs` (at least {LENGTH_CONTROL_MIN_PAIRS} when above 0)",
    )
    seed: int = Field(0, description="which pairs are drawn")
    on_useless: Literal["warn", "stop"] = Field(
        "warn", description="a `useless` verdict: warn and train anyway, or stop before the model is loaded"
    )


class AuditError(ValueError):
    """The audit cannot run on this data (no sample has two references in a known order)."""

    exit_code = 2  # the data to audit is the thing to fix


# A call that failed before the judge could answer: the endpoint's failure, not the judge's.
ENDPOINT_FAILURES = frozenset(
    {Reason.TRANSPORT, Reason.TIMEOUT, Reason.HTTP_STATUS, Reason.BAD_RESPONSE, Reason.CREDENTIALS}
)


def unreached(result: AuditResult) -> str | None:
    """When no call of the audit reached the judge (every one an endpoint failure): the first failure as
    'reason: error'; else None. Such an audit measured the endpoint, not the judge."""
    calls = [x.judgement for r in result.results for x in r.readings]
    if not calls or not all(j.reason in ENDPOINT_FAILURES for j in calls):
        return None
    first = calls[0]
    return f"{first.reason.value}: {' '.join(str(first.error).split())[:200]}"  # type: ignore[union-attr]


@dataclass(frozen=True)
class CallCost:
    """What the audit's calls took: per call, over the requests that reached the judge (cache hits aside)."""

    calls: int
    requests: int
    cached: int
    retries: int
    failed: int
    seconds: float
    latency_s_per_call: float | None
    prompt_tokens_per_call: float | None  # as the server's `usage` reported them; None when it reports none
    completion_tokens_per_call: float | None
    answer_tokens_per_call: float | None  # the two answers, counted with the judge's tokenizer (or estimate)
    prompt_overhead_per_call: float | None  # the prompt without the answers: template, question, criteria


@dataclass
class AuditResult:
    figures: AuditFigures
    verdict: AuditVerdict
    verdict_reasons: list[str]
    recommendations: list[Recommendation]
    cost: CallCost
    judge: dict[str, Any]
    settings: AuditSettings
    results: list[PairResult]

    def to_json(self) -> dict[str, Any]:
        """One object: the headline figures as numbers, their intervals under `ci95`, the rest beside."""
        f = self.figures
        names = (
            "tier_agreement", "adjacent_tier_agreement", "extreme_tier_agreement", "net_preference",
            "reward_agreement", "adjacent_reward_agreement", "stronger_win_rate", "weaker_win_rate",
            "first_position_rate", "swap_consistency", "length_bias", "longer_preferred_rate",
            "length_control_agreement", "length_control_original",
        )  # fmt: skip
        values: dict[str, Interval | None] = {n: getattr(f, n) for n in names}
        return {
            "verdict": self.verdict,
            "verdict_reasons": self.verdict_reasons,
            "recommendations": [asdict(r) for r in self.recommendations],
            **{n: None if v is None else round(v.estimate, 4) for n, v in values.items()},
            "unknown_rate": round(f.unknown_rate, 4),
            "ci95": {n: None if v is None else [round(v.low, 4), round(v.high, 4)] for n, v in values.items()},
            "by_gap": f.by_gap,
            "unknown_reasons": f.unknown_reasons,
            "verdict_mass": f.verdict_mass,
            "truncated_calls": f.truncated_calls,
            "pairs": {
                "audited": f.pairs,
                "length_controls": f.control_pairs,
                "samples": f.samples,
                "adjacent": sum(r.pair.adjacent for r in self.results if not r.pair.control),
                "weakest_vs_strongest": sum(r.pair.extreme for r in self.results if not r.pair.control),
            },
            "calls": asdict(self.cost),
            "tokens": {
                "prompt_per_call": self.cost.prompt_tokens_per_call,
                "completion_per_call": self.cost.completion_tokens_per_call,
                "prompt_overhead_per_call": self.cost.prompt_overhead_per_call,
                "answers_per_call": self.cost.answer_tokens_per_call,
            },
            "position": f.position,
            "judge": self.judge,
            "settings": self.settings.model_dump(),
            "thresholds": THRESHOLDS,
            "points": f.points,
        }

    def measured_tokens(self) -> MeasuredTokens | None:
        """The judge's tokens per call as its server reported them, for the cost estimate: the prompt without
        the two answers (reported prompt tokens less the answers counted with the judge's tokenizer) and
        the reply. None when the server reports no usage (or every call was a cache hit)."""
        c = self.cost
        if c.prompt_tokens_per_call is None or c.completion_tokens_per_call is None:
            return None
        overhead = c.prompt_overhead_per_call or 0.0  # counted: where the answers outweigh what was reported
        if c.answer_tokens_per_call is not None and c.prompt_tokens_per_call >= c.answer_tokens_per_call:
            overhead = c.prompt_tokens_per_call - c.answer_tokens_per_call
        return MeasuredTokens(prompt_overhead=overhead, completion=c.completion_tokens_per_call)


def describe_judge(judge: Judge, reward: RewardConfig) -> dict[str, Any]:
    """What was audited, without secrets (the key variable's name at most)."""
    out: dict[str, Any] = {"position": reward.position}
    if isinstance(judge, PairwiseJudge):
        c = judge.config
        out.update(
            backend="llm", model=c.endpoint.model, base_url=c.endpoint.base_url, mode=c.mode, temperature=c.temperature
        )
        if c.mode == "soft":
            out.update(
                soft_via=c.soft_via, chat_template=c.chat_template if len(c.chat_template) < 200 else "(Jinja text)"
            )
    elif isinstance(judge, RuleJudge):
        out.update(backend="rule", rule=judge.config.model_dump())
    else:
        out.update(backend=type(judge).__name__)
    return out


def _cost(judge: Judge, results: list[PairResult], before: dict[str, float], seconds: float) -> CallCost:
    after = judge_counters(judge)
    spent = {k.removeprefix("judge/"): after[k] - before[k] for k in after}
    readings = [x for r in results for x in r.readings]
    requests = int(spent["calls"])
    cached = sum(x.judgement.cached for x in readings)
    answers = overhead = None
    if isinstance(judge, PairwiseJudge):
        fresh = [(r, sum(not x.judgement.cached for x in r.readings)) for r in results]  # calls that reached it
        n = sum(k for _, k in fresh)
        if n:
            counter = judge.counter
            answers = sum(
                k * (counter.count(r.pair.stronger_text) + counter.count(r.pair.weaker_text)) for r, k in fresh if k
            )
            overhead = sum(
                k * judge.prompt_tokens(r.pair.sample.prompt_text, r.pair.sample.criteria_text) for r, k in fresh if k
            )
            answers, overhead = answers / n, overhead / n

    def per_call(key: str) -> float | None:
        total = spent.get(key)
        return None if not total or not requests else total / requests

    return CallCost(
        calls=len(readings),
        requests=requests,
        cached=cached,
        retries=int(spent["retries"]),
        failed=int(spent["failed_calls"]),
        seconds=round(seconds, 3),
        latency_s_per_call=per_call("latency_s"),
        prompt_tokens_per_call=per_call("prompt_tokens"),
        completion_tokens_per_call=per_call("completion_tokens"),
        answer_tokens_per_call=answers,
        prompt_overhead_per_call=overhead,
    )


async def audit_judge(
    judge: Judge, reward: RewardConfig, samples: list[Sample], settings: AuditSettings, progress: bool = True
) -> AuditResult:
    """Run the audit with this judge (its endpoint, cache and sanitising) and this reward's position mode."""
    pairs = choose_pairs(samples, settings.pairs, settings.seed)
    if not pairs:
        raise AuditError(
            "no sample has two references in a known order (distinct texts, increasing reference_scores): nothing to audit"
        )
    n_controls = (
        max(LENGTH_CONTROL_MIN_PAIRS, round(settings.pairs * settings.control_share)) if settings.control_share else 0
    )
    controls = control_pairs(pairs, n_controls)
    scorer = PairwiseReward(judge, reward.model_copy(update={"prepare_workers": 0}))
    before = judge_counters(judge)
    started = time.perf_counter()
    results = await judge_pairs(judge, scorer, pairs + controls, progress)
    seconds = time.perf_counter() - started
    figs = figures(results, reward.position, settings.seed)
    decided, reasons = verdict(figs)
    soft = isinstance(judge, PairwiseJudge) and judge.config.mode == "soft"
    return AuditResult(
        figures=figs,
        verdict=decided,
        verdict_reasons=reasons,
        recommendations=recommendations(figs, soft),
        cost=_cost(judge, results, before, seconds),
        judge=describe_judge(judge, reward),
        settings=settings,
        results=results,
    )
