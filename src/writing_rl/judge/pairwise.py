"""Pairwise judge: template + endpoint + cache -> one verdict per (question, answer A, answer B).

Two verdict modes:
- `hard`: the judge writes (optionally explains and) a final `[[A]]`/`[[B]]`/`[[C]]`, parsed by
  `parse_verdict`.
- `soft`: P(A), P(B), P(tie) read from the verdict token's log-probabilities. Through
  `/v1/completions` (default) the judge is led to the verdict position with its own chat template and
  `[[`; through `/v1/chat/completions` the first generated verdict position is read instead. This makes
  a tiny judge usable and lowers reward variance with a strong one.

A failed call or unreadable verdict is a `Judgement` with `Verdict.UNKNOWN`, never an exception and
never a loss: `judge` is the boundary where any unexpected exception of one call becomes an unknown
verdict with reason `internal` (its traceback logged at debug level), so one call never ends a batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..aio import gather_all
from ..endpoint import EndpointConfig, EndpointError, OpenAICompatClient
from ..reasons import Reason, unexpected_failure, window_from_message
from .budget import JudgeBudget, JudgePrice
from .cache import JudgeCache, cache_key
from .chat_template import ChatTemplate
from .context import TokenCounter, fit_pair, load_counter
from .judgement import Judgement, JudgeStats
from .rules import RuleJudgeConfig
from .sanitize import sanitize
from .templates import PairwiseTemplate, VerdictStyle
from .verdict import Verdict, VerdictProbs, parse_verdict, probs_from_top_logprobs

if TYPE_CHECKING:
    from ..data import Sample

logger = logging.getLogger(__name__)


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
    context_window: int | None = Field(
        None,
        ge=256,
        description="the judge's context length in tokens; None: ask the server, or learn it from its error",
    )
    tokenizer: str | None = Field(
        None,
        description="count tokens with this tokenizer (.gguf file, tokenizer folder or hub name); None: the chat "
        "template's when it is one, else a high estimate",
    )
    overflow: Literal["truncate", "unknown"] = Field(
        "truncate",
        description="answers too long for the context: cut each in the middle with a visible marker, or leave the "
        "verdict unknown (reason context_overflow)",
    )
    prompt_overhead_tokens: int = Field(32, ge=0, description="tokens the server's chat template adds to the prompt")
    cache_path: str | None = Field(None, description="SQLite file for cached judgements; None disables the cache")
    price: JudgePrice | None = Field(
        None, description="the judge API's prices per million tokens: cost estimates and money budgets (not cached on)"
    )
    budget: JudgeBudget = Field(
        default_factory=JudgeBudget, description="what a training run may spend on the judge (not cached on)"
    )

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
        if self.budget.money is not None and self.price is None:
            raise ValueError(
                "budget.money needs `price` (input_per_million, output_per_million) to turn tokens into money"
            )
        return self


def _after(top: dict[str, float], prefix: str) -> list[tuple[str, float]]:
    return [(t.lstrip()[len(prefix) :], lp) for t, lp in top.items() if t.lstrip().startswith(prefix)]


def verdict_position_top(
    token_logprobs: Sequence[tuple[str, dict[str, float]]], already: str = ""
) -> list[tuple[str, float]] | None:
    """The top alternatives at the last verdict position: right after `[[` (or inside a merged `[[A`
    token), whatever the greedy token there is; None when the judge never opened a verdict.

    The last one, because a judge that explains first may quote the verdict rule ("[[A]] if ...")
    before giving its own. `already` is text that precedes the generated tokens (a prefilled `[[`).
    The greedy token does not matter: a judge whose likeliest next token is "The" may still give
    A, B and tie most of the rest of its probability; `min_verdict_mass` decides if that is enough.
    """
    tail, found = already[-2:], None  # the text so far matters only by its last two characters
    for token, top in token_logprobs:
        stripped = token.lstrip()
        if tail.endswith("[["):
            found = list(top.items())
        elif tail.endswith("[") and stripped.startswith("["):
            found = _after(top, "[")
        elif stripped.startswith("[[") and stripped != "[[":
            found = _after(top, "[[")
        tail = (tail + token)[-2:]
    return found


def probs_at_verdict_position(
    token_logprobs: Sequence[tuple[str, dict[str, float]]], already: str = "", min_mass: float = 1e-3
) -> VerdictProbs | None:
    """P(A), P(B), P(tie) at the last verdict position (`verdict_position_top`); token variants of
    one letter (" A", "A", "A]]") are added up. None when there is no such position or too little mass."""
    top = verdict_position_top(token_logprobs, already)
    return None if top is None else probs_from_top_logprobs(top, min_mass=min_mass)


# A prompt fitted to the judge's context window: (messages, fence id, truncated lengths), or the unknown
# verdict that says it does not fit.
Fitted = tuple[list[dict[str, str]], str, tuple[int, int] | None] | Judgement
PREPARED_MAX = 4096


class PairwiseJudge:
    def __init__(
        self,
        config: JudgeConfig,
        template: PairwiseTemplate | None = None,
        client: OpenAICompatClient | None = None,
        cache: JudgeCache | None = None,
    ):
        self.config = config
        self.template = template or PairwiseTemplate()
        self.client = client or OpenAICompatClient(config.endpoint)
        if cache is None and config.cache_path:
            cache = JudgeCache(config.cache_path)
        self.cache = cache
        self.stats = JudgeStats()
        self._chat_template: ChatTemplate | None = None
        self._server_window: int | None = None  # from /models, or from an overflow error
        self._asked_server = False
        self._window_query: tuple[asyncio.AbstractEventLoop, asyncio.Future[int | None]] | None = None
        self._prompt_token_counts: dict[tuple[str, str | None], int] = {}
        self._prepared: dict[tuple[str, str, str, str | None], tuple[Fitted, str | None]] = {}  # see prepare()

    @property
    def max_concurrency(self) -> int:
        return self.config.endpoint.max_concurrency

    @property
    def chat_template(self) -> ChatTemplate:
        if self._chat_template is None:
            self._chat_template = ChatTemplate.resolve(self.config.chat_template)
        return self._chat_template

    @property
    def counter(self) -> TokenCounter:
        """The judge's tokenizer where the config names one (or its chat template is one), else the estimate."""
        return load_counter(self.config.tokenizer or self.config.chat_template)

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

    @property
    def _style(self) -> VerdictStyle:
        return "direct" if self.config.mode == "soft" and not self.config.reason_first else "explain"

    async def judge(
        self, question: str, answer_a: str, answer_b: str, criteria: str | None = None, sample: Sample | None = None
    ) -> Judgement:
        """Judge one pair; A and B are positions, the caller decides which is the policy.

        `sample` is accepted for the `Judge` interface (rule judges read its target); an LLM judge
        sees only the question, the sanitised answers and the criteria. Never raises for one call's failure
        (cancellation, KeyboardInterrupt, SystemExit and MemoryError pass)."""
        started = time.perf_counter()
        try:
            a, b = sanitize(answer_a), sanitize(answer_b)
            result = await self._judge_sanitised(question, a, b, criteria)
        except MemoryError:
            raise
        except Exception as err:  # the boundary: this call is unknown, the batch goes on
            self.stats.failed_calls += 1
            result = Judgement(
                Verdict.UNKNOWN, error=unexpected_failure(err, logger, "the judge call"), reason=Reason.INTERNAL
            )
        self.stats.count(result, time.perf_counter() - started)
        return result

    async def prepare(self, question: str, answer_a: str, answer_b: str, criteria: str | None = None) -> None:
        """Sanitise a pair, fit its prompt and render it for `/completions` ahead of its call (the reward's
        prefetcher calls this while other calls are in flight), so `judge` on the pair only sends."""
        a, b = sanitize(answer_a), sanitize(answer_b)
        key = (question, a, b, criteria)
        if key not in self._prepared:
            if len(self._prepared) >= PREPARED_MAX:  # prepared pairs that were never judged
                self._prepared.clear()
            fitted = await self._fit(question, a, b, criteria)
            completes = self.config.mode == "soft" and self.config.soft_via == "completions"
            prefix = self.chat_template.render(fitted[0]) if completes and not isinstance(fitted, Judgement) else None
            self._prepared[key] = (fitted, prefix)

    async def _judge_sanitised(self, question: str, a: str, b: str, criteria: str | None) -> Judgement:
        fitted, prefix = self._prepared.pop((question, a, b, criteria), (None, None))
        for attempt in range(2):
            if fitted is None:
                fitted, prefix = await self._fit(question, a, b, criteria), None
            if isinstance(fitted, Judgement):
                return fitted
            messages, nonce, truncated = fitted
            cache = self.cache
            key = self._key(messages) if cache is not None else ""  # hashing a prompt costs: only with a cache
            if cache is not None and (hit := cache.get(key)) is not None:
                self.stats.cache_hits += 1
                return Judgement.from_json(hit)
            try:
                result = await (
                    self._hard(messages, nonce) if self.config.mode == "hard" else self._soft(messages, prefix)
                )
            except EndpointError as err:
                if attempt == 0 and err.reason is Reason.CONTEXT_OVERFLOW and self._learn_window(str(err)):
                    fitted = None
                    continue  # the server named its window: fit the answers to it and ask once more
                self.stats.failed_calls += 1
                return Judgement(Verdict.UNKNOWN, error=str(err), reason=err.reason, truncated=truncated)
            result.truncated = truncated
            if cache is not None and result.error is None and result.verdict is not Verdict.UNKNOWN:
                cache.put(key, result.to_json())
            return result
        raise AssertionError("unreachable: the second attempt returns")

    # -- the context window ------------------------------------------------------------------
    async def context_window(self) -> int | None:
        """The config's `context_window`, else what the server reports in `/models` (asked once; concurrent
        callers share the request), else what its overflow error named; None when nobody knows."""
        if self.config.context_window:
            return self.config.context_window
        if not self._asked_server:
            loop = asyncio.get_running_loop()
            query = self._window_query
            if query is None or query[0] is not loop or query[1].cancelled():  # cancelled: with the batch that asked
                self._window_query = query = (loop, asyncio.ensure_future(self.client.context_window()))
            reported = await asyncio.shield(query[1])  # a cancelled caller leaves it to the others
            self._server_window = self._server_window or reported
            self._asked_server = True
        return self._server_window

    def _learn_window(self, message: str) -> bool:
        window = window_from_message(message)
        if window is None or window == self._server_window or self.config.context_window:
            return False
        self._server_window = window
        return True

    def prompt_tokens(self, question: str, criteria: str | None) -> int:
        """Tokens of the prompt without the answers; every completion of a group shares it, so counted once."""
        key = (question, criteria)
        if key not in self._prompt_token_counts:
            if len(self._prompt_token_counts) >= 4096:
                self._prompt_token_counts.clear()
            bare, _ = self.template.render(question, "", "", criteria=criteria, style=self._style)
            counted = sum(self.counter.count(m["content"]) for m in bare)
            self._prompt_token_counts[key] = counted + self.config.prompt_overhead_tokens
        return self._prompt_token_counts[key]

    def _generation_budget(self) -> int:
        c = self.config
        if c.mode == "soft" and not c.reason_first:
            return 8
        return c.max_tokens + 8

    async def _fit(self, question: str, a: str, b: str, criteria: str | None) -> Fitted:
        """The prompt with both answers inside the context window: as they are, cut in the middle, or an
        unknown verdict with reason `context_overflow` (`overflow: unknown`, or no room left at all)."""
        messages, nonce = self.template.render(question, a, b, criteria=criteria, style=self._style)
        window = await self.context_window()
        if window is None:
            return messages, nonce, None
        counter = self.counter
        room = window - self.prompt_tokens(question, criteria) - self._generation_budget()
        need = counter.count(a) + counter.count(b)
        if need <= room:
            return messages, nonce, None
        fitted = fit_pair(a, b, room, counter) if self.config.overflow == "truncate" else None
        if fitted is None:
            return Judgement(
                Verdict.UNKNOWN,
                error=f"the answers need {'' if counter.exact else 'about '}{need} tokens; the judge's context "
                f"window ({window}) leaves {room} after the prompt and the reply (overflow: {self.config.overflow})",
                reason=Reason.CONTEXT_OVERFLOW,
            )
        a, b, truncated = fitted
        messages, nonce = self.template.render(question, a, b, criteria=criteria, style=self._style)
        return messages, nonce, truncated

    # -- the calls ---------------------------------------------------------------------------
    async def _hard(self, messages: list[dict[str, str]], nonce: str) -> Judgement:
        res = await self.client.chat(messages, temperature=self.config.temperature, max_tokens=self.config.max_tokens)
        verdict = parse_verdict(res.text, nonce=nonce)
        if verdict is Verdict.UNKNOWN:
            return Judgement(verdict, text=res.text, error="no verdict on the judge's last line", reason=Reason.PARSE)
        return Judgement(verdict, text=res.text)

    async def _soft(self, messages: list[dict[str, str]], prefix: str | None = None) -> Judgement:
        """`prefix`: the messages rendered with the chat template, where `prepare` already did it."""
        c = self.config
        k = c.top_logprobs
        if c.soft_via == "chat":
            budget = c.max_tokens if c.reason_first else 8
            res = await self.client.chat(messages, temperature=c.temperature, max_tokens=budget, top_logprobs=k)
            top = verdict_position_top(res.token_logprobs)
            text = res.text
        else:
            prefix = self.chat_template.render(messages) if prefix is None else prefix
            text = ""
            if c.reason_first:
                reasoning = await self.client.complete(
                    prefix, temperature=c.temperature, max_tokens=c.max_tokens, stop=["[["]
                )
                text = reasoning.text.rstrip() + "\n"
            res = await self.client.complete(prefix + text + "[[", temperature=0.0, max_tokens=1, top_logprobs=k)
            top = verdict_position_top(res.token_logprobs, already="[[")
            text += "[[" + res.text
        if top is None:
            return Judgement(Verdict.UNKNOWN, text=text, error="the judge opened no verdict ([[)", reason=Reason.PARSE)
        probs = probs_from_top_logprobs(top, min_mass=c.min_verdict_mass)
        if probs is None:
            return Judgement(
                Verdict.UNKNOWN,
                text=text,
                error=f"A, B and tie hold less than min_verdict_mass={c.min_verdict_mass:g} at the verdict position",
                reason=Reason.NO_VERDICT_MASS,
            )
        return Judgement(probs.argmax, probs=probs, text=text)

    async def judge_many(self, items: Sequence[tuple[str, str, str, str | None]]) -> list[Judgement]:
        """Judge (question, answer A, answer B, criteria) tuples concurrently, in order."""
        return await gather_all(self.judge(*item) for item in items)

    def call_stats(self) -> dict[str, float]:
        return self.client.stats.call_stats()

    async def aclose(self) -> None:
        await self.client.aclose()
