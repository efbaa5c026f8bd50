"""Pointwise critic: WritingBench-style per-criterion scores (integer 1-10) for any response.

Each criterion is scored on its own, with its score-band descriptions, and the critic answers
`{"score": int, "reason": str}`. A sample without criteria gets a generic writing rubric. Parsing
reads the last JSON object with an integer `score` in 1..10 (or, failing that, a `"score": N`
pattern); anything else is retried and then *missing*: never a zero. `mode: soft` reads the
expected score from the log-probabilities of the score digit instead (for tiny critics).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .data import Criterion
from .judge.cache import JudgeCache, cache_key
from .judge.chat_template import ChatTemplate
from .judge.client import EndpointConfig, EndpointError, OpenAICompatClient
from .judge.reasons import Reason
from .judge.sanitize import sanitize

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

SYSTEM = "You are a strict, fair critic of writing. You score one response against one criterion."

USER = """Score the response below on ONE criterion, as an integer from 1 to 10.

[Writing request]
{question}

[Response]
{response}

[Criterion]
{criterion}

[Score bands]
{bands}

Reply with JSON only: {{"score": <integer 1-10>, "reason": "<one or two sentences>"}}"""

_SCORE_PATTERN = re.compile(r'"score"\s*:\s*"?(\d{1,2})(?![\d.])')


class CriticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)
    mode: Literal["json", "soft"] = Field(
        "json", description="json: parse the critic's JSON; soft: expected score from logprobs"
    )
    chat_template: str = Field("chatml", description="soft mode: the critic's chat template (as for the judge)")
    temperature: float = Field(0.1, ge=0)
    max_tokens: int = Field(512, ge=1)
    parse_retries: int = Field(1, ge=0, description="re-asks after an unreadable score")
    cache_path: str | None = None


def parse_score(text: str | None) -> int | None:
    """The critic's score, 1..10, or None. The last JSON object with a score wins."""
    if not text:
        return None
    for match in reversed(list(re.finditer(r"\{[^{}]*\}", text, re.DOTALL))):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        score = obj.get("score") if isinstance(obj, dict) else None
        if isinstance(score, str) and score.strip().isdigit():
            score = int(score.strip())
        if isinstance(score, (int, float)) and not isinstance(score, bool) and float(score).is_integer():
            return int(score) if 1 <= score <= 10 else None
    found = _SCORE_PATTERN.findall(text)
    if found and 1 <= int(found[-1]) <= 10:
        return int(found[-1])
    return None


def expected_score(top_logprobs: dict[str, float]) -> float | None:
    """E[score] over the digit tokens 1-9 (and a whole '10' token where the tokenizer has one)."""
    mass: dict[int, float] = {}
    for token, lp in top_logprobs.items():
        t = token.strip()
        if t.isdigit() and 1 <= int(t) <= 10 and math.isfinite(lp):
            mass[int(t)] = mass.get(int(t), 0.0) + math.exp(lp)
    total = sum(mass.values())
    if total < 1e-3:
        return None
    return sum(k * p for k, p in mass.items()) / total


@dataclass
class ScoreResult:
    """Mean over the criteria that were scored; None when none was."""

    score: float | None
    per_criterion: list[float | None]
    reasons: list[str] = field(default_factory=list)
    missing_reasons: list[str | None] = field(default_factory=list)  # a code per criterion left unscored

    @property
    def missing(self) -> int:
        return sum(1 for s in self.per_criterion if s is None)


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
        bands = "\n".join(f"{k}: {v}" for k, v in criterion.bands.items()) or "1 = very poor ... 10 = excellent"
        user = USER.format(question=question, response=sanitize(response), criterion=criterion.as_text(), bands=bands)
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    async def score_criterion(
        self, question: str, response: str, criterion: Criterion
    ) -> tuple[float | None, str, Reason | None]:
        """(score, the critic's reason or why there is none, a reason code when the score is missing)."""
        messages = self.messages(question, response, criterion)
        c = self.config
        for attempt in range(c.parse_retries + 1):
            key = cache_key(
                kind="pointwise",
                model=c.endpoint.model,
                messages=messages,
                mode=c.mode,
                temperature=c.temperature,
                max_tokens=c.max_tokens,
                attempt=attempt,
            )
            if self.cache is not None and (hit := self.cache.get(key)) is not None:
                self.stats.cache_hits += 1
                return hit["score"], hit["reason"], None
            try:
                score, reason = await (self._soft(messages) if c.mode == "soft" else self._json(messages, attempt))
            except EndpointError as err:
                return None, f"critic call failed: {err}", err.reason
            if score is not None:
                if self.cache is not None:
                    self.cache.put(key, {"score": score, "reason": reason})
                return score, reason, None
        return None, "no readable score", Reason.NO_VERDICT_MASS if c.mode == "soft" else Reason.PARSE

    async def _json(self, messages: list[dict[str, str]], attempt: int) -> tuple[float | None, str]:
        # a retry samples again (a higher temperature), so it can differ from the unreadable first answer
        temperature = self.config.temperature if attempt == 0 else max(self.config.temperature, 0.7)
        res = await self.client.chat(messages, temperature=temperature, max_tokens=self.config.max_tokens)
        score = parse_score(res.text)
        return (float(score) if score is not None else None), res.text

    async def _soft(self, messages: list[dict[str, str]]) -> tuple[float | None, str]:
        if self._template is None:
            self._template = ChatTemplate.resolve(self.config.chat_template)
        prompt = self._template.render(messages) + '{"score": '
        res = await self.client.complete(prompt, temperature=0.0, max_tokens=1, top_logprobs=20)
        top = res.token_logprobs[0][1] if res.token_logprobs else {}
        return expected_score(top), "soft score from the score token's probabilities"

    async def score(self, question: str, response: str, criteria: list[Criterion] | None) -> ScoreResult:
        rubric = criteria or GENERIC_RUBRIC
        results = await asyncio.gather(*(self.score_criterion(question, response, c) for c in rubric))
        scores = [s for s, _, _ in results]
        known = [s for s in scores if s is not None]
        self.stats.scored += 1
        self.stats.missing += len(scores) - len(known)
        mean = sum(known) / len(known) if known else None
        codes = [None if code is None else code.value for _, _, code in results]
        return ScoreResult(mean, scores, [r for _, r, _ in results], codes)

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
