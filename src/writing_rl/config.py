"""YAML configs validated by pydantic schemas, with errors that name the field and the file."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .curriculum import CurriculumConfig
from .judge import JudgeConfig
from .reward import RewardConfig

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    pass


class LocalJudgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="start the embedded llama.cpp judge (SmolLM2-135M) for this run")
    n_ctx: int = Field(4096, ge=512)
    n_threads: int | None = Field(None, ge=1)


class CoreConfig(BaseModel):
    """Judge, reward and curriculum: the parts every engine shares."""

    model_config = ConfigDict(extra="forbid")

    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)


def load_config(path: str | Path, model: type[M]) -> M:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start})"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = [f"  {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in err.errors()]
        raise ConfigError(f"{path}: invalid config:\n" + "\n".join(lines)) from None
