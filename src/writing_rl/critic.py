"""Pointwise critic: WritingBench's per-criterion scores (integer 1-10) for any response.

By default it follows the official WritingBench scorer exactly (`writing_rl.writingbench`: prompt,
sampling, acceptance rule, rounds of tries). A sample without criteria gets a generic rubric. Options on
top, each documented where it is defined: `parsing: lenient` (read a score out of prose), `mode: soft` (the
expected score from log-probabilities, for tiny critics), `parse_retries` (a plain number of re-asks) and
the cache. One deliberate difference: where the official script stops with an error (a criterion still
unreadable, or a reply it cannot inspect), the criterion is *missing*; never a zero. `score_criterion` is the boundary where any unexpected exception of one criterion's calls
becomes a missing score with reason `internal` (its traceback logged at debug level), never a crash.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import writingbench
from .aio import gather_all
from .data import Criterion
from .endpoint import EndpointConfig, EndpointError, OpenAICompatClient
from .judge.cache import JudgeCache, cache_key
from .judge.chat_template import ChatTemplate
from .judge.sanitize import sanitize
from .reasons import Reason, unexpected_failure

GENERIC_RUBRIC = [
    Criterion.model_validate(
        {
            "name": "Overall writing quality",
            "criteria_description": "How well the response fulfils the request: relevance, accuracy, depth, "
            "structure, clarity and style, with no needless repetition.",
            "1-2": "Ignores the request, or is incoherent or heavily repetitive.",
            "3-4": "Addresses the request only partly; thin, disorganised or error-prone.",
            "5-6": "Adequate: fulfils the request with noticeable gaps in depth, structure or style.",
            "7-8": "Good: complete, well organised and clear, with minor weaknesses.",
            "9-10": "Excellent: complete, insightful, vivid and polished; hard to improve.",
        }
    )
]

logger = logging.getLogger(__name__)

SYSTEM = writingbench.SYSTEM
# soft mode leads the critic to where its reply, in the format the prompt asks for, holds the score
SOFT_PREFILL = '```json\n{\n    "score": '


class CriticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)
    mode: Literal["json", "soft"] = Field(
        "json", description="json: the critic's written reply (official); soft: expected score from logprobs"
    )
    parsing: Literal["official", "lenient"] = Field(
        "official",
        description="json mode: official accepts only a bare JSON reply; lenient also reads a score out of prose",
    )
    chat_template: str = Field("chatml", description="soft mode: the critic's chat template (as for the judge)")
    temperature: float = Field(writingbench.OFFICIAL_SAMPLING["temperature"], ge=0)
    top_p: float = Field(writingbench.OFFICIAL_SAMPLING["top_p"], gt=0, le=1)
    max_tokens: int = Field(writingbench.OFFICIAL_SAMPLING["max_tokens"], ge=1)
    parse_retries: int | None = Field(
        None,
        ge=0,
        description="None: the official tries (json mode: rounds of 5, another round only where the official "
        "script goes on, at most 3; soft mode: one); N: N re-asks after an unreadable reply, nothing else",
    )
    cache_path: str | None = None

    def describe(self) -> dict[str, Any]:
        """What decides the scores, recorded with every result (never the URL or the key)."""
        return {
            "scorer": writingbench.SCORER_VERSION,
            "model": self.endpoint.model,
            **self.model_dump(include={"mode", "parsing", "temperature", "top_p", "max_tokens", "parse_retries"}),
            **({"chat_template": self.chat_template} if self.mode == "soft" else {}),
        }


def score_distribution(
    first: dict[str, float], continuations: dict[str, dict[str, float]] | None = None
) -> dict[int, float]:
    """Unnormalised P(score) for 1..10 from the top log-probabilities of the first score token.

    A token carries a number when it starts with digits (after spaces): "7", " 7", "7," and a whole
    "10" token stand for themselves. A bare "1" may go on to "10" (tokenizers that split digits, e.g.
    Llama-2, Qwen, SmolLM2): `continuations[token]`, the top log-probabilities of the token after it,
    shares its mass between 10 (next starts with "0", then no digit) and 1 (next starts with a
    non-digit); a next digit makes no valid score and is dropped. A bare "1" with no continuation
    counts as 1.
    """
    mass: dict[int, float] = defaultdict(float)
    for token, lp in first.items():
        digits = re.match(r"[0-9]*", token.lstrip()).group(0)  # type: ignore[union-attr]
        value = digits.lstrip("0")  # at most two digits left, or int() of a long run would fail (or take long)
        if not digits or len(value) > 2 or not math.isfinite(lp) or not 1 <= int(value or 0) <= 10:
            continue
        p = math.exp(lp)
        after = (continuations or {}).get(token) if token.lstrip() == "1" else None
        if after is None:
            mass[int(value)] += p
            continue
        probs = {t: math.exp(q) for t, q in after.items() if math.isfinite(q)}
        seen = sum(probs.values())
        if seen > 0:
            mass[10] += p * sum(q for t, q in probs.items() if re.match(r"0(?![0-9])", t)) / seen
            mass[1] += p * sum(q for t, q in probs.items() if not t[:1].isdigit()) / seen
    return dict(mass)


def expected_score(distribution: dict[int, float]) -> float | None:
    """E[score] over the valid scores; None when they hold (almost) no probability."""
    total = sum(distribution.values())
    if total < 1e-3:
        return None
    return sum(k * p for k, p in distribution.items()) / total


@dataclass(frozen=True)
class CriterionScore:
    """One criterion's score (1-10), or None with `missing_reason`, the code of why (never a zero). `reason`:
    the critic's own reason for its score, or what went wrong."""

    score: float | None
    reason: str
    missing_reason: Reason | None = None

    @property
    def missing_code(self) -> str | None:
        """`missing_reason` as written to files."""
        return None if self.missing_reason is None else self.missing_reason.value


