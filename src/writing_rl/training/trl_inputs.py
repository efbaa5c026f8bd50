"""What TRL and accelerate are handed: the `GRPOConfig`, the dataset, and this process's place in the launch.

Kept apart so `check` builds the very `GRPOConfig` the run builds, and every rank sees the launch as TRL does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import Sample
from ..errors import ConfigError
from .config import TrainConfig


def to_trl_dataset(samples: list[Sample]):  # type: ignore[no-untyped-def]
    from datasets import Dataset

    def prompt(s: Sample) -> list[dict[str, str]]:
        if isinstance(s.prompt, str):
            return [{"role": "user", "content": s.prompt}]
        return [m.model_dump() for m in s.prompt]

    return Dataset.from_list([{"prompt": prompt(s), "sample_key": s.key} for s in samples])


def grpo_args(cfg: TrainConfig, output_dir: Path):  # type: ignore[no-untyped-def]
    from trl import GRPOConfig

    settings = cfg.grpo.model_dump(exclude_none=True)
    import torch

    defaults: dict[str, Any] = {"save_strategy": "steps", "disable_dropout": True, "log_completions": False}
    if not torch.cuda.is_available():  # TRL defaults to bf16, which needs a GPU
        defaults.update(use_cpu=True, bf16=False)
    try:
        return GRPOConfig(output_dir=str(output_dir), **{**defaults, **settings})
    except (TypeError, ValueError) as err:
        raise ConfigError(f"grpo settings rejected by trl.GRPOConfig: {err}") from None


def process_state():  # type: ignore[no-untyped-def]
    """accelerate's view of this process (rank, world size), set up as `grpo_args` sets up TRL: on the CPU
    where there is no CUDA. A plain `PartialState()` there sees a world of one in every process of a
    multi-process launch, so every rank would act as the main one."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())
