"""What the audit's pairs say about the judge, each figure with a bootstrap 95% interval over prompts,
and the verdict (`usable`, `weak`, `useless`) with the reasons and recommendations behind it.

Thresholds (docs/judge-audit.md explains each):
- `useless`: no reward at all, more than half the verdicts unknown, or the run's reward orders the
  stronger reference above the weaker in fewer than 60% of pairs with an interval reaching chance (0.5).
- `usable`: that ordering in at least 75% of pairs (the published judges agreed with human labels
  0.70-0.82) with the interval above chance, adjacent tiers ordered in at least 65%, at most 10% of
  verdicts unknown, the stronger reference winning (as the policy) at least 25% of its comparisons so
  the curriculum can move, and a preference that survives the length control.
- `weak`: anything between.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..eval.stats import Interval, cluster_bootstrap, spearman
from ..reward import PairReward, PositionMode
from .measure import PairResult, Reading

AuditVerdict = Literal["usable", "weak", "useless"]

CHANCE = 0.5
USABLE_AGREEMENT = 0.75
USABLE_ADJACENT = 0.65
USELESS_BELOW = 0.6
MAX_UNKNOWN_USABLE = 0.10
USELESS_UNKNOWN = 0.50
MIN_PROMOTION_RATE = 0.25
POSITION_BIAS = 0.65  # a first-position rate above this (or below 1 - this) is named
LOW_SWAP_CONSISTENCY = 0.6
LENGTH_CONTROL_MIN_PAIRS = 3
LENGTH_DRIVEN_CONTROL = 0.6  # the control's agreement at or below this ...
LENGTH_DRIVEN_DROP = 0.2  # ... and this far below the same pairs unshortened: the preference was length
LENGTH_BIAS_RHO = 0.5
LOW_VERDICT_MASS = 0.5
THRESHOLDS = {
    "usable_agreement": USABLE_AGREEMENT,
    "usable_adjacent_agreement": USABLE_ADJACENT,
    "useless_below": USELESS_BELOW,
    "max_unknown_usable": MAX_UNKNOWN_USABLE,
    "useless_unknown": USELESS_UNKNOWN,
    "min_promotion_rate": MIN_PROMOTION_RATE,
    "position_bias": POSITION_BIAS,
    "low_swap_consistency": LOW_SWAP_CONSISTENCY,
    "length_driven_control": LENGTH_DRIVEN_CONTROL,
    "length_driven_drop": LENGTH_DRIVEN_DROP,
    "length_bias_rho": LENGTH_BIAS_RHO,
    "low_verdict_mass": LOW_VERDICT_MASS,
}
RESAMPLES = 2000


@dataclass(frozen=True)
class Recommendation:
    code: str
    text: str


@dataclass
class AuditFigures:
    """Every measure of one audit; an `Interval` is None where no pair could measure it."""

    position: PositionMode
    tier_agreement: Interval | None
    adjacent_tier_agreement: Interval | None
    extreme_tier_agreement: Interval | None
    net_preference: Interval | None
    reward_agreement: Interval | None
    adjacent_reward_agreement: Interval | None
    stronger_win_rate: Interval | None
    weaker_win_rate: Interval | None
    first_position_rate: Interval | None
    swap_consistency: Interval | None
    length_bias: Interval | None
    longer_preferred_rate: Interval | None
    length_control_agreement: Interval | None
    length_control_original: Interval | None
    by_gap: dict[str, dict[str, Any]]
    pairs: int
    control_pairs: int
    samples: int
    calls: int
    unknown_calls: int
    unknown_reasons: dict[str, int]
    truncated_calls: int
    verdict_mass: float | None
    points: list[dict[str, Any]] = field(default_factory=list)  # per pair: length ratio, net preference

    @property
    def unknown_rate(self) -> float:
        return self.unknown_calls / self.calls if self.calls else 0.0


def _by_sample(results: Sequence[PairResult]) -> list[list[PairResult]]:
    groups: dict[str, list[PairResult]] = {}
    for r in results:
        groups.setdefault(r.pair.sample.key, []).append(r)
    return list(groups.values())


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def interval(
    results: Sequence[PairResult], value: Callable[[PairResult], float | None], seed: int = 0
) -> Interval | None:
    """The mean of `value` over the pairs where it is known, with a bootstrap interval over prompts.
    Each pair's value is computed once: the bootstrap only redraws them (a length counts whole texts)."""
    groups = [[value(r) for r in g] for g in _by_sample(results)]
    return cluster_bootstrap(groups, _mean, resamples=RESAMPLES, seed=seed)


