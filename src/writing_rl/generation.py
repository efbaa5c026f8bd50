"""Text generators (OpenAI-compatible endpoints or a local transformers model) and a resumable store.

Every finished generation is committed to SQLite at once, keyed by the generator's settings, the
prompt and the sample index, so a crashed or stopped run picks up where it stopped and nothing is
generated twice.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm.auto import tqdm

from .aio import gather_all
from .endpoint import EndpointConfig, EndpointError, OpenAICompatClient
from .judge.cache import cache_key
from .sqlite_store import open_shared


class Sampling(BaseModel):
    """Sampling settings of one task; a field left None falls through to the level below
    (the task's `sampling` > the benchmark's official settings > the `model` section)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0, description="0 = greedy")
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, description="0 = off; None = the model's own default")
    min_p: float | None = Field(None, ge=0, le=1, description="None = off (not sent)")
    max_tokens: int | None = Field(None, ge=1)

    def over(self, below: Sampling | None) -> Sampling:
        """These settings, with the unset ones taken from `below`."""
        if below is None:
            return self
        return below.model_copy(update=self.model_dump(exclude_none=True))


class GeneratorConfig(BaseModel):
    """One source of answers; give either `endpoint` or `transformers_model`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="source name recorded with each answer")
    endpoint: EndpointConfig | None = None
    transformers_model: str | None = Field(None, description="local model folder, or embedded:smollm2-135m-instruct")
    system_prompt: str | None = None
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, description="None: not sent (the model's own default)")
    min_p: float | None = Field(None, ge=0, le=1, description="None: not sent")
    max_tokens: int = Field(1024, ge=1)
    batch_size: int = Field(8, ge=1, description="transformers: prompts generated together (left-padded)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="transformers: auto = the GPU when present")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="transformers: auto = the checkpoint's dtype on a GPU, float32 on the CPU"
    )

    @model_validator(mode="after")
    def _one_backend(self) -> GeneratorConfig:
        if (self.endpoint is None) == (self.transformers_model is None):
            raise ValueError(f"generator '{self.name}': give exactly one of endpoint or transformers_model")
        return self

    def with_sampling(self, sampling: Sampling | None) -> GeneratorConfig:
        """This source with a task's sampling settings applied."""
        if sampling is None:
            return self
        return self.model_copy(update=sampling.model_dump(exclude_none=True))

    def sampling(self) -> dict[str, Any]:
        """The sampling settings as sent (min_p and top_k only when set)."""
        out: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}
        out.update({k: v for k, v in (("top_k", self.top_k), ("min_p", self.min_p)) if v is not None})
        return out

    def request_fields(self) -> dict[str, Any]:
        """The sampling fields sent to a server: top_k 0 and min_p 0 (off) are left out, since the servers'
        default is off and an API without the field (OpenAI's) refuses a request that has it."""
        return {k: v for k, v in self.sampling().items() if not (k in ("top_k", "min_p") and v == 0)}

    def fingerprint(self) -> str:
        backend = self.endpoint.model if self.endpoint else self.transformers_model
        # The name identifies a source: two generators with the same model and settings (e.g. two
        # servers both calling their model "default", or the policy and a reference source) never
        # share answers. The URL is left out so a local server's changing port keeps the cache valid;
        # so are batch size, device and dtype, which change no setting a user asked for.
        return cache_key(
            name=self.name,
            backend=backend,
            extra=self.endpoint.extra_body if self.endpoint else None,
            system=self.system_prompt,
            **self.sampling(),
        )

    def messages(self, prompt: str) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*head, {"role": "user", "content": prompt}]


class GenerationStore:
    """(generator fingerprint, prompt, sample index) -> text; committed row by row."""

    def __init__(self, path: str | Path):
        self._lock = threading.Lock()
        self._conn = open_shared(
            path, "CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, text TEXT NOT NULL);"
        )

    @staticmethod
    def key(fingerprint: str, prompt: str, index: int) -> str:
        return cache_key(generator=fingerprint, prompt=prompt, index=index)

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT text FROM generations WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, text: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO generations (key, text) VALUES (?, ?)", (key, text))

    def close(self) -> None:
        self._conn.close()


