"""Statistics for evaluation and the judge audit: bootstrap confidence intervals (plain and over groups),
rank correlation, Bradley-Terry ratings, position consistency."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


def win_rate(outcomes: Sequence[float]) -> float:
    """Mean of per-comparison scores (win 1, tie 0.5, loss 0)."""
    if not outcomes:
        raise ValueError("no outcomes")
    return sum(outcomes) / len(outcomes)


def bootstrap_ci(values: Sequence[float], level: float = 0.95, resamples: int = 2000, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of the mean."""
    if not values:
        raise ValueError("no values")
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    alpha = (1 - level) / 2
    low = means[max(0, math.floor(alpha * resamples))]
    high = means[min(resamples - 1, math.ceil((1 - alpha) * resamples) - 1)]
    return Interval(sum(values) / n, low, high)


def bradley_terry(
    comparisons: Sequence[tuple[str, str, float]], prior_ties: float = 1.0, iterations: int = 2000, tol: float = 1e-12
) -> dict[str, float]:
    """Bradley-Terry ratings from (model i, model j, score of i) with score 1 / 0.5 / 0.

    Minorise-maximise updates (Hunter 2004); a tie counts half a win each way. `prior_ties` virtual
    ties against a fixed average player keep a model that always wins (or loses) finite; 0 gives the
    plain maximum-likelihood fit. Returned on an Elo-like scale, 400·log10(strength), centred on the
    mean, so a 400-point gap means 10:1 odds.
    """
    players = sorted({p for i, j, _ in comparisons for p in (i, j)})
    wins = dict.fromkeys(players, prior_ties / 2)
    games: dict[tuple[str, str], float] = {}
    for i, j, s in comparisons:
        wins[i] += s
        wins[j] += 1 - s
        games[(i, j)] = games.get((i, j), 0.0) + 1
        games[(j, i)] = games.get((j, i), 0.0) + 1
    played = {p: sum(n for (a, _), n in games.items() if a == p) for p in players}
    if prior_ties == 0 and any(wins[p] in (0, played[p]) for p in players):
        raise ValueError("a model that never wins (or never loses) has no finite rating: use prior_ties > 0")
    strength = dict.fromkeys(players, 1.0)
    for _ in range(iterations):
        new = {}
        for p in players:
            denom = prior_ties / (strength[p] + 1.0)
            denom += sum(n / (strength[p] + strength[q]) for (a, q), n in games.items() if a == p)
            new[p] = wins[p] / denom
        if prior_ties == 0:  # only ratios are identified: fix the scale
            geo = math.exp(sum(math.log(v) for v in new.values()) / len(new))
            new = {p: v / geo for p, v in new.items()}
        delta = max(abs(new[p] - strength[p]) for p in players)
        strength = new
        if delta < tol:
            break
    elo = {p: 400 * math.log10(v) for p, v in strength.items()}
    centre = sum(elo.values()) / len(elo)
    return {p: v - centre for p, v in elo.items()}


def position_consistency(pairs: Sequence[tuple[T, T]]) -> float:
    """Share of pairs whose two orders agree, given (outcome with A first, outcome with A second) for model A."""
    if not pairs:
        raise ValueError("no pairs")
    return sum(1 for first, second in pairs if first == second) / len(pairs)


def cluster_bootstrap(
    groups: Sequence[Sequence[T]],
    statistic: Callable[[list[T]], float | None],
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval | None:
    """Percentile bootstrap of `statistic` over the items of whole groups drawn with replacement.

    Items of one group (the tier pairs of one prompt) are not independent: drawing groups, not items,
    keeps the interval honest when a few prompts contribute many pairs. A draw on which the statistic is
    undefined (None) is skipped; None when the statistic is undefined on the data itself.
    """
    groups = [list(g) for g in groups if g]
    estimate = statistic([item for g in groups for item in g])
    if estimate is None:
        return None
    rng = random.Random(seed)
    draws = []
    for _ in range(resamples):
        value = statistic([item for _ in groups for item in groups[rng.randrange(len(groups))]])
        if value is not None:
            draws.append(value)
    if not draws:
        return Interval(estimate, estimate, estimate)
    draws.sort()
    alpha = (1 - level) / 2
    low = draws[max(0, math.floor(alpha * len(draws)))]
    high = draws[min(len(draws) - 1, math.ceil((1 - alpha) * len(draws)) - 1)]
    return Interval(estimate, low, high)


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties given their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on average ranks); None when either side is constant."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    if len(xs) < 3:
        return None
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)
