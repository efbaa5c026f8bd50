"""Async client for any OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp, DashScope, OpenAI).

Bounded concurrency, per-request timeouts, retries with exponential backoff and jitter on
transport errors, timeouts, 408/409/429/5xx and malformed bodies (a 200 whose body is not the reply
asked for: `replies.py` checks every body against its shape). Other 4xx are not retried: a bad request
will not get better. The API key is read from an environment variable at call time and is
kept out of reprs, logs and configs.

The HTTP stack is pyreqwest (Rust's reqwest and hyper on a Tokio thread), chosen by measurement
(`benchmarks/http_stacks.py`, docs/performance.md): at 256 requests in flight httpx took 19x and httpx2
4.6x the judge-bound time; aiohttp spent twice pyreqwest's CPU per request, and that CPU is taken from
the event loop that also prepares the judge prompts. Request bodies are encoded with orjson; replies are
parsed and checked against their shape in one pass by pydantic-core (`replies.py`). The
connections of one endpoint are kept alive between waves; the semaphore bounds the requests in flight.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import RequestError, RequestTimeoutError
from pyreqwest.request import RequestBuilder
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from ..reasons import Reason, is_context_overflow
from . import replies
from .config import EndpointConfig
from .replies import MalformedReply, Shape, read_reply

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class EndpointError(RuntimeError):
    """A request failed for good (after retries, or with a non-retryable status); `reason` says how. An error
    status keeps its code and the reply's text (`status`, `body`), so a caller (the pre-flight check) can say
    what the server answered."""

    exit_code = 2  # a command stops: the endpoint is the thing to fix

    def __init__(self, message: str, reason: Reason = Reason.TRANSPORT, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.body = body


class RetryableError(EndpointError):
    """One failed attempt that another may fix; what gives up after the last is an `EndpointError`."""


@dataclass(frozen=True)
class ModelListing:
    """What `/models` answered: its status and, for a 200 with a `data` list, the entries (else none)."""

    status: int
    entries: list[dict[str, Any]]

    @property
    def ids(self) -> list[str]:
        return [str(e["id"]) for e in self.entries if "id" in e]

    @classmethod
    def read(cls, status: int, raw: bytes) -> ModelListing:
        """A `/models` reply as listed: a body that is not JSON, or holds no `data` list, lists nothing."""
        try:
            body = orjson.loads(raw) if status == 200 else None
        except ValueError:
            body = None
        entries = body.get("data") if isinstance(body, dict) else None
        return cls(status, [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else [])


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    no_usage: int = 0  # answers without `usage`: their tokens are unknown, not zero
    latency_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)

    def call_stats(self) -> dict[str, float]:
        """What a judge or critic over this client reports as its calls (`Judge.call_stats`)."""
        return {
            "calls": self.requests,
            "retries": self.retries,
            "latency_s": self.latency_s,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "no_usage": self.no_usage,
        }


@dataclass
class ChatResult:
    text: str
    # One entry per generated token: (token, {top token: logprob}); empty unless logprobs were asked for.
    token_logprobs: list[tuple[str, dict[str, float]]] = field(default_factory=list)


class OpenAICompatClient:
    """One client per endpoint; safe to share between coroutines of one event loop."""

    def __init__(self, config: EndpointConfig):
        self.config = config
        self.stats = ClientStats()
        self._base_url = config.base_url.rstrip("/") + "/"
        self._semaphore: asyncio.Semaphore | None = None
        self._http: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatClient(base_url={self.config.base_url!r}, model={self.config.model!r})"

    def _api_key(self) -> str | None:
        if not self.config.api_key_env:
            return None
        key = os.environ.get(self.config.api_key_env)
        if not key:
            raise EndpointError(
                f"environment variable {self.config.api_key_env} is not set (it should hold the API key)",
                Reason.CREDENTIALS,
            )
        return key

    def check_credentials(self) -> None:
        """Fail now, not as a stream of unknown verdicts, when the API key variable is not set."""
        self._api_key()

    def _request(self, method: str, path: str) -> RequestBuilder:
        assert self._http is not None
        request = self._http.request(method, self._base_url + path).header("Content-Type", "application/json")
        key = self._api_key()
        # marked sensitive: the HTTP library keeps it out of its debug output and logs
        return request if key is None else request.header("Authorization", f"Bearer {key}", is_sensitive=True)

    def _ensure_session(self) -> None:
        # asyncio primitives are bound to a loop: rebuild them when called from a new one
        # (a sync caller runs a fresh loop per batch).
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
            # The semaphore bounds the requests in flight; the pool keeps every connection alive between waves.
            self._http = ClientBuilder().timeout(timedelta(seconds=self.config.timeout_s)).build()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
            self._loop = None

    async def _post_once(self, path: str, data: bytes, shape: Shape) -> dict[str, Any]:
        request = self._request("POST", path).body_bytes(data).build()
        try:
            resp = await request.send()
            status, raw = resp.status, (await resp.bytes()).to_bytes()
        except RequestError as err:
            raise self._unanswered(err) from err
        if status in RETRYABLE_STATUS:
            text = _text(raw, 200)
            raise RetryableError(f"HTTP {status}: {text}", Reason.HTTP_STATUS, status, text)
        if status >= 400:
            text = raw.decode("utf-8", errors="replace")
            # vLLM and llama.cpp answer an over-long prompt with a 400 that names the context length
            reason = Reason.CONTEXT_OVERFLOW if is_context_overflow(text) else Reason.HTTP_STATUS
            raise EndpointError(f"HTTP {status} from {path}: {text[:500]}", reason, status, text[:500])
        try:
            return read_reply(raw, shape)
        except MalformedReply as err:
            raise RetryableError(f"malformed response: {err}", Reason.BAD_RESPONSE) from err

    async def post(self, path: str, payload: dict[str, Any], shape: Shape = replies.ANY_REPLY) -> dict[str, Any]:
        """POST with bounded concurrency and retries; the body as `shape` reads it (a body of another shape is
        retried like a 5xx, then `Reason.BAD_RESPONSE`); raises EndpointError when it gives up."""
        self._ensure_session()
        assert self._semaphore is not None
        data = orjson.dumps({"model": self.config.model, **self.config.extra_body, **payload})
        async with self._semaphore:
            started = time.perf_counter()
            self.stats.requests += 1
            try:
                try:  # most calls succeed at once: no retry machinery for them (it costs ~70 µs a call)
                    body = await self._post_once(path, data, shape)
                except RetryableError as first:
                    body = await self._retry(path, data, shape, first)
            except RetryableError as err:
                self.stats.failures += 1
                tries = self.config.max_retries + 1
                message = f"gave up after {tries} attempts: {err}" if tries > 1 else str(err)
                raise EndpointError(message, err.reason, err.status, err.body) from err
            except EndpointError:
                self.stats.failures += 1
                raise
            finally:
                self.stats.latency_s += time.perf_counter() - started
        usage = body.get("usage") or {}  # checked by `shape`: an object of counts, or none
        self.stats.no_usage += not usage
        self.stats.prompt_tokens += usage.get("prompt_tokens") or 0
        self.stats.completion_tokens += usage.get("completion_tokens") or 0
        return body

    async def _retry(self, path: str, data: bytes, shape: Shape, first: RetryableError) -> dict[str, Any]:
        """The attempts after a failed first one, with backoff and jitter; tenacity counts the first as its own."""
        failed_first = True
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(RetryableError),
            stop=stop_after_attempt(self.config.max_retries + 1),
            wait=wait_exponential_jitter(multiplier=self.config.backoff_initial_s, max=self.config.backoff_max_s),
            reraise=True,
        ):
            with attempt:
                if failed_first:
                    failed_first = False
                    raise first
                self.stats.retries += 1
                return await self._post_once(path, data, shape)
        raise AssertionError("unreachable: tenacity returns or re-raises")

    async def chat(self, messages: list[dict[str, str]], *, top_logprobs: int = 0, **sampling: Any) -> ChatResult:
        payload: dict[str, Any] = {"messages": messages, **sampling}
        if top_logprobs:
            payload.update(logprobs=True, top_logprobs=top_logprobs)
        body = await self.post("chat/completions", payload, replies.CHAT_LOGPROBS if top_logprobs else replies.CHAT)
        choice = body["choices"][0]  # the shape guarantees every read below
        tokens = [
            (item.get("token", ""), {t["token"]: t["logprob"] for t in item.get("top_logprobs") or ()})
            for item in (choice.get("logprobs") or {}).get("content") or ()
        ]
        return ChatResult(text=choice["message"]["content"], token_logprobs=tokens)

    async def complete(self, prompt: str, *, top_logprobs: int = 0, **sampling: Any) -> ChatResult:
        """Raw completion; `top_logprobs` uses the legacy integer `logprobs` field."""
        payload: dict[str, Any] = {"prompt": prompt, **sampling}
        if top_logprobs:
            payload["logprobs"] = top_logprobs
        shape = replies.COMPLETION_LOGPROBS if top_logprobs else replies.COMPLETION
        choice = (await self.post("completions", payload, shape))["choices"][0]
        lp = choice.get("logprobs") or {}
        tops = zip(lp.get("tokens") or (), lp.get("top_logprobs") or ())
        return ChatResult(text=choice["text"], token_logprobs=[(t, top or {}) for t, top in tops])

    def _unanswered(self, err: RequestError, timeout_s: float | None = None) -> RetryableError:
        """A request that got no answer; pyreqwest's text is a (message, details) tuple: its last cause is
        the one that says what happened ("Connection refused (os error 111)")."""
        if isinstance(err, RequestTimeoutError):  # a timeout is both
            return RetryableError(f"no answer within {timeout_s or self.config.timeout_s:g}s", Reason.TIMEOUT)
        causes = err.details.get("causes") if isinstance(getattr(err, "details", None), dict) else None
        return RetryableError(
            f"{type(err).__name__}: {causes[-1]['message'] if causes else err.message}", Reason.TRANSPORT
        )

    async def list_models(self, timeout_s: float | None = None) -> ModelListing:
        """GET `/models`, once (no retries); raises `EndpointError` when the server does not answer."""
        self._ensure_session()
        timeout = timedelta(seconds=timeout_s or self.config.timeout_s)
        try:
            resp = await self._request("GET", "models").timeout(timeout).build().send()
            status, raw = resp.status, (await resp.bytes()).to_bytes()
        except RequestError as err:
            unanswered = self._unanswered(err, timeout_s)
            raise EndpointError(str(unanswered), unanswered.reason) from err
        return ModelListing.read(status, raw)

    async def context_window(self) -> int | None:
        """The model's context length as the server reports it in `/models`, or None if it does not.

        vLLM and SGLang list `max_model_len`; llama.cpp's own server lists `meta.n_ctx_train` (its `n_ctx`
        may be smaller, so `n_ctx` wins where given); llama-cpp-python lists nothing.
        """
        try:
            entries = (await self.list_models(min(self.config.timeout_s, 10.0))).entries
        except EndpointError:
            return None
        ours = [e for e in entries if e.get("id") == self.config.model] or entries[:1]
        for entry in ours:
            meta = entry.get("meta")
            meta = meta if isinstance(meta, dict) else {}
            for value in (entry.get("max_model_len"), entry.get("n_ctx"), meta.get("n_ctx"), meta.get("n_ctx_train")):
                if type(value) is int and value > 0:  # not a bool
                    return value
        return None


def _text(raw: bytes, chars: int) -> str:
    """The start of an error body, as text (decoded only on the way to an error)."""
    return raw[: chars * 4].decode("utf-8", errors="replace")[:chars]
