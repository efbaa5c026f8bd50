"""Statistics for evaluation: bootstrap confidence intervals, Bradley-Terry ratings, position consistency."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


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


def position_consistency(pairs: Sequence[tuple[str, str]]) -> float:
    """Share of pairs whose two orders agree, given (outcome with A first, outcome with A second) for model A."""
    if not pairs:
        raise ValueError("no pairs")
    return sum(1 for first, second in pairs if first == second) / len(pairs)
