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
    max_concurrency: int = Field(
        8,
        ge=1,
        description="requests in flight at once (and open connections): the endpoint's total across all "
        "training processes, split between them (`for_rank`)",
    )
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra fields sent in every request")

    def for_rank(self, rank: int, world_size: int, field: str = "endpoint") -> EndpointConfig:
        """This process's share of `max_concurrency`, so that all `world_size` ranks together put at most
        the configured load on the endpoint: the quotient each, one more for the first `total % world_size`.
        `field` names the endpoint in the error when the total is smaller than the number of processes."""
        check_concurrency(self, world_size, field)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
        share, extra = divmod(self.max_concurrency, world_size)
        return self.model_copy(update={"max_concurrency": share + (rank < extra)})


def check_concurrency(endpoint: EndpointConfig, world_size: int, field: str = "endpoint") -> None:
    """Every process needs at least one request in flight: a total below the process count is a config error."""
    if endpoint.max_concurrency < world_size:
        from ..config import ConfigError

        raise ConfigError(
            f"{field}.max_concurrency: {endpoint.max_concurrency} is the endpoint's total across all processes, "
            f"fewer than the {world_size} training processes: set it to at least {world_size}"
        )
