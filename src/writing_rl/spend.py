"""What a training run has spent on the judge, and whether that reaches `judge.budget`.

The spend is counted over all training processes (the trainer adds each generation batch's totals,
gathered over the ranks, so every rank holds the same numbers and decides the same), saved in every
checkpoint as `judge_spend.json` and restored on `--resume`: a budget counts the whole run, not each launch.

- calls: requests sent to the judge, retries included: a retried request reached the server, which may
  bill it. Cache hits and answers the injection screen decided cost nothing and are not counted.
- tokens: what the server's `usage` reported. An answer without `usage` is counted in `no_usage`: its
  tokens are unknown, not zero, so a token or money budget cannot be kept with such a server (training
  stops at the first step that shows it, see `budget_problem`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .judge.budget import BUDGET_KINDS, JudgeBudget, JudgePrice
from .run_layout import JUDGE_SPEND

SPEND_FILE = JUDGE_SPEND


class BudgetSpecError(ValueError):
    """A `--budget KIND=VALUE` the command line cannot read."""


@dataclass
class JudgeSpend:
    calls: int = 0  # requests sent, retries included
    prompt_tokens: int = 0
    completion_tokens: int = 0
    no_usage: int = 0  # answers that reported no token usage

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def money(self, price: JudgePrice | None) -> float | None:
        return None if price is None else price.cost(self.prompt_tokens, self.completion_tokens)

    def add_batch(self, totals: Mapping[str, float]) -> None:
        """Add one generation batch's judge counters, summed over the ranks (`rank_metrics.combine_ranks`)."""
        self.calls += int(totals.get("judge/calls", 0) + totals.get("judge/retries", 0))
        self.prompt_tokens += int(totals.get("judge/prompt_tokens", 0))
        self.completion_tokens += int(totals.get("judge/completion_tokens", 0))
        self.no_usage += int(totals.get("judge/no_usage", 0))

    def value(self, kind: str, price: JudgePrice | None) -> float:
        """What was spent of one budget kind (calls, tokens or money)."""
        if kind == "money":
            return self.money(price) or 0.0
        return self.calls if kind == "calls" else self.tokens

    def reached(self, budget: JudgeBudget, price: JudgePrice | None) -> list[str]:
        """The budget kinds whose limit the spend has reached."""
        return [k for k, limit in budget.limits.items() if self.value(k, price) >= limit]

    def describe(self, price: JudgePrice | None = None) -> str:
        """One line: calls, tokens (or why they are unknown), money when priced."""
        text = f"{self.calls:,} calls (retries included), {self.tokens:,} tokens ({self.prompt_tokens:,} prompt + "
        text += f"{self.completion_tokens:,} completion)"
        if self.no_usage:
            text += f"; {self.no_usage:,} answers reported no token usage, so the tokens are undercounted"
        if price is not None:
            text += f", {format_money(self.money(price) or 0.0, price.currency)}"
        return text

    def to_json(self, price: JudgePrice | None = None) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        if price is not None:  # for people reading the file; a resume uses the counts only
            out.update(money=self.money(price), currency=price.currency)
        return out

    def save(self, path: Path, price: JudgePrice | None = None) -> None:
        """Written to a temporary file, then moved in place: a reader never sees half a file."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(price), indent=1), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> JudgeSpend:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(cls)})


def format_money(value: float, currency: str) -> str:
    return f"{value:,.4f} {currency}" if value < 1 else f"{value:,.2f} {currency}"


def format_limit(kind: str, limit: float, price: JudgePrice | None) -> str:
    if kind == "money":
        return f"money={format_money(limit, price.currency if price else '')}".rstrip()
    return f"{kind}={int(limit):,}"


def budget_problem(spend: JudgeSpend, budget: JudgeBudget, price: JudgePrice | None) -> str | None:
    """Why training must stop now, or None: a limit reached, or a token/money limit the server's answers
    cannot be counted against (they reported no usage)."""
    if budget.needs_usage and spend.no_usage:
        kinds = " and ".join(k for k in ("tokens", "money") if getattr(budget, k) is not None)
        return (
            f"the judge answered {spend.no_usage:,} calls without reporting token usage, so the {kinds} budget "
            "cannot be counted"
        )
    reached = spend.reached(budget, price)
    if not reached:
        return None
    return f"judge budget {', '.join(format_limit(k, budget.limits[k], price) for k in reached)} reached"


def continue_hint(run_dir: Path, spend: JudgeSpend, budget: JudgeBudget, price: JudgePrice | None) -> str:
    """The command that continues the run with a larger budget (twice what was spent, as an example)."""
    kinds = spend.reached(budget, price) or (["calls"] if spend.no_usage else list(budget.limits)[:1])
    if budget.needs_usage and spend.no_usage:
        raise_it = " ".join(f"--budget {k}=none" for k in ("tokens", "money") if getattr(budget, k) is not None)
        return f"writing-rl train --resume {run_dir} {raise_it} --budget calls={max(2 * spend.calls, 1)}"
    shown = []
    for k in kinds:
        more = 2 * spend.value(k, price)
        shown.append(f"--budget {k}={more:.4g}" if k == "money" else f"--budget {k}={int(more)}")
    return f"writing-rl train --resume {run_dir} {' '.join(shown)}"


def parse_budget_specs(specs: list[str], current: JudgeBudget) -> JudgeBudget:
    """`--budget calls=N`, `tokens=N`, `money=X` (or `KIND=none` to lift that limit), each replacing the
    config's limit of that kind; the others are kept."""
    values: dict[str, Any] = current.model_dump()
    for spec in specs:
        kind, sep, raw = spec.partition("=")
        kind, raw = kind.strip(), raw.strip()
        if not sep or kind not in BUDGET_KINDS:
            raise BudgetSpecError(f"--budget {spec}: give KIND=VALUE with KIND one of {', '.join(BUDGET_KINDS)}")
        if raw.lower() == "none":
            values[kind] = None
            continue
        try:
            number = float(raw) if kind == "money" else int(raw)
        except ValueError:
            what = "a number" if kind == "money" else "a whole number"
            raise BudgetSpecError(f"--budget {spec}: {kind} must be {what} (or none)") from None
        if number <= 0:
            raise BudgetSpecError(f"--budget {spec}: {kind} must be above 0 (or none for no limit)")
        values[kind] = number
    return JudgeBudget.model_validate(values)


class JudgeBudgetReached(RuntimeError):
    """Training stopped, with a checkpoint, because the judge spend reached `judge.budget`; the message is one
    line: what was spent against which limit, and the command that continues the run."""

    exit_code = 3  # stopped by the budget, with a checkpoint to continue from


def checkpoint_spend(checkpoint: Path | None) -> JudgeSpend:
    """The spend saved with a checkpoint; nothing before the first (or in a checkpoint from before spends were saved)."""
    path = None if checkpoint is None else checkpoint / SPEND_FILE
    return JudgeSpend.load(path) if path is not None and path.is_file() else JudgeSpend()


def saved_spend_line(path: Path) -> str:
    """The spend saved in a run folder, on one line, with its money where the run had a price."""
    data = json.loads(path.read_text(encoding="utf-8"))
    text = JudgeSpend.load(path).describe()
    if data.get("money") is not None:
        text += f", {format_money(float(data['money']), str(data.get('currency', '')))}"
    return text