def _call_mean(results: Sequence[PairResult], value: Callable[[Reading], float], seed: int = 0) -> Interval | None:
    groups = [[value(x) if x.known else None for r in g for x in r.readings] for g in _by_sample(results)]
    return cluster_bootstrap(groups, _mean, resamples=RESAMPLES, seed=seed)


def _log_ratio(r: PairResult) -> float:
    strong, weak = r.lengths
    return math.log2((strong + 1) / (weak + 1))


def _length_rho(points: list[tuple[float, float | None]]) -> float | None:
    """Spearman's correlation of (length ratio, net preference) over the pairs whose preference is known."""
    known = [(x, y) for x, y in points if y is not None]
    return spearman([x for x, _ in known], [y for _, y in known])  # type: ignore[misc]


def _longer_preferred(r: PairResult) -> float | None:
    strong, weak = r.lengths
    if r.agreement is None or strong == weak:
        return None
    return r.agreement if strong > weak else 1.0 - r.agreement


def _won(reward: PairReward) -> float | None:
    return None if reward.outcome is None else float(reward.outcome == "win")


def figures(results: Sequence[PairResult], position: PositionMode, seed: int = 0) -> AuditFigures:
    main = [r for r in results if not r.pair.control]
    controls = [r for r in results if r.pair.control]
    originals = {(r.pair.sample.key, r.pair.weaker, r.pair.stronger): r for r in main}
    controlled = [
        originals[k] for k in ((c.pair.sample.key, c.pair.weaker, c.pair.stronger) for c in controls) if k in originals
    ]
    adjacent = [r for r in main if r.pair.adjacent]
    extreme = [r for r in main if r.pair.extreme]
    readings = [x for r in results for x in r.readings]
    reasons = Counter(x.judgement.reason.value for x in readings if not x.known and x.judgement.reason is not None)
    masses = [
        x.judgement.probs.mass for x in readings if x.judgement.probs is not None and x.judgement.probs.mass is not None
    ]
    by_gap: dict[str, dict[str, Any]] = {}
    for gap in sorted({r.pair.gap for r in main}):
        members = [r for r in main if r.pair.gap == gap]
        by_gap[str(gap)] = _group_row(members, seed)
    if controls:
        by_gap["control"] = _group_row(controls, seed)

    def agreement(r: PairResult) -> float | None:
        return r.agreement

    def reward_agreement(r: PairResult) -> float | None:
        return r.reward_agreement

    return AuditFigures(
        position=position,
        tier_agreement=interval(main, agreement, seed),
        adjacent_tier_agreement=interval(adjacent, agreement, seed),
        extreme_tier_agreement=interval(extreme, agreement, seed),
        net_preference=interval(main, lambda r: r.net, seed),
        reward_agreement=interval(main, reward_agreement, seed),
        adjacent_reward_agreement=interval(adjacent, reward_agreement, seed),
        stronger_win_rate=interval(main, lambda r: _won(r.reward_stronger), seed),
        weaker_win_rate=interval(main, lambda r: _won(r.reward_weaker), seed),
        first_position_rate=_call_mean(main, lambda x: x.first_score, seed),
        swap_consistency=interval(
            main, lambda r: None if r.swap_consistent is None else float(r.swap_consistent), seed
        ),
        length_bias=cluster_bootstrap(
            [[(_log_ratio(r), r.net) for r in g] for g in _by_sample(main)], _length_rho, resamples=RESAMPLES, seed=seed
        ),
        longer_preferred_rate=interval(main, _longer_preferred, seed),
        length_control_agreement=interval(controls, agreement, seed),
        length_control_original=interval(controlled, agreement, seed),
        by_gap=by_gap,
        pairs=len(main),
        control_pairs=len(controls),
        samples=len({r.pair.sample.key for r in results}),
        calls=len(readings),
        unknown_calls=sum(not x.known for x in readings),
        unknown_reasons=dict(reasons.most_common()),
        truncated_calls=sum(bool(x.judgement.truncated and any(x.judgement.truncated)) for x in readings),
        verdict_mass=_mean(masses),
        points=[
            {
                "log2_length_ratio": round(_log_ratio(r), 4),
                "net_preference": round(r.net, 4),
                "gap": r.pair.gap,
                "control": r.pair.control,
            }
            for r in results
            if r.net is not None
        ],
    )


