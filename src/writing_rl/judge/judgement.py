"""What every judge backend returns, and the interface the reward path relies on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..reasons import Reason
from .verdict import Verdict, VerdictProbs

if TYPE_CHECKING:
    from ..data import Sample


@dataclass
class Judgement:
    """One verdict; an unknown one carries `reason` (a code) and `error` (the details).

    `truncated` holds the tokens cut from answers A and B to fit the judge's context, when any were.
    """

    verdict: Verdict
    probs: VerdictProbs | None = None
    text: str = ""
    error: str | None = None
    cached: bool = False
    reason: Reason | None = None
    truncated: tuple[int, int] | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d["verdict"] = self.verdict.value
        d["reason"] = None if self.reason is None else self.reason.value
        d["truncated"] = None if self.truncated is None else list(self.truncated)
        return d

    @classmethod
    def from_json(cls, d: dict) -> Judgement:
        probs = VerdictProbs(**d["probs"]) if d.get("probs") else None
        return cls(
            verdict=Verdict(d["verdict"]),
            probs=probs,
            text=d.get("text", ""),
            error=d.get("error"),
            cached=True,
            reason=Reason(d["reason"]) if d.get("reason") else None,
            truncated=tuple(d["truncated"]) if d.get("truncated") else None,  # type: ignore[arg-type]
        )


@dataclass
class JudgeStats:
    judgements: int = 0
    unknown: int = 0
    failed_calls: int = 0
    cache_hits: int = 0
    latency_s: float = 0.0
    by_verdict: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    truncated: int = 0

    def count(self, result: Judgement, seconds: float) -> None:
        self.judgements += 1
        self.unknown += result.verdict is Verdict.UNKNOWN
        self.by_verdict[result.verdict.value] = self.by_verdict.get(result.verdict.value, 0) + 1
        if result.reason is not None:
            self.by_reason[result.reason.value] = self.by_reason.get(result.reason.value, 0) + 1
        self.truncated += bool(result.truncated and any(result.truncated))
        self.latency_s += seconds

    def call_stats(self) -> dict[str, float]:
        """The calls of a judge without an endpoint (a rule): each judgement is one call, never retried."""
        return {"calls": self.judgements, "retries": 0, "latency_s": self.latency_s}


class Judge(Protocol):
    """A pairwise judge: an LLM behind an endpoint, or a rule whose truth is known.

    A judge may also have `async prepare(question, answer_a, answer_b, criteria)`: the CPU work of a
    call done ahead (PairwiseJudge sanitises and fits the prompt), which the reward runs for the next
    calls while the judge answers the current ones."""

    stats: JudgeStats

    async def judge(
        self, question: str, answer_a: str, answer_b: str, criteria: str | None = None, sample: Sample | None = None
    ) -> Judgement: ...

    def call_stats(self) -> dict[str, float]:
        """Totals since start: calls spent, retries, summed call latency (for per-step metrics)."""
        ...

    async def aclose(self) -> None: ...