@dataclass(frozen=True)
class ScoreResult:
    """Mean over the criteria that were scored; None when none was."""

    score: float | None
    criteria: tuple[CriterionScore, ...]

    @property
    def per_criterion(self) -> list[float | None]:
        return [c.score for c in self.criteria]


@dataclass
class CriticStats:
    scored: int = 0
    missing: int = 0
    cache_hits: int = 0


class PointwiseCritic:
    def __init__(self, config: CriticConfig, client: OpenAICompatClient | None = None):
        self.config = config
        self.client = client or OpenAICompatClient(config.endpoint)
        self.cache = JudgeCache(config.cache_path) if config.cache_path else None
        self.stats = CriticStats()
        self._template: ChatTemplate | None = None

    def messages(self, question: str, response: str, criterion: Criterion) -> list[dict[str, str]]:
        """The official prompt. The reasoning block is cut first: sanitising rewrites its `</think>` marker."""
        answer = sanitize(writingbench.strip_thinking(response))
        user = writingbench.user_prompt(question, answer, criterion.model_dump())
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    def _plan(self) -> tuple[int, int, bool]:
        """(rounds, tries per round, whether the official script's stop rules apply)."""
        c = self.config
        if c.parse_retries is not None:
            return 1, c.parse_retries + 1, False
        if c.mode == "soft":  # read from log-probabilities at temperature 0: asking again gives the same
            return 1, 1, False
        return writingbench.ROUNDS, writingbench.TRIES_PER_ROUND, True

    async def score_criterion(self, question: str, response: str, criterion: Criterion) -> CriterionScore:
        """Never raises for this criterion's failure (cancellation, KeyboardInterrupt, SystemExit and MemoryError
        pass): what went wrong is a missing score with its reason."""
        try:
            return await self._score_criterion(question, response, criterion)
        except MemoryError:
            raise
        except Exception as err:  # the boundary: this score is missing, the others are kept
            return CriterionScore(None, unexpected_failure(err, logger, "the critic call"), Reason.INTERNAL)

    async def _score_criterion(self, question: str, response: str, criterion: Criterion) -> CriterionScore:
        messages = self.messages(question, response, criterion)
        unread = Reason.NO_VERDICT_MASS if self.config.mode == "soft" else Reason.PARSE
        rounds, per_round, official = self._plan()
        attempt, reply = 0, None
        try:
            for _ in range(rounds):
                for _ in range(per_round):
                    score, reply = await self._try(messages, attempt)
                    attempt += 1
                    if score is not None:
                        return CriterionScore(score, reply)
                    if official and writingbench.official_check(reply) == "stop":
                        return CriterionScore(
                            None, "a reply the official script stops on (it cannot inspect it)", unread
                        )
                if official and not writingbench.round_goes_on(reply):
                    return CriterionScore(
                        None, "no readable score in a round of tries (the official script stops here)", unread
                    )
        except EndpointError as err:
            return CriterionScore(None, f"critic call failed: {err}", err.reason)
        return CriterionScore(None, "no readable score", unread)

    async def _try(self, messages: list[dict[str, str]], attempt: int) -> tuple[float | None, str]:
        """One try (score or None, the critic's reply), through the cache: its key holds the try's number."""
        c = self.config
        key = cache_key(
            kind="pointwise",
            messages=messages,
            attempt=attempt,
            **{k: v for k, v in c.describe().items() if k != "parse_retries"},
        )
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.stats.cache_hits += 1
            return hit["score"], hit["reason"]
        score, reply = await (self._soft(messages) if c.mode == "soft" else self._json(messages, attempt))
        if score is not None and self.cache is not None:
            self.cache.put(key, {"score": score, "reason": reply})
        return score, reply

    async def _json(self, messages: list[dict[str, str]], attempt: int) -> tuple[float | None, str]:
        c = self.config
        # a retry samples again (at least at 0.7), so it can differ from the unreadable first answer
        temperature = c.temperature if attempt == 0 else max(c.temperature, 0.7)
        res = await self.client.chat(messages, temperature=temperature, top_p=c.top_p, max_tokens=c.max_tokens)
        parse = writingbench.parse_score if c.parsing == "official" else writingbench.parse_score_lenient
        return parse(res.text), res.text

    async def _top_after(self, prompt: str) -> dict[str, float]:
        res = await self.client.complete(prompt, temperature=0.0, max_tokens=1, top_logprobs=20)
        return res.token_logprobs[0][1] if res.token_logprobs else {}

    async def _soft(self, messages: list[dict[str, str]]) -> tuple[float | None, str]:
        if self._template is None:
            self._template = ChatTemplate.resolve(self.config.chat_template)
        prompt = self._template.render(messages) + SOFT_PREFILL
        first = await self._top_after(prompt)
        ones = [t for t in first if t.lstrip() == "1"]  # may go on to "10": ask what follows each
        after = await gather_all(self._top_after(prompt + t) for t in ones)
        distribution = score_distribution(first, dict(zip(ones, after)))
        shown = ", ".join(f"{k}: {v:.3f}" for k, v in sorted(distribution.items()))
        return expected_score(distribution), f"soft score from P(score) = {{{shown}}}"

    async def score(self, question: str, response: str, criteria: list[Criterion] | None) -> ScoreResult:
        rubric = criteria or GENERIC_RUBRIC
        results = tuple(await gather_all(self.score_criterion(question, response, c) for c in rubric))
        known = [r.score for r in results if r.score is not None]
        self.stats.scored += 1
        self.stats.missing += len(results) - len(known)
        return ScoreResult(sum(known) / len(known) if known else None, results)

    async def aclose(self) -> None:
        await self.client.aclose()


def criteria_list(criteria: object) -> list[Criterion] | None:
    """Per-criterion scoring needs structured criteria; plain-text criteria become one criterion each."""
    if criteria is None:
        return None
    if isinstance(criteria, str):
        return [Criterion(name="Request-specific criteria", criteria_description=criteria)]
    out = []
    for c in criteria:  # type: ignore[attr-defined]
        if isinstance(c, dict):  # read back from a pool or sample file
            c = Criterion.model_validate(c)
        out.append(c if isinstance(c, Criterion) else Criterion(name="Criterion", criteria_description=str(c)))
    return out