def _group_row(members: list[PairResult], seed: int) -> dict[str, Any]:
    ci = interval(members, lambda r: r.agreement, seed)
    return {
        "pairs": len(members),
        "agreement": None if ci is None else ci.estimate,
        "ci95": None if ci is None else [ci.low, ci.high],
        "net_preference": _mean([r.net for r in members]),
    }


# -- the verdict ------------------------------------------------------------------------------------------------
def _pct(i: Interval) -> str:
    return f"{i.estimate:.2f} [{i.low:.2f}, {i.high:.2f}]"


def length_driven(f: AuditFigures) -> bool:
    """The judge prefers the stronger reference only while it is the longer one."""
    c, o = f.length_control_agreement, f.length_control_original
    if c is None or o is None or f.control_pairs < LENGTH_CONTROL_MIN_PAIRS:
        return False
    return c.estimate <= LENGTH_DRIVEN_CONTROL and o.estimate - c.estimate >= LENGTH_DRIVEN_DROP


def verdict(f: AuditFigures) -> tuple[AuditVerdict, list[str]]:
    """The verdict and, in words, what decided it."""
    ra = f.reward_agreement
    if ra is None:
        top = next(iter(f.unknown_reasons), "none recorded")
        return "useless", [f"no pair got a reward in both directions (unknown verdicts: {top})"]
    if f.unknown_rate > USELESS_UNKNOWN:
        return "useless", [f"{f.unknown_rate:.0%} of the verdicts were unknown"]
    if ra.estimate < USELESS_BELOW and ra.low <= CHANCE:
        return "useless", [
            f"under position {f.position}, the reward ranks the stronger reference above the weaker in "
            f"{_pct(ra)} of pairs: no better than chance (0.5)"
        ]
    reasons = []
    if ra.estimate < USABLE_AGREEMENT or ra.low <= CHANCE:
        reasons.append(
            f"the reward ranks the stronger reference higher in {_pct(ra)} of pairs (usable: >= {USABLE_AGREEMENT}, interval above 0.5)"
        )
    adj = f.adjacent_reward_agreement
    if adj is not None and adj.estimate < USABLE_ADJACENT:
        reasons.append(f"adjacent tiers ranked right in {_pct(adj)} of pairs (usable: >= {USABLE_ADJACENT})")
    if f.unknown_rate > MAX_UNKNOWN_USABLE:
        reasons.append(f"{f.unknown_rate:.0%} of the verdicts unknown (usable: <= {MAX_UNKNOWN_USABLE:.0%})")
    sw = f.stronger_win_rate
    if sw is not None and sw.estimate < MIN_PROMOTION_RATE:
        reasons.append(
            f"the stronger reference as the policy wins only {_pct(sw)} of its comparisons: the curriculum will hardly move"
        )
    if length_driven(f):
        reasons.append("the preference for the stronger reference goes when it is cut to the weaker one's length")
    return ("weak" if reasons else "usable"), reasons or [
        f"the reward ranks the stronger reference higher in {_pct(ra)} of pairs"
    ]


