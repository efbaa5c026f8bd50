"""Statistics for evaluation, the judge audit and ablations: bootstrap confidence intervals (plain, over groups,
and over a seeds x prompts grid, paired), rank correlation, Bradley-Terry ratings, position consistency."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
Scores = Mapping[tuple[int, str], float]  # (seed, prompt) -> a score: one cell of a seeds x prompts grid


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


def _percentile_interval(estimate: float, draws: list[float], level: float) -> Interval:
    """The percentile interval of bootstrap draws around `estimate`."""
    draws = sorted(draws)
    alpha = (1 - level) / 2
    low = draws[max(0, math.floor(alpha * len(draws)))]
    high = draws[min(len(draws) - 1, math.ceil((1 - alpha) * len(draws)) - 1)]
    return Interval(estimate, low, high)


def bootstrap_ci(values: Sequence[float], level: float = 0.95, resamples: int = 2000, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of the mean."""
    if not values:
        raise ValueError("no values")
    rng = random.Random(seed)
    n = len(values)
    means = [sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples)]
    return _percentile_interval(sum(values) / n, means, level)


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
    return _percentile_interval(estimate, draws, level)


def crossed_bootstrap(values: Scores, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean over a seeds × prompts grid, with a percentile bootstrap interval that draws seeds and prompts
    independently with replacement (every prompt is answered under every seed: the two are crossed, so
    drawing only prompts would ignore the seed-to-seed noise, and drawing (seed, prompt) cells would treat
    the same prompt under two seeds as independent). With one seed it is the bootstrap over prompts."""
    seeds = sorted({s for s, _ in values})
    prompts = list(dict.fromkeys(p for _, p in values))
    if not values:
        raise ValueError("no values")
    if len(values) != len(seeds) * len(prompts):
        raise ValueError(f"not a full grid: {len(values)} scores for {len(seeds)} seeds x {len(prompts)} prompts")
    grid = [[values[(s, p)] for p in prompts] for s in seeds]
    n_s, n_p = len(seeds), len(prompts)
    rng = random.Random(seed)
    means = []
    for _ in range(resamples):
        rows = [grid[rng.randrange(n_s)] for _ in range(n_s)]
        cols = [rng.randrange(n_p) for _ in range(n_p)]
        means.append(sum(row[j] for row in rows for j in cols) / (n_s * n_p))
    return _percentile_interval(sum(values.values()) / len(values), means, level)


def paired_difference(model: Scores, reference: Scores, resamples: int = 2000, seed: int = 0) -> Interval:
    """`model` − `reference` on matching (seed, prompt) pairs, with the crossed bootstrap's interval."""
    if model.keys() != reference.keys():
        odd = sorted(model.keys() ^ reference.keys())[:3]
        raise ValueError(f"cannot pair: the (seed, prompt) pairs differ, e.g. {odd}")
    return crossed_bootstrap({k: model[k] - reference[k] for k in model}, resamples, seed)


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
