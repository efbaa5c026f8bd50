"""What the judge costs (`judge.price`) and how much of it a run may spend (`judge.budget`).

Neither changes a verdict, so neither is part of the judge's cache key: raising a budget or correcting a
price reuses every cached judgement.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

BUDGET_KINDS = ("calls", "tokens", "money")


class JudgePrice(BaseModel):
    """The judge API's price list, to turn tokens into money (estimates, budgets, summaries)."""

    model_config = ConfigDict(extra="forbid")

    input_per_million: float = Field(..., ge=0, description="price of a million prompt (input) tokens")
    output_per_million: float = Field(..., ge=0, description="price of a million completion (output) tokens")
    currency: str = Field("USD", min_length=1, description="the prices' currency, only printed")

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6


class JudgeBudget(BaseModel):
    """Limits on what the judge may spend over the whole run (all processes, all launches of it): training
    stops with a checkpoint at the end of the step in which one is reached. None: no limit of that kind."""

    model_config = ConfigDict(extra="forbid")

    calls: int | None = Field(
        None, ge=1, description="judge requests sent, retries included (each one reaches the server and may be billed)"
    )
    tokens: int | None = Field(
        None, ge=1, description="prompt + completion tokens, as the server's `usage` reports them"
    )
    money: float | None = Field(None, gt=0, description="in judge.price's currency, from the reported tokens")

    @property
    def limits(self) -> dict[str, float]:
        """The limits that are set, by kind."""
        return {k: v for k in BUDGET_KINDS if (v := getattr(self, k)) is not None}

    @property
    def needs_usage(self) -> bool:
        """Whether a limit counts tokens, which only the server's `usage` reports."""
        return self.tokens is not None or self.money is not None