def recommendations(f: AuditFigures, soft: bool) -> list[Recommendation]:
    out = []
    one_order = f.position in ("reference_first", "policy_first")
    fp = f.first_position_rate
    if fp is not None and (fp.estimate >= POSITION_BIAS or fp.estimate <= 1 - POSITION_BIAS):
        side = "A (the first answer)" if fp.estimate > 0.5 else "B (the second answer)"
        if one_order:
            text = (
                f"position bias {fp.estimate:.2f} towards {side}: use reward.position: both_average (two calls per "
                f"completion) to cancel it; in one order ({f.position}) the position decides"
            )
        else:
            text = f"position bias {fp.estimate:.2f} towards {side}: cancelled by {f.position}, at two calls per completion"
        out.append(Recommendation("position_bias", text))
    sc = f.swap_consistency
    if sc is not None and sc.estimate < LOW_SWAP_CONSISTENCY:
        out.append(
            Recommendation(
                "swap_inconsistent",
                f"the winner changes with the order in {1 - sc.estimate:.0%} of pairs: a verdict in one order is mostly position",
            )
        )
    adj = f.adjacent_reward_agreement
    if adj is not None and adj.low <= CHANCE:
        out.append(
            Recommendation(
                "adjacent_indistinguishable",
                f"adjacent tiers indistinguishable ({_pct(adj)}): promotions will be noise; use a stronger judge, references "
                "further apart, or curriculum.rule: win_rate over a window",
            )
        )
    ext = f.extreme_tier_agreement
    if ext is not None and ext.low <= CHANCE:
        out.append(
            Recommendation(
                "extremes_indistinguishable",
                f"the judge cannot reliably tell the weakest reference from the strongest ({_pct(ext)}): it cannot teach on this data",
            )
        )
    if length_driven(f):
        c, o = f.length_control_agreement, f.length_control_original
        out.append(
            Recommendation(
                "length_driven",
                f"prefers the stronger reference only while it is longer: {o.estimate:.2f} as written, {c.estimate:.2f} "  # type: ignore[union-attr]
                "when cut to the weaker one's length; rewards will follow length (say in the criteria what length is wanted, "
                "or add extras.length_weight against each sample's target)",
            )
        )
    rho = f.length_bias
    if rho is not None and rho.estimate >= LENGTH_BIAS_RHO and rho.low > 0:
        out.append(
            Recommendation(
                "length_bias", f"the preference grows with the length difference (rank correlation {_pct(rho)})"
            )
        )
    if f.unknown_rate > MAX_UNKNOWN_USABLE:
        top = next(iter(f.unknown_reasons), None)
        out.append(
            Recommendation(
                "unknowns",
                f"{f.unknown_rate:.0%} of the verdicts unknown (mostly {top}): {UNKNOWN_HINTS.get(top or '', 'see pairs.jsonl')}",
            )
        )
    if soft and f.verdict_mass is not None and f.verdict_mass < LOW_VERDICT_MASS:
        out.append(
            Recommendation(
                "low_verdict_mass",
                f"the judge puts only {f.verdict_mass:.0%} of its probability on A, B and tie at the verdict position: check "
                "that judge.chat_template is the judge model's own",
            )
        )
    sw = f.stronger_win_rate
    if sw is not None and sw.estimate < MIN_PROMOTION_RATE:
        fix = "use reward.position: both_average" if one_order else "use a stronger judge or curriculum.tie_credit"
        out.append(
            Recommendation(
                "no_promotions",
                f"the stronger reference, as the policy, wins only {sw.estimate:.0%} of its comparisons under {f.position}: "
                f"promotions will be rare; {fix}",
            )
        )
    if f.truncated_calls:
        out.append(
            Recommendation(
                "truncated",
                f"answers were cut to fit the judge's context in {f.truncated_calls} of {f.calls} calls: raise "
                "judge.context_window (and the server's) if the judge should read them whole",
            )
        )
    return out


UNKNOWN_HINTS = {
    "parse": "the judge does not end with [[A]], [[B]] or [[C]]: a larger judge.max_tokens, mode: soft, or a stronger judge",
    "no_verdict_mass": "the judge puts no probability on the verdict letters: check judge.chat_template",
    "context_overflow": "the answers do not fit: raise judge.context_window or use overflow: truncate",
    "transport": "the endpoint failed: writing-rl check CONFIG",
    "timeout": "the endpoint timed out: raise judge.endpoint.timeout_s or lower max_concurrency",
    "http_status": "the endpoint answered errors: writing-rl check CONFIG",
    "bad_response": "the endpoint's replies are not completions: writing-rl check CONFIG",
    "not_applicable": "the rule judge cannot measure these samples (a target length or keywords missing)",
    "internal": "writing-rl failed on these calls (a bug): log at debug level for the tracebacks, and report it",
}