class Generator:
    """Generates through the configured backend; a failed answer is None (reported, not fatal).

    `generate_many` is the fast path: an endpoint gets the prompts concurrently (up to the client's
    `max_concurrency`), a local model gets them in left-padded batches of `batch_size`, longest
    first, on the GPU when there is one. Within a batch the sampling noise depends on the batch's
    other prompts, so a local run with sampling is reproducible for the same prompts and settings,
    not prompt by prompt.
    """

    def __init__(self, config: GeneratorConfig, store: GenerationStore):
        self.config = config
        self.store = store
        self.fingerprint = config.fingerprint()
        self.client = OpenAICompatClient(config.endpoint) if config.endpoint else None
        self._local: LocalModel | None = None
        self._local_lock = asyncio.Lock()
        self.generated = 0
        self.reused = 0
        self.failed = 0

    async def generate(self, prompt: str, index: int = 0, sampling: Sampling | None = None) -> str | None:
        return (await self.generate_many([prompt], index, sampling, desc=None))[0]

    async def generate_many(
        self, prompts: list[str], index: int = 0, sampling: Sampling | None = None, desc: str | None = "generating"
    ) -> list[str | None]:
        """One answer per prompt (sample `index`), reusing stored ones; each is stored as soon as it exists."""
        cfg = self.config.with_sampling(sampling)
        fingerprint = cfg.fingerprint()
        keys = [GenerationStore.key(fingerprint, p, index) for p in prompts]
        out: list[str | None] = [self.store.get(k) for k in keys]
        self.reused += sum(o is not None for o in out)
        todo = [i for i, o in enumerate(out) if o is None]
        if not todo:
            return out
        bar = tqdm(total=len(todo), desc=desc, unit="answer", disable=desc is None)

        def done(i: int, text: str | None) -> None:
            if text is None:
                self.failed += 1
            else:
                self.store.put(keys[i], text)
                self.generated += 1
            out[i] = text
            bar.update(1)

        try:
            if self.client is not None:
                await gather_all(self._one_via_endpoint(cfg, prompts[i], index, i, done) for i in todo)
            else:
                await self._via_transformers(cfg, [(i, prompts[i]) for i in todo], index, done)
        finally:
            bar.close()
        return out

    async def _one_via_endpoint(
        self, cfg: GeneratorConfig, prompt: str, index: int, i: int, done: Callable[[int, str | None], None]
    ) -> None:
        assert self.client is not None
        try:
            res = await self.client.chat(cfg.messages(prompt), seed=index, **cfg.request_fields())
        except EndpointError:
            done(i, None)
            return
        done(i, res.text)

    async def _via_transformers(
        self, cfg: GeneratorConfig, jobs: list[tuple[int, str]], index: int, done: Callable[[int, str | None], None]
    ) -> None:
        async with self._local_lock:  # one batch at a time on a local model
            if self._local is None:
                self._local = await asyncio.to_thread(LocalModel.load, cfg)
            model = self._local
            texts = [model.chat_text(cfg.messages(p)) for _, p in jobs]
            order = sorted(range(len(jobs)), key=lambda j: -len(texts[j]))  # similar lengths pad little
            for start in range(0, len(order), cfg.batch_size):
                chunk = order[start : start + cfg.batch_size]
                answers = await asyncio.to_thread(model.generate, [texts[j] for j in chunk], cfg, index)
                for j, text in zip(chunk, answers):
                    done(jobs[j][0], text)

    async def aclose(self) -> None:
        if self.client:
            await self.client.aclose()


class LocalModel:
    """A transformers model and its tokenizer, set up for batched chat generation."""

    def __init__(self, tokenizer: Any, model: Any):
        self.tokenizer = tokenizer
        self.model = model

    @classmethod
    def load(cls, cfg: GeneratorConfig) -> LocalModel:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .models import resolve_model

        path = resolve_model(cfg.transformers_model or "")
        device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
        dtype: Any = cfg.dtype
        if dtype == "auto" and device == "cpu":
            dtype = torch.float32  # half precision on a CPU is slow, and not what a GPU computes either
        tok = AutoTokenizer.from_pretrained(path, padding_side="left")
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        return cls(tok, model)

    def chat_text(self, messages: list[dict[str, str]]) -> str:
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    def generate(self, texts: list[str], cfg: GeneratorConfig, index: int) -> list[str]:
        import torch

        tok = self.tokenizer
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        sampling: dict[str, Any] = {"do_sample": cfg.temperature > 0}
        if cfg.temperature > 0:
            sampling.update(temperature=cfg.temperature, top_p=cfg.top_p)
            sampling.update({k: v for k, v in (("top_k", cfg.top_k), ("min_p", cfg.min_p)) if v is not None})
        torch.manual_seed(index)
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=cfg.max_tokens, pad_token_id=tok.pad_token_id, **sampling)
        return list(tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True))
