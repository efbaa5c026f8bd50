"""Rule judges: pairwise judges whose truth is known, for sanity checks and ablations.

A rule judge is not a writing judge. It scores each answer with a measurable rule on a 0–100 scale
and prefers the higher score (a tie within `tolerance`), so a user can check that the reward path,
the curriculum and the trainer move a policy the way the rule says, without an LLM:

- `length_fit`: LongBench-Write's length score S_l of the answer against the sample's `length`,
  counted with `text_metrics.count_length` (the evaluation's counter).
- `keyword_coverage`: the share of the sample's `keywords` (a list field of the sample) the answer uses.
- `low_repetition`: 100 × (1 − share of repeated 4-grams).

`position_bias` and `noise` make it behave like a real judge: with probability `position_bias` it
answers A whatever the answers are, and otherwise flips its verdict with probability `noise`. Both
draw from a hash of (seed, question, A, B), so the same pair always gets the same verdict, whatever
the order or concurrency of the calls.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..reasons import Reason
from ..text_metrics import count_length, keyword_coverage, length_score, repetition_ratio
from .judgement import Judgement, JudgeStats
from .verdict import Verdict

if TYPE_CHECKING:
    from ..data import Sample

RuleName = Literal["length_fit", "keyword_coverage", "low_repetition"]


class RuleJudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RuleName
    tolerance: float = Field(5.0, ge=0, le=100, description="score gap (0-100 scale) within which it is a tie")
    position_bias: float = Field(0.0, ge=0, le=1, description="probability of answering A whatever the answers")
    noise: float = Field(0.0, ge=0, le=1, description="probability of a flipped verdict (A<->B; a tie goes either way)")
    seed: int = 0


class RuleNotApplicable(ValueError):
    """The sample lacks what the rule measures (no target length, no keywords)."""


def _length_fit(text: str, sample: Sample | None) -> tuple[float, str]:
    if sample is None or not sample.length:
        raise RuleNotApplicable("length_fit needs the sample's target `length`")
    n = count_length(text)
    return length_score(sample.length, n), f"{n} of {sample.length} words"


def _keyword_coverage(text: str, sample: Sample | None) -> tuple[float, str]:
    keywords = getattr(sample, "keywords", None) if sample is not None else None
    if not keywords or not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise RuleNotApplicable("keyword_coverage needs the sample's `keywords` (a list of words)")
    share = keyword_coverage(text, keywords)
    return 100.0 * share, f"{round(share * len(keywords))} of {len(keywords)} keywords"


def _low_repetition(text: str, sample: Sample | None) -> tuple[float, str]:
    ratio = repetition_ratio(text)
    return 100.0 * (1.0 - ratio), f"{ratio:.0%} repeated 4-grams"


RULES: dict[str, Callable[[str, Sample | None], tuple[float, str]]] = {
    "length_fit": _length_fit,
    "keyword_coverage": _keyword_coverage,
    "low_repetition": _low_repetition,
}


def rule_score(name: str, text: str, sample: Sample | None) -> float:
    """The rule's 0–100 score of one answer (also the metric the ablation evaluates with)."""
    return RULES[name](text, sample)[0]


def _uniforms(*parts: str) -> tuple[float, float, float]:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i : i + 8], "big") / 2**64 for i in (0, 8, 16))  # type: ignore[return-value]


class RuleJudge:
    """A `Judge` that decides by rule; no endpoint, no cache (it is cheaper than a cache lookup)."""

    def __init__(self, config: RuleJudgeConfig):
        self.config = config
        self.measure = RULES[config.name]
        self.stats = JudgeStats()

    def decide(self, question: str, answer_a: str, answer_b: str, sample: Sample | None) -> Judgement:
        c = self.config
        try:
            (score_a, about_a), (score_b, about_b) = self.measure(answer_a, sample), self.measure(answer_b, sample)
        except RuleNotApplicable as err:
            return Judgement(Verdict.UNKNOWN, error=str(err), reason=Reason.NOT_APPLICABLE)
        gap = score_a - score_b
        verdict = Verdict.TIE if abs(gap) <= c.tolerance else Verdict.A if gap > 0 else Verdict.B
        lines = [
            f"{c.name}: A scores {score_a:.1f} ({about_a}), B scores {score_b:.1f} ({about_b}); "
            f"a tie within {c.tolerance:g}."
        ]
        bias_draw, noise_draw, side_draw = _uniforms(str(c.seed), c.name, question, answer_a, answer_b)
        if bias_draw < c.position_bias:
            verdict = Verdict.A
            lines.append("position bias: answered A regardless.")
        elif noise_draw < c.noise:
            flipped = {Verdict.A: Verdict.B, Verdict.B: Verdict.A}
            verdict = flipped.get(verdict, Verdict.A if side_draw < 0.5 else Verdict.B)
            lines.append("noise: verdict flipped.")
        lines.append(f"[[{verdict.value}]]")
        return Judgement(verdict, text="\n".join(lines))

    async def judge(
        self, question: str, answer_a: str, answer_b: str, criteria: str | None = None, sample: Sample | None = None
    ) -> Judgement:
        started = time.perf_counter()
        result = self.decide(question, answer_a, answer_b, sample)
        self.stats.count(result, time.perf_counter() - started)
        return result

    def call_stats(self) -> dict[str, float]:
        return self.stats.call_stats()

    async def aclose(self) -> None:
        return None
