"""The per-step judge and reward metrics, from a step's rollout records: the one writer of these names.

Both engines log them: the TRL engine over each generation batch's records, verl's curriculum actor over the
records counted in a step. Keeping the names in one function (away from either engine, so verl imports no TRL
code) means a TRL run and a verl run plot the same curves under the same keys.
"""

from __future__ import annotations

from collections.abc import Sequence

from .outcome import OUTCOMES
from .reasons import ALL_REASONS
from .rollouts import RolloutRecord


def step_metrics(records: Sequence[RolloutRecord]) -> dict[str, float]:
    """What one step's records say: outcome rates (`judge/<flag>_rate`), how many rewards are missing and why
    (`judge/missing/<reason>`, every code every step so each is one steady curve), and the mean of each reward
    component over the known rewards (`reward/<component>`). A pointwise reward has no outcome, so a step of
    pointwise records has no win, tie or loss rate (not a rate of 0)."""
    flags = [r.flags() for r in records]
    n = max(len(flags), 1)
    outcomes = OUTCOMES if any(r.kind == "pairwise" for r in records) else ()
    out = {
        f"judge/{name}_rate": sum(f[name] for f in flags) / n
        for name in (*outcomes, "unknown", "injection", "truncated")
    }
    for code in ALL_REASONS:
        out[f"judge/missing/{code}"] = float(sum(f[f"missing_{code}"] for f in flags))
    known = [r for r in records if r.reward is not None]
    for part in sorted({k for r in known for k in r.components}):
        values = [r.components.get(part) or 0.0 for r in known]
        out[f"reward/{part}"] = sum(values) / len(values)
    return out
