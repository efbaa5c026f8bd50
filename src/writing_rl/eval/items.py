"""One item of an eval task as `judgements.jsonl` holds it: a typed row per task, with one reason field.

Every row names its task and item and, when the item has no score, why: `missing_reason`, a code of
`writing_rl.reasons` (None when scored). The task's `missing_reasons` in results.json counts the codes of what
went unscored: an item's code, except for WritingBench, whose row keeps its first unscored criterion's code while
results count every unscored criterion's.
The rows were dicts whose reason field differed by task (a list of codes, one code, or none).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from ..critic import CriterionScore
from ..judge.screen import Injection


@dataclass(frozen=True, kw_only=True)
class ItemResult:
    task: ClassVar[str]
    id: Any
    missing_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, **asdict(self)}


@dataclass(frozen=True, kw_only=True)
class WritingBenchItem(ItemResult):
    """`score`: the mean criterion score x 10, only with every criterion scored; `criteria`: None without output."""

    task: ClassVar[str] = "writingbench"
    score: float | None
    criteria: tuple[CriterionScore, ...] | None


@dataclass(frozen=True, kw_only=True)
class LongWriteItem(ItemResult):
    """The length score `S_l` (None without output) and the quality score `S_q` from the judge's `dimensions`."""

    task: ClassVar[str] = "longbench_write"
    required: int | str
    length: int | None
    S_l: float | None  # the paper's names
    S_q: float | None
    dimensions: dict[str, float] | None


@dataclass(frozen=True, kw_only=True)
class LongInputItem(ItemResult):
    """The choice read from the reply and its credit (None for an empty or failed reply)."""

    task: ClassVar[str] = "longbench_v2"
    choice: str | None
    answer: str
    credit: float | None


@dataclass(frozen=True, kw_only=True)
class CreativeWritingItem(ItemResult):
    task: ClassVar[str] = "creative_writing_v3"
    prompt_id: str
    iteration: int
    seed_modifier: str
    chars: int | None
    score: float | None  # 0-100
    score_0_20: float | None
    scores: dict[str, float] | None
    judge_reply: str | None


@dataclass(frozen=True)
class ArenaInjections:
    """What the injection screen found in each answer of an arena pair (None: nothing)."""

    model: Injection | None
    opponent: Injection | None


@dataclass(frozen=True, kw_only=True)
class ArenaItem(ItemResult):
    """One comparison with one opponent: the verdict in each order (`first`: the model's answer in position A,
    `second`: in position B; None where that order was not judged) and the score (None: missing, with its reason)."""

    task: ClassVar[str] = "arena"
    opponent: str
    first: str | None
    second: str | None
    score: float | None
    injection: ArenaInjections
