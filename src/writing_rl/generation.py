"""Text generators (OpenAI-compatible endpoints or a local transformers model) and a resumable store.

Every finished generation is committed to SQLite at once, keyed by the generator's settings, the
prompt and the sample index, so a crashed or stopped run picks up where it stopped and nothing is
generated twice.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .endpoint import EndpointConfig, EndpointError, OpenAICompatClient
from .judge.cache import cache_key
from .sqlite_store import open_shared


class GeneratorConfig(BaseModel):
    """One source of answers; give either `endpoint` or `transformers_model`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="source name recorded with each answer")
    endpoint: EndpointConfig | None = None
    transformers_model: str | None = Field(None, description="local model folder, or embedded:smollm2-135m-instruct")
    system_prompt: str | None = None
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(1024, ge=1)

    @model_validator(mode="after")
    def _one_backend(self) -> GeneratorConfig:
        if (self.endpoint is None) == (self.transformers_model is None):
            raise ValueError(f"generator '{self.name}': give exactly one of endpoint or transformers_model")
        return self

    def fingerprint(self) -> str:
        backend = self.endpoint.model if self.endpoint else self.transformers_model
        # The name identifies a source: two generators with the same model and settings (e.g. two
        # servers both calling their model "default", or the policy and a reference source) never
        # share answers. The URL is left out so a local server's changing port keeps the cache valid.
        return cache_key(
            name=self.name,
            backend=backend,
            extra=self.endpoint.extra_body if self.endpoint else None,
            system=self.system_prompt,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
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
    """Generates through the configured backend; `generate` returns None on a failure (reported, not fatal)."""

    def __init__(self, config: GeneratorConfig, store: GenerationStore):
        self.config = config
        self.store = store
        self.fingerprint = config.fingerprint()
        self.client = OpenAICompatClient(config.endpoint) if config.endpoint else None
        self._local: Any = None
        self._local_lock = asyncio.Lock()
        self.generated = 0
        self.reused = 0
        self.failed = 0

    async def generate(self, prompt: str, index: int = 0) -> str | None:
        key = GenerationStore.key(self.fingerprint, prompt, index)
        done = self.store.get(key)
        if done is not None:
            self.reused += 1
            return done
        try:
            text = await (self._via_endpoint(prompt, index) if self.client else self._via_transformers(prompt, index))
        except EndpointError:
            self.failed += 1
            return None
        self.store.put(key, text)
        self.generated += 1
        return text

    async def _via_endpoint(self, prompt: str, index: int) -> str:
        c = self.config
        assert self.client is not None
        res = await self.client.chat(
            c.messages(prompt), temperature=c.temperature, top_p=c.top_p, max_tokens=c.max_tokens, seed=index
        )
        return res.text

    async def _via_transformers(self, prompt: str, index: int) -> str:
        async with self._local_lock:  # one generation at a time on a local model
            return await asyncio.to_thread(self._generate_locally, prompt, index)

    def _generate_locally(self, prompt: str, index: int) -> str:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .models import resolve_model

        c = self.config
        if self._local is None:
            path = resolve_model(c.transformers_model or "")
            self._local = (AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval())
        tok, model = self._local
        inputs = tok.apply_chat_template(
            c.messages(prompt), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        torch.manual_seed(index)
        with torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=c.max_tokens,
                do_sample=c.temperature > 0,
                temperature=c.temperature or None,
                top_p=c.top_p,
                pad_token_id=tok.pad_token_id,
            )
        return tok.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    async def aclose(self) -> None:
        if self.client:
            await self.client.aclose()
