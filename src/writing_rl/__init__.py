"""writing-rl: reinforcement learning for long-form writing with a pairwise judge reward.

Public API (engine-agnostic core):
- data: `Sample`, `load_samples`, `load_jsonl`, `load_hf`, `validate_jsonl`, `SampleFileError`
- endpoint: `EndpointConfig`, `OpenAICompatClient` (one client for every OpenAI-compatible server)
- judge: `PairwiseJudge`, `JudgeConfig`, `parse_verdict`, `Verdict`, `VerdictProbs`
- reward: `PairwiseReward`, `RewardConfig`, `PairItem`, `PairReward`
- curriculum: `Curriculum`, `CurriculumConfig`, `CurriculumStore`
- data building: `PointwiseCritic`, `CriticConfig`, `GeneratorConfig` (see `writing_rl.selection`)
- local judge: `LocalJudgeServer`
Every name is imported on first use (the package itself imports nothing), and so are training
(`writing_rl.train`) and evaluation (`writing_rl.eval`), which import torch / matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> module: imported on first use, so `import writing_rl.verl.reward` in a verl Ray worker does not
# load the critic, the generators or the llama.cpp server with it
_EXPORTS = {
    "ConfigError": ".errors",
    "CoreConfig": ".config",
    "load_config": ".config",
    "CriticConfig": ".critic",
    "PointwiseCritic": ".critic",
    "Curriculum": ".curriculum",
    "CurriculumConfig": ".curriculum",
    "CurriculumStore": ".curriculum",
    "Criterion": ".data",
    "Sample": ".data",
    "SampleFileError": ".data",
    "load_hf": ".data",
    "load_jsonl": ".data",
    "load_samples": ".data",
    "sample_key": ".data",
    "validate_jsonl": ".data",
    "EndpointConfig": ".endpoint",
    "OpenAICompatClient": ".endpoint",
    "GeneratorConfig": ".generation",
    "JudgeConfig": ".judge",
    "Judgement": ".judge",
    "PairwiseJudge": ".judge",
    "PairwiseTemplate": ".judge",
    "Verdict": ".judge",
    "VerdictProbs": ".judge",
    "parse_verdict": ".judge",
    "probs_from_top_logprobs": ".judge",
    "PairItem": ".reward",
    "PairReward": ".reward",
    "PairwiseReward": ".reward",
    "RewardConfig": ".reward",
    "LocalJudgeServer": ".server",
}

if TYPE_CHECKING:
    from .config import CoreConfig, load_config
    from .critic import CriticConfig, PointwiseCritic
    from .curriculum import Curriculum, CurriculumConfig, CurriculumStore
    from .data import Criterion, Sample, SampleFileError, load_hf, load_jsonl, load_samples, sample_key, validate_jsonl
    from .endpoint import EndpointConfig, OpenAICompatClient
    from .errors import ConfigError
    from .generation import GeneratorConfig
    from .judge import (
        JudgeConfig,
        Judgement,
        PairwiseJudge,
        PairwiseTemplate,
        Verdict,
        VerdictProbs,
        parse_verdict,
        probs_from_top_logprobs,
    )
    from .reward import PairItem, PairReward, PairwiseReward, RewardConfig
    from .server import LocalJudgeServer


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'writing_rl' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Criterion",
    "CriticConfig",
    "GeneratorConfig",
    "PointwiseCritic",
    "CoreConfig",
    "Curriculum",
    "CurriculumConfig",
    "CurriculumStore",
    "EndpointConfig",
    "OpenAICompatClient",
    "JudgeConfig",
    "Judgement",
    "LocalJudgeServer",
    "PairItem",
    "PairReward",
    "PairwiseJudge",
    "PairwiseReward",
    "PairwiseTemplate",
    "RewardConfig",
    "Sample",
    "SampleFileError",
    "Verdict",
    "VerdictProbs",
    "load_config",
    "load_hf",
    "load_jsonl",
    "load_samples",
    "parse_verdict",
    "probs_from_top_logprobs",
    "sample_key",
    "validate_jsonl",
]
