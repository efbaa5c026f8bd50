"""Pairwise judge: template + endpoint + cache -> one verdict per (question, answer A, answer B).

Two verdict modes:
- `hard`: the judge writes (optionally explains and) a final `[[A]]`/`[[B]]`/`[[C]]`, parsed by
  `parse_verdict`.
- `soft`: P(A), P(B), P(tie) read from the verdict token's log-probabilities. Through
  `/v1/completions` (default) the judge is led to the verdict position with its own chat template and
  `[[`; through `/v1/chat/completions` the first generated verdict position is read instead. This makes
  a tiny judge usable and lowers reward variance with a strong one.

A failed call or unreadable verdict is a `Judgement` with `Verdict.UNKNOWN`, never an exception and
never a loss.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .cache import JudgeCache, cache_key
from .chat_template import ChatTemplate
from .client import EndpointConfig, EndpointError, OpenAICompatClient
from .judgement import Judgement, JudgeStats
from .rules import RuleJudgeConfig
from .templates import PairwiseTemplate
from .verdict import Verdict, VerdictProbs, _letter_of, parse_verdict, probs_from_top_logprobs

if TYPE_CHECKING:
    from ..data import Sample


class JudgeConfig(BaseModel):
    """Everything about the pairwise judge; every field that changes an answer is in the cache key."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["llm", "rule"] = Field(
        "llm", description="llm: a model behind `endpoint`; rule: a known-truth rule judge (`rule`), for sanity checks"
    )
    rule: RuleJudgeConfig | None = Field(None, description="backend rule: which rule, its tie tolerance and noise")
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)
    mode: Literal["hard", "soft"] = "hard"
    soft_via: Literal["completions", "chat"] = Field(
        "completions", description="soft mode: prefill the verdict position via /completions, or read it from /chat"
    )
    chat_template: str = Field(
        "chatml", description="soft via completions: 'chatml', a .gguf file, a tokenizer folder, or Jinja text"
    )
    reason_first: bool = Field(False, description="soft mode: let the judge explain before the verdict is read")
    temperature: float = Field(0.1, ge=0)
    max_tokens: int = Field(1024, ge=1, description="judge explanation budget (hard mode, or reason_first)")
    top_logprobs: int = Field(20, ge=1, le=20)
    min_verdict_mass: float = Field(1e-3, ge=0, le=1, description="soft: below this P(A)+P(B)+P(C) is unknown")
    cache_path: str | None = Field(None, description="SQLite file for cached judgements; None disables the cache")

    @field_validator("rule", mode="before")
    @classmethod
    def _rule_by_name(cls, value: object) -> object:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _backend_matches_rule(self) -> JudgeConfig:
        if self.backend == "rule" and self.rule is None:
            raise ValueError("backend 'rule' needs `rule` (e.g. rule: length_fit)")
        if self.backend == "llm" and self.rule is not None:
            raise ValueError("`rule` is set but backend is 'llm': set backend: rule to use the rule judge")
        return self


def probs_at_verdict_position(
    token_logprobs: Sequence[tuple[str, dict[str, float]]], already: str = "", min_mass: float = 1e-3
) -> VerdictProbs | None:
    """Read P(A), P(B), P(tie) at the last generated position that holds a verdict letter after `[[`.

    The last one, because a judge that explains first may quote the verdict rule ("[[A]] if ...")
    before giving its own. `already` is text that precedes the generated tokens (a prefilled `[[`).
    Token variants of one letter (" A", "A", "A]]") are added up, not overwritten.
    """
    text, found = already, None
    for token, top in token_logprobs:
        need = "" if text.endswith("[[") else "[" if text.endswith("[") else "[["
        stripped = token.lstrip()
        if stripped.startswith(need) and _letter_of(stripped[len(need) :]) is not None:
            found = [(t.lstrip()[len(need) :], lp) for t, lp in top.items() if t.lstrip().startswith(need)]
        text += token
    return None if found is None else probs_from_top_logprobs(found, min_mass=min_mass)


