"""Verdicts to rewards, with position-bias handling; an unknown verdict is a missing reward.

`reference_first` is the published default (reference in position A, "position-disadvantage");
`policy_first` suits weak writers; `both_average` and `both_agree` judge both orders to cancel the
judge's position bias at twice the cost.

Before any judge call the policy's answer is screened for injection (`judge.screen`): under the
default `injection: penalize` an answer that addresses the judge is scored as a loss, under
`unknown` its reward is missing with reason `injection`, under `off` it is judged (sanitised).
A reasoning policy's thinking is cut first under `strip_thinking` (`RewardConfig.answer`), by both engines.
Where the "reference" is another model's answer (the eval arena), it is screened too
(`screen_reference`): under `penalize` the side the screen caught loses, both caught make a tie.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm.auto import tqdm

from .aio import gather_all, run_sync
from .judge.judgement import Judge, Judgement
from .judge.prepare import Preparer
from .judge.screen import Injection, InjectionPolicy, screen
from .judge.verdict import Verdict, VerdictProbs
from .outcome import Outcome
from .reasons import Reason
from .text_metrics import count_length, length_score, repetition_ratio
from .thinking import answer_after_thinking

if TYPE_CHECKING:
    from .data import Sample
    from .pointwise import PointReward

RewardKind = Literal["pairwise", "pointwise"]
PositionMode = Literal["reference_first", "policy_first", "both_average", "both_agree"]
Order = Literal["reference_first", "policy_first"]


@dataclass(frozen=True)
class PairItem:
    """One policy answer to judge against one reference: what every caller of `score_batch` hands over.

    `criteria` replaces the judge's generic dimensions; `sample` is read by rule judges (target length ...)."""

    question: str
    answer: str
    reference: str
    criteria: str | None = None
    sample: Sample | None = None


class RewardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: RewardKind = Field(
        "pairwise",
        description="pairwise: the policy's answer judged against the prompt's current reference (the method); "
        "pointwise: the answer scored alone, by the rule judge's rule or the pointwise critic (`pointwise.py`)",
    )
    position: PositionMode = Field("reference_first", description="pairwise: which order(s) the judge reads")
    injection: InjectionPolicy = Field(
        "penalize",
        description="a policy answer that addresses the judge: penalize (a loss, no call), unknown (missing reward, "
        "reason injection) or off (judged as usual, sanitised)",
    )
    strip_thinking: bool = Field(
        False,
        description="judge a reasoning policy's answer only: the text after its last </think>. Thinking that never "
        "closes (a <think> the completion or, for DeepSeek-R1-style templates, the prompt opened) leaves an empty "
        "answer, which loses without a call. Off: the whole completion is judged, and the injection screen reads "
        "its </think> as a control token",
    )
    win: float = 1.0
    tie: float = 0.5
    loss: float = 0.0
    prepare_workers: int = Field(
        0,
        ge=0,
        description="processes that sanitise and screen a batch's answers before its judge calls (0: in the "
        "event loop between calls); for long answers on a node with spare cores (judge/prepare.py)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> RewardConfig:
        if not self.loss <= self.tie <= self.win:
            raise ValueError(f"reward values must satisfy loss <= tie <= win, got {self.loss}, {self.tie}, {self.win}")
        if self.kind == "pointwise" and self.prepare_workers:  # it prepares pairwise prompts; nothing would use it
            raise ValueError(
                "prepare_workers: only the pairwise reward prepares judge prompts; set it to 0 under pointwise"
            )
        return self

    def answer(self, completion: str, opened: bool = False) -> tuple[str, int | None]:
        """What is judged, scored by the extra rewards and kept in the rollout record, and how many characters
        of thinking were cut for it (None: `strip_thinking` is off). `opened`: the policy's chat template opens
        the thinking in the prompt (`thinking.template_opens_thinking`), so a completion without `</think>`
        never finished it."""
        if not self.strip_thinking:
            return completion, None
        answer = answer_after_thinking(completion, opened)
        return answer, len(completion) - len(answer)


class ExtraRewards(BaseModel):
    """Rule-based parts added to the judged reward, pairwise or pointwise (both engines)."""

    model_config = ConfigDict(extra="forbid")

    length_weight: float = Field(0.0, ge=0, description="weight of the LongBench-Write length score (0..1) vs `length`")
    repetition_weight: float = Field(0.0, ge=0, description="weight of the repeated-4-gram share, subtracted")

    def terms(self, sample: Sample, text: str) -> dict[str, float]:
        """The terms added to the judged reward, each signed as it enters the sum; only those that apply."""
        out = {}
        if self.length_weight and sample.length:
            out["length"] = self.length_weight * length_score(sample.length, count_length(text)) / 100.0
        if self.repetition_weight:
            out["repetition"] = -self.repetition_weight * repetition_ratio(text)
        return out


@dataclass(frozen=True)
class PairReward:
    """Reward of one policy answer against one reference; `reward is None` means unknown.

    `judgements[i]` is the judge's answer for the order `orders[i]` (which answer it read first);
    there are none when the screen stopped the answer (`injection`) before a call was spent.
    """

    reward: float | None
    outcome: Outcome | None
    judgements: tuple[Judgement, ...]
    orders: tuple[Order, ...] = ()
    injection: Injection | None = None
    reference_injection: Injection | None = None  # only where the reference is screened too (`screen_reference`)

    @property
    def screened_out(self) -> bool:
        """Whether the screen decided this reward alone, before any judge call."""
        return not self.judgements and (self.injection is not None or self.reference_injection is not None)

    @property
    def order_outcomes(self) -> tuple[Outcome | None, ...]:
        """The policy's outcome in each judged order (`orders[i]`), None where it has no verdict: two orders
        that disagree show the judge's position bias."""
        return tuple(order_outcome(j, o) for j, o in zip(self.judgements, self.orders))

    @property
    def missing_reason(self) -> Reason | None:
        """Why the reward is unknown (a code): the first unknown order's reason."""
        if self.reward is not None:
            return None
        if self.screened_out:
            return Reason.INJECTION
        return next((j.reason for j in self.judgements if j.reason), Reason.PARSE)

    @property
    def missing_detail(self) -> str | None:
        """The same, in words."""
        if self.reward is not None:
            return None
        for side, found in (("answer", self.injection), ("reference", self.reference_injection)):
            if found is not None and not self.judgements:
                return f"the {side} addresses the judge ({', '.join(found.rules)}): {found.excerpt!r}"
        return next((j.error for j in self.judgements if j.error), "the judge gave no verdict")

    @property
    def truncated(self) -> bool:
        """Whether any judged order saw the answers cut to fit the judge's context window."""
        return any(j.truncated and any(j.truncated) for j in self.judgements)


@dataclass
class RewardStats:
    win: int = 0
    tie: int = 0
    loss: int = 0
    unknown: int = 0
    injection: int = 0  # answers the screen caught (whatever the policy made of them)

    def add(self, r: PairReward | PointReward) -> None:
        """A reward with a value is known, with or without an outcome (a pointwise reward has none)."""
        self.injection += r.injection is not None
        if r.reward is None:
            self.unknown += 1
        elif r.outcome is not None:
            setattr(self, r.outcome, getattr(self, r.outcome) + 1)


Findings = tuple[Injection | None, Injection | None]  # what the screen found in the answer and the reference
Screened = tuple[Findings, PairReward | None]  # and the reward it decides alone (no judge call), if any

DEFAULT_WINDOW = 64  # calls in flight for a judge without an endpoint (a rule judge)


class PairwiseReward:
    """Scores policy answers against references through a judge (LLM or rule).

    `screen_reference`: the references are other models' answers (the eval arena's opponents), not trusted
    text, so the injection screen reads them too."""

    def __init__(self, judge: Judge, config: RewardConfig | None = None, *, screen_reference: bool = False):
        self.judge = judge
        self.config = config or RewardConfig()
        self.screen_reference = screen_reference
        self.stats = RewardStats()
        self._preparer = Preparer(self.config.prepare_workers) if self.config.prepare_workers else None

    def _value(self, outcome: Outcome) -> float:
        return {"win": self.config.win, "tie": self.config.tie, "loss": self.config.loss}[outcome]

    def _one_order(self, j: Judgement, order: Order) -> tuple[float, Outcome] | None:
        """Reward and outcome for one judged order; soft probabilities give an expected reward."""
        hard = order_outcome(j, order)
        if hard is None:
            return None
        policy_pos = POLICY_POSITION[order]
        other = Verdict.B if policy_pos is Verdict.A else Verdict.A
        if j.probs is None:
            return self._value(hard), hard
        p = j.probs
        soft = (
            p.for_letter(policy_pos) * self.config.win
            + p.tie * self.config.tie
            + p.for_letter(other) * self.config.loss
        )
        return soft, hard

    @property
    def orders(self) -> tuple[Order, ...]:
        mode = self.config.position
        return ("reference_first", "policy_first") if mode.startswith("both") else (mode,)  # type: ignore[return-value]

    def _screened(self, item: PairItem) -> Screened:
        """The screen's findings, and the reward they decide alone (no judge call): an empty answer loses (an
        empty screened reference too: both empty, a tie); unless `injection: off`, under `penalize` the side
        caught loses (both caught: a tie), under `unknown` the reward is missing."""
        # found and recorded under every policy, acted on unless `off`
        found = (screen(item.answer), screen(item.reference) if self.screen_reference else None)
        answer, reference = found
        empty = (not item.answer.strip(), self.screen_reference and not item.reference.strip())
        if any(empty):  # nothing to judge (reasoning that never finished, an immediate end of text)
            nothing: Outcome = "tie" if all(empty) else "loss" if empty[0] else "win"
            return found, PairReward(self._value(nothing), nothing, (), (), answer, reference)
        if (answer is None and reference is None) or self.config.injection == "off":
            return found, None
        if self.config.injection == "unknown":
            return found, PairReward(None, None, (), (), answer, reference)
        caught = (answer is not None, reference is not None)
        outcome: Outcome = "tie" if all(caught) else "loss" if caught[0] else "win"
        return found, PairReward(self._value(outcome), outcome, (), (), answer, reference)

    @staticmethod
    def _call_args(item: PairItem, order: Order) -> tuple[str, str, str, str | None]:
        first, second = (item.reference, item.answer) if order == "reference_first" else (item.answer, item.reference)
        return item.question, first, second, item.criteria

    async def _judge(self, item: PairItem, order: Order) -> Judgement:
        return await self.judge.judge(*self._call_args(item, order), item.sample)

    def _combine(self, judgements: Sequence[Judgement], found: Findings = (None, None)) -> PairReward:
        reward, outcome = self._reward_of(judgements)
        return PairReward(reward, outcome, tuple(judgements), self.orders, *found)

    def _reward_of(self, judgements: Sequence[Judgement]) -> tuple[float | None, Outcome | None]:
        """The position mode's reward and outcome from one judgement per order (unknown if any order is)."""
        orders = self.orders
        results = [r for j, o in zip(judgements, orders) if (r := self._one_order(j, o)) is not None]
        if len(results) < len(orders):
            return None, None
        if len(results) == 1:
            return results[0]
        outcomes = {outcome for _, outcome in results}
        agreed: Outcome = outcomes.pop() if len(outcomes) == 1 else "tie"
        if self.config.position == "both_agree":
            return self._value(agreed), agreed
        averaged = _averaged_outcome(judgements, orders)
        return sum(value for value, _ in results) / 2, averaged or agreed

    def combine(self, by_order: dict[Order, Judgement]) -> PairReward:
        """The reward this config gives for judgements already made in (at least) the orders it uses:
        the judge audit reads the run's reward off the same two calls for either answer as the policy."""
        return self._combine([by_order[o] for o in self.orders])

    async def score_batch(self, items: Sequence[PairItem], progress: bool = False) -> list[PairReward]:
        """Score the items concurrently; their rewards, in order.

        Calls leave grouped: for each run of items that share a question and reference (a GRPO group),
        all its `reference_first` calls, then its `policy_first` ones, so the prompts a server sees in a
        row share everything up to the policy answer and its prefix cache hits. As many workers as the
        judge takes calls at once each take the next call as its last one returns. The CPU work before a
        call (the screen and, for an LLM judge, `judge.prepare`: sanitising and fitting its prompt) is
        done ahead by a prefetcher that runs between replies, at most one wave ahead, so a returning
        worker only sends: the wait for the judge hides that work instead of each wave paying it (more
        workers, each preparing a wave ahead, measured slower: the extra wave delayed the first calls)."""
        if self._preparer is not None:
            await self._preparer.prime(text for item in items for text in (item.answer, item.reference))
        results: list[PairReward | None] = [None] * len(items)
        screened: dict[int, Screened] = {}
        orders = self.orders
        calls = [(i, k) for run in _runs(items) for k in range(len(orders)) for i in run]
        judgements: dict[int, list[Judgement | None]] = {i: [None] * len(orders) for i in range(len(items))}
        bar = tqdm(total=len(items), desc="judging", unit="pair", disable=not progress)
        window = max(1, getattr(self.judge, "max_concurrency", DEFAULT_WINDOW))
        pending = iter(enumerate(calls))  # shared by the workers: each call is taken once
        taken = -1  # the position in `calls` of the last call a worker took
        advanced = asyncio.Event()
        prepare = getattr(self.judge, "prepare", None)  # an LLM judge's CPU work before a call (a rule judge has none)

        def screen_item(i: int) -> Screened:
            if i not in screened:
                screened[i] = self._screened(items[i])
            return screened[i]

        async def prefetch() -> None:
            for n, (i, k) in enumerate(calls):
                while n > taken + window:  # one wave ahead is enough
                    advanced.clear()
                    await advanced.wait()
                if n > taken and screen_item(i)[1] is None and prepare is not None:
                    await prepare(*self._call_args(items[i], orders[k]))
                await asyncio.sleep(0)  # let replies in between

        async def worker() -> None:
            nonlocal taken
            for n, (i, k) in pending:
                taken = n
                advanced.set()
                found, decided = screen_item(i)
                if decided is not None:  # the screen decided it: no call
                    if results[i] is None:
                        results[i] = decided
                        bar.update(1)
                    continue
                judgements[i][k] = await self._judge(items[i], orders[k])
                if all(j is not None for j in judgements[i]):
                    results[i] = self._combine(judgements[i], found)  # type: ignore[arg-type]
                    bar.update(1)

        ahead = asyncio.ensure_future(prefetch()) if self._preparer is None and len(calls) > window else None
        try:
            # one TaskGroup: a judge turns a failed call into an unknown verdict, so what escapes a worker is a
            # crash, and the other workers are cancelled rather than left calling the judge
            await gather_all(worker() for _ in range(min(window, len(calls))))
        finally:
            bar.close()
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)  # a worker redoes whatever it failed at
        for r in results:
            self.stats.add(r)  # type: ignore[arg-type]
        return results  # type: ignore[return-value]  # every slot is filled once the workers return

    def score_batch_sync(self, items: Sequence[PairItem], progress: bool = False) -> list[PairReward]:
        return run_sync(self.score_batch(items, progress=progress))

    def close(self) -> None:
        run_sync(self.judge.aclose())
        if self._preparer is not None:
            self._preparer.close()


