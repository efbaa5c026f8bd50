"""Where an OpenAI-compatible model lives and how hard to push it (judge, critic, generator)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EndpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field("http://127.0.0.1:8080/v1", description="OpenAI-compatible base URL, ending in /v1")
    model: str = Field("default", description="model name sent in each request")
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    backoff_initial_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(20.0, ge=0)
    max_concurrency: int = Field(8, ge=1, description="requests in flight at once (and open connections)")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra fields sent in every request")