class PairwiseJudge:
    def __init__(
        self,
        config: JudgeConfig,
        template: PairwiseTemplate | None = None,
        client: OpenAICompatClient | None = None,
    ):
        self.config = config
        self.template = template or PairwiseTemplate()
        self.client = client or OpenAICompatClient(config.endpoint)
        self.cache = JudgeCache(config.cache_path) if config.cache_path else None
        self.stats = JudgeStats()
        self._chat_template: ChatTemplate | None = None

    @property
    def chat_template(self) -> ChatTemplate:
        if self._chat_template is None:
            self._chat_template = ChatTemplate.resolve(self.config.chat_template)
        return self._chat_template

    def _key(self, messages: list[dict[str, str]]) -> str:
        c = self.config
        return cache_key(
            model=c.endpoint.model,
            extra_body=c.endpoint.extra_body,
            template=self.template.fingerprint,
            messages=messages,
            mode=c.mode,
            soft_via=c.soft_via if c.mode == "soft" else None,
            chat_template=self.chat_template.source if c.mode == "soft" and c.soft_via == "completions" else None,
            reason_first=c.reason_first if c.mode == "soft" else None,
            temperature=c.temperature,
            max_tokens=c.max_tokens,
            top_logprobs=c.top_logprobs if c.mode == "soft" else None,
            min_verdict_mass=c.min_verdict_mass if c.mode == "soft" else None,
        )

    async def judge(
        self, question: str, answer_a: str, answer_b: str, criteria: str | None = None, sample: Sample | None = None
    ) -> Judgement:
        """Judge one pair; A and B are positions, the caller decides which is the policy.

        `sample` is accepted for the `Judge` interface (rule judges read its target); an LLM judge
        sees only the question, the answers and the criteria."""
        style = "direct" if self.config.mode == "soft" and not self.config.reason_first else "explain"
        messages, nonce = self.template.render(question, answer_a, answer_b, criteria=criteria, style=style)
        key = self._key(messages)
        started = time.perf_counter()
        result = None
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                result = Judgement.from_json(hit)
                self.stats.cache_hits += 1
        if result is None:
            try:
                result = await (self._hard(messages, nonce) if self.config.mode == "hard" else self._soft(messages))
            except EndpointError as err:
                self.stats.failed_calls += 1
                result = Judgement(Verdict.UNKNOWN, error=str(err))
            if self.cache is not None and result.error is None and result.verdict is not Verdict.UNKNOWN:
                self.cache.put(key, result.to_json())
        self.stats.count(result, time.perf_counter() - started)
        return result

    async def _hard(self, messages: list[dict[str, str]], nonce: str) -> Judgement:
        res = await self.client.chat(messages, temperature=self.config.temperature, max_tokens=self.config.max_tokens)
        verdict = parse_verdict(res.text, nonce=nonce)
        error = None if verdict is not Verdict.UNKNOWN else "no verdict on the judge's last line"
        return Judgement(verdict, text=res.text, error=error)

    async def _soft(self, messages: list[dict[str, str]]) -> Judgement:
        c = self.config
        k = c.top_logprobs
        if c.soft_via == "chat":
            budget = c.max_tokens if c.reason_first else 8
            res = await self.client.chat(messages, temperature=c.temperature, max_tokens=budget, top_logprobs=k)
            probs = probs_at_verdict_position(res.token_logprobs, min_mass=c.min_verdict_mass)
            text = res.text
        else:
            prefix = self.chat_template.render(messages)
            text = ""
            if c.reason_first:
                reasoning = await self.client.complete(
                    prefix, temperature=c.temperature, max_tokens=c.max_tokens, stop=["[["]
                )
                text = reasoning.text.rstrip() + "\n"
            res = await self.client.complete(prefix + text + "[[", temperature=0.0, max_tokens=1, top_logprobs=k)
            probs = probs_at_verdict_position(res.token_logprobs, already="[[", min_mass=c.min_verdict_mass)
            text += "[[" + res.text
        if probs is None:
            return Judgement(Verdict.UNKNOWN, text=text, error="no verdict probability at the verdict position")
        return Judgement(probs.argmax, probs=probs, text=text)

    async def judge_many(self, items: Sequence[tuple[str, str, str, str | None]]) -> list[Judgement]:
        """Judge (question, answer A, answer B, criteria) tuples concurrently, in order."""
        return list(await asyncio.gather(*(self.judge(*item) for item in items)))

    def call_stats(self) -> dict[str, float]:
        s = self.client.stats
        return {"calls": s.requests, "retries": s.retries, "latency_s": s.latency_s}

    async def aclose(self) -> None:
        await self.client.aclose()