POLICY_POSITION: dict[Order, Verdict] = {"reference_first": Verdict.B, "policy_first": Verdict.A}


def order_outcome(j: Judgement, order: Order) -> Outcome | None:
    """The policy's hard outcome in one judged order (None: no verdict)."""
    if j.verdict is Verdict.UNKNOWN:
        return None
    if j.verdict is POLICY_POSITION[order]:
        return "win"
    return "tie" if j.verdict is Verdict.TIE else "loss"


def _runs(items: Sequence[PairItem]) -> list[list[int]]:
    """The items' indices in runs of consecutive items with the same question, reference and criteria."""
    runs: list[tuple[tuple[str, str, str | None], list[int]]] = []
    for i, item in enumerate(items):
        key = (item.question, item.reference, item.criteria)
        if runs and runs[-1][0] == key:
            runs[-1][1].append(i)
        else:
            runs.append((key, [i]))
    return [members for _, members in runs]


def _averaged_outcome(judgements: Sequence[Judgement], orders: Sequence[Order]) -> Outcome | None:
    """Soft verdicts in both orders: the outcome with the highest position-averaged probability.

    Each order alone may be dominated by the judge's position bias; averaging P(policy better),
    P(tie) and P(reference better) over the two orders cancels it, so a policy answer can be
    called a win even by a judge that always leans towards position A.
    """
    if any(j.probs is None for j in judgements):
        return None
    win = tie = loss = 0.0
    for j, order in zip(judgements, orders):
        p: VerdictProbs = j.probs  # type: ignore[assignment]
        policy, reference = (p.b, p.a) if order == "reference_first" else (p.a, p.b)
        win, tie, loss = win + policy, tie + p.tie, loss + reference
    if win > loss and win >= tie:
        return "win"
    if loss > win and loss >= tie:
        return "loss"
    return "tie"  # the most likely, or win and loss equally likely  # type: ignore[return-value]
