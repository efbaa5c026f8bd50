"""Rollout records: what the judge said about each completion, one JSON line per completion.

A user must be able to answer "why did this completion get this reward?" from the run folder alone:
each record holds the sample, the step, the reference level and source, the completion, every judged
order's verdict, probabilities and judge text (and how many tokens of each answer were cut to fit the
judge's context), the reward with its components kept apart, what the injection screen found
(`injection`), under `reward.kind: pointwise` the score the answer got alone (`score`: the scorer, its
value and scale, each criterion's score and reason) instead of judged orders, and, when the reward is missing, its reason code (`missing_reason`: transport,
timeout, http_status, bad_response, credentials, parse, no_verdict_mass, context_overflow, injection,
not_applicable, internal) with the details in words (`missing_detail`). Texts longer than
`max_text_chars` are kept as a hash and a length; the file stops growing at `max_mb` (one warning says so).

`RolloutRecord` is the one definition of a record, and the one place where a judged pair becomes a reward:
both engines build it (`RolloutRecord.of_pair` adds the extra terms to the pairwise or pointwise reward) and read the
reward, its components and the per-completion metric flags (`flags`) off it; `RolloutWriter` writes it, and
`read_rollouts` (behind `writing-rl rollouts`) validates every line back into it.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer

from .data import SampleId
from .jsonl import JsonlFileError, LineProblem, jsonl_rows
from .judge.screen import Injection
from .judge.verdict import Verdict, VerdictProbs
from .outcome import OUTCOMES, Outcome
from .pointwise import PointReward
from .reasons import ALL_REASONS, Reason
from .reward import ExtraRewards, Order, RewardKind
from .run_layout import ROLLOUTS

if TYPE_CHECKING:
    from pydantic import SerializerFunctionWrapHandler

    from .data import Sample
    from .reward import PairReward

ROLLOUTS_FILE = ROLLOUTS


class RolloutSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_text_chars: int = Field(20_000, ge=0, description="longer completion / judge texts are kept as hash + length")
    max_mb: float = Field(512.0, gt=0, description="stop writing records once the file reaches this size")


class CappedText(BaseModel):
    """A text as a record keeps it: the text itself, or (over the cap) only its length and sha256, so a
    long completion can still be matched to its copy elsewhere without filling the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str | None
    chars: int
    sha256: str | None = None

    @classmethod
    def of(cls, text: str, limit: int) -> CappedText:
        if len(text) <= limit:
            return cls(text=text, chars=len(text))
        return cls(text=None, chars=len(text), sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())

    @model_serializer(mode="wrap")
    def _without_absent_hash(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if out.get("sha256") is None:  # a text under the cap is written as {"text", "chars"}, as it always was
            out.pop("sha256", None)
        return out

    def shown(self) -> str:
        if self.text is not None:
            return self.text
        return f"<{self.chars} characters, sha256 {(self.sha256 or '?')[:16]}… (over the size cap)>"


def capped(text: str, limit: int) -> dict[str, Any]:
    """The text itself, or its sha256 and length when it is over the cap (as plain JSON)."""
    return CappedText.of(text, limit).model_dump()


class JudgedOrder(BaseModel):
    """What the judge said in one order (which answer it read first)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order: Order
    verdict: Verdict
    probs: VerdictProbs | None = None
    text: CappedText
    error: str | None = None
    reason: Reason | None = None
    truncated: tuple[int, int] | None = None  # tokens cut from answers A and B to fit the judge's context
    cached: bool = False


class ScoredCriterion(BaseModel):
    """One criterion of a pointwise score: its score (None: missing, with the code of why) and the scorer's reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: float | None
    reason: CappedText
    missing_reason: Reason | None = None


class PointwiseScore(BaseModel):
    """What the pointwise scorer said of the answer alone: `value` on its scale `low..high` (the reward maps it
    linearly onto loss..win), and each criterion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scorer: str
    value: float | None
    low: float
    high: float
    criteria: list[ScoredCriterion]


class RolloutRecord(BaseModel):
    """One completion of a training step: the one type both the engine (writer) and
    `writing-rl rollouts` (reader) use, so neither can drift from the other.

    `step` is the training step these completions train, numbered as in metrics.jsonl (`run_layout`'s
    step numbering: TRL's `global_step` after that optimizer step, verl's `global_steps`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: int
    sample: str  # the sample's typed key (`data.sample_key`)
    sample_id: SampleId
    index: int  # which completion of this sample in the step
    level: int
    n_levels: int
    reference_source: str
    completion: CappedText  # what was judged: the answer alone under `reward.strip_thinking`
    judgements: list[JudgedOrder]
    outcome: Outcome | None
    reward: float | None
    components: dict[str, float | None]  # each term of the reward apart (pairwise or pointwise, length, repetition)
    injection: Injection | None = None
    missing_reason: Reason | None = None
    missing_detail: str | None = None
    kind: RewardKind = "pairwise"  # pointwise: no judged orders and no outcome; `score` says what the answer got
    score: PointwiseScore | None = None
    thinking_chars: int | None = None  # characters of reasoning cut before judging (`reward.strip_thinking`)

    @classmethod
    def of_pair(
        cls,
        *,
        step: int,
        sample: Sample,
        index: int,
        level: int,
        text: str,
        pair: PairReward | PointReward,
        extras: ExtraRewards,
        max_text_chars: int,
        thinking_chars: int | None = None,
    ) -> RolloutRecord:
        """The record of one judged completion (`pair`: the judge's reward against reference `level`, or the
        pointwise reward of the answer alone): its reward is that one plus the extra terms that apply, or None
        (unknown) when that one is."""
        kind: RewardKind = "pointwise" if isinstance(pair, PointReward) else "pairwise"
        components: dict[str, float | None] = {kind: pair.reward, **extras.terms(sample, text)}
        reward = None if pair.reward is None else sum(v for v in components.values() if v is not None)
        sources = getattr(sample, "reference_sources", None)
        source = sources[level] if isinstance(sources, list) and level < len(sources) else f"reference {level}"
        return cls(
            step=step,
            sample=sample.key,
            sample_id=sample.id,
            index=index,
            level=level,
            n_levels=len(sample.references),
            reference_source=source,
            completion=CappedText.of(text, max_text_chars),
            judgements=[
                JudgedOrder(
                    order=order,
                    verdict=j.verdict,
                    probs=j.probs,
                    text=CappedText.of(j.text, max_text_chars),
                    error=j.error,
                    reason=j.reason,
                    truncated=j.truncated,
                    cached=j.cached,
                )
                for order, j in zip(pair.orders, pair.judgements)
            ],
            outcome=pair.outcome,
            reward=reward,
            components=components,
            injection=pair.injection,
            missing_reason=pair.missing_reason,
            missing_detail=pair.missing_detail,
            kind=kind,
            score=point_score(pair, max_text_chars) if isinstance(pair, PointReward) else None,
            thinking_chars=thinking_chars,
        )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def flags(self) -> dict[str, float]:
        """What this completion counts towards, 1.0 or 0.0 under the names in `FLAGS`: its outcome (none under
        pointwise), `unknown` (no reward),
        `injection`, `truncated` and `missing_<reason>`. A flag's mean over a step is its rate, its sum the
        count: TRL's step metrics and verl's per-rollout reward info both read these."""
        missing = None if self.missing_reason is None else self.missing_reason.value
        out = {
            **{o: self.outcome == o for o in OUTCOMES},
            "unknown": self.reward is None,
            "injection": self.injection is not None,
            "truncated": self.truncated,
            **{f"missing_{code}": missing == code for code in ALL_REASONS},
        }
        return {k: float(v) for k, v in out.items()}

    @property
    def truncated(self) -> bool:
        """Whether any judged order saw the answers cut to fit the judge's context."""
        return any(j.truncated and any(j.truncated) for j in self.judgements)


def point_score(reward: PointReward, max_text_chars: int) -> PointwiseScore | None:
    """A pointwise reward's score as a record keeps it (None: the screen decided the reward without a call)."""
    s = reward.score
    if s is None:
        return None
    criteria = [
        ScoredCriterion(score=c.score, reason=CappedText.of(c.reason, max_text_chars), missing_reason=c.missing_reason)
        for c in s.criteria
    ]
    return PointwiseScore(scorer=s.scorer, value=s.value, low=s.low, high=s.high, criteria=criteria)


FLAGS = (*OUTCOMES, "unknown", "injection", "truncated", *(f"missing_{r}" for r in ALL_REASONS))


class RolloutWriter:
    """Appends records to `rollouts.jsonl` (main process only) until the size cap."""

    def __init__(self, run_dir: Path, settings: RolloutSettings):
        self.path = run_dir / ROLLOUTS_FILE
        self.settings = settings
        self.stopped = False

    def write(self, records: Sequence[RolloutRecord]) -> int:
        if not self.settings.enabled or self.stopped or not records:
            return 0
        limit = self.settings.max_mb * 1024 * 1024
        written = 0
        with self.path.open("a", encoding="utf-8") as fh:
            for record in records:
                if fh.tell() >= limit:
                    self.stopped = True
                    warnings.warn(
                        f"{self.path} reached rollouts.max_mb={self.settings.max_mb:g}: no more rollout records "
                        "are written for this run",
                        stacklevel=2,
                    )
                    break
                fh.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
                written += 1
        return written


def read_rollouts(path: Path, step: int | None = None, sample: str | None = None) -> list[RolloutRecord]:
    """Records of a run folder (or a rollouts file), filtered by step and by sample id or key; a line that
    is not a rollout record is a `JsonlFileError` naming it."""
    path = path / ROLLOUTS_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no rollout records at {path}")
    records = []
    for line, row in jsonl_rows(path):
        if isinstance(row, LineProblem):
            raise JsonlFileError(path, line, str(row))
        try:
            records.append(RolloutRecord.model_validate(row))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "the line"
            raise JsonlFileError(path, line, f"not a rollout record: {where}: {first['msg']}") from None
    if step is not None:
        records = [r for r in records if r.step == step]
    if sample is not None:
        records = [r for r in records if sample in (r.sample, str(r.sample_id))]
    return records


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in (text.splitlines() or [""]))


def format_rollout(r: RolloutRecord) -> str:
    """A readable block: header, completion, each judged order, reward and components."""
    reward = "missing" if r.reward is None else f"{r.reward:.3f}"
    comps = ", ".join(f"{k} {v:.3f}" for k, v in r.components.items() if v is not None)
    why = None if r.missing_reason is None else r.missing_reason.value
    detail = r.missing_detail
    against = (
        "pointwise (no reference)"
        if r.kind == "pointwise"
        else f"reference level {r.level}/{r.n_levels - 1} ({r.reference_source})"
    )
    judged = "" if r.kind == "pointwise" else f"; outcome {r.outcome or 'unknown'}"
    lines = [
        f"── step {r.step} · sample {r.sample_id} · completion {r.index} · {against}",
        f"  reward {reward} ({comps or 'no components'}){judged}"
        + (f"; missing because: {why}" + (f" ({detail})" if detail else "") if why else ""),
    ]
    if r.injection is not None:
        lines.append(f"  injection screen: {', '.join(r.injection.rules)}: {r.injection.excerpt!r}")
    thought = f" (after {r.thinking_chars} characters of thinking, cut)" if r.thinking_chars else ""
    lines += [f"  completion{thought}:", _indent(r.completion.shown())]
    if r.score is not None:
        value = "none" if r.score.value is None else f"{r.score.value:.2f}"
        lines.append(f"  scored by {r.score.scorer}: {value} on {r.score.low:g}..{r.score.high:g}")
        for c in r.score.criteria:
            missing = f" missing ({c.missing_reason.value})" if c.missing_reason else ""
            shown = "-" if c.score is None else f"{c.score:.2f}"
            lines.append(f"    criterion {shown}{missing}: " + " ".join(c.reason.shown().split())[:300])
    for j in r.judgements:
        p = j.probs
        shown = f" P(A) {p.a:.2f} P(B) {p.b:.2f} P(tie) {p.tie:.2f}" if p else ""
        error = f" error ({j.reason.value if j.reason else 'unknown'}): {j.error}" if j.error else ""
        cut = j.truncated
        cut_shown = f" (answers cut to fit: A -{cut[0]}, B -{cut[1]} tokens)" if cut and any(cut) else ""
        lines.append(f"  judged {j.order.replace('_', ' ')}: verdict {j.verdict.value}{shown}{cut_shown}{error}")
        if j.text.text or j.text.sha256:
            lines.append(_indent(j.text.shown(), "      "))
    return "\n".join(lines)
