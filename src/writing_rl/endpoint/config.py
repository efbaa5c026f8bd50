"""Where an OpenAI-compatible model lives and how hard to push it (judge, critic, generator)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# how API keys of common providers begin (OpenAI, Anthropic, Hugging Face, Groq, Google, xAI, GitHub, GitLab,
# Slack, AWS, Replicate, NVIDIA, Perplexity, Stripe-style pk_/rk_, Fireworks, Together)
KEY_PREFIXES = (
    "sk-", "sk_", "hf_", "gsk_", "AIza", "xai-", "ghp_", "gho_", "ghs_", "github_pat_", "glpat-", "xoxb-", "xoxp-",
    "AKIA", "ASIA", "r8_", "nvapi-", "pplx-", "pk_", "rk_", "fw_", "tgp_",
)  # fmt: skip
# what the schema puts in place of a refused `api_key_env` before pydantic sees it: pydantic's errors quote
# the value they refuse, and this one may be a secret
_REFUSED = "\u2063refused: "


def api_key_env_problem(value: str) -> str | None:
    """Why `value` cannot be `api_key_env` (the *name* of an environment variable), in words that never
    repeat it (it may be the key itself); None when it is a plausible name."""
    name = value[2:-1] if value.startswith("${") and value.endswith("}") else value.removeprefix("$")
    if looks_like_secret(name):
        return (
            "this is an API key, not the name of a variable holding one (the value is not shown): export the key "
            "in a variable (export JUDGE_API_KEY=...), write api_key_env: JUDGE_API_KEY, and revoke the key if "
            "this file was shared"
        )
    if name != value and ENV_NAME.fullmatch(name):
        return f"give the variable's name without $: api_key_env: {name}"
    if not value:
        return "empty: give the name of the environment variable holding the API key, or remove api_key_env"
    if not ENV_NAME.fullmatch(value):
        return (
            "not an environment variable name (letters, digits and _, not starting with a digit; the value is not "
            "shown): give the name of the variable holding the API key, such as JUDGE_API_KEY"
        )
    return None


def looks_like_secret(value: str) -> bool:
    """A known API-key prefix, a length no variable name has, or a run of 16+ characters that mixes letters
    and digits the way random keys (hex, base62) do: three or more separate groups of digits, or upper case,
    lower case and digits changing at nearly every other character. Names like JUDGE_API_KEY never are."""
    if len(value) > 64 or (value.startswith(KEY_PREFIXES) and len(value) >= 16):
        return True
    for part in re.split(r"[_.-]", value):
        if len(part) < 16 or not re.search(r"[A-Za-z]", part):
            continue
        classes = ["d" if c.isdigit() else "u" if c.isupper() else "l" for c in part]
        changes = sum(a != b for a, b in zip(classes, classes[1:], strict=False))
        if len(re.findall(r"\d+", part)) >= 3 or (len(set(classes)) == 3 and changes > 0.5 * len(part)):
            return True
    return False


class EndpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field("http://127.0.0.1:8080/v1", description="OpenAI-compatible base URL, ending in /v1")
    model: str = Field("default", description="model name sent in each request")
    api_key_env: str | None = Field(
        None, description="name of the environment variable holding the API key (never the key itself)"
    )
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

    @model_validator(mode="before")
    @classmethod
    def _hide_refused_key(cls, data: Any) -> Any:
        """Swap a refused `api_key_env` for the reason before validation: an error quotes its field's value."""
        value = data.get("api_key_env") if isinstance(data, dict) else None
        if isinstance(value, str) and (problem := api_key_env_problem(value)):
            return {**data, "api_key_env": _REFUSED + problem}
        return data

    @field_validator("api_key_env")
    @classmethod
    def _refuse(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(_REFUSED):
            raise ValueError(value.removeprefix(_REFUSED))
        return value

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
        raise ConfigError(
            f"{field}.max_concurrency: {endpoint.max_concurrency} is the endpoint's total across all processes, "
            f"fewer than the {world_size} training processes: set it to at least {world_size}"
        )
