"""writing-rl: reinforcement learning for long-form writing with a pairwise judge reward.

Public API (engine-agnostic core):
- data: `Sample`, `load_samples`, `load_jsonl`, `load_hf`, `validate_jsonl`, `SampleFileError`
- endpoint: `EndpointConfig`, `OpenAICompatClient` (one client for every OpenAI-compatible server)
- judge: `PairwiseJudge`, `JudgeConfig`, `parse_verdict`, `Verdict`, `VerdictProbs`
- reward: `PairwiseReward`, `RewardConfig`, `PairReward`
- curriculum: `Curriculum`, `CurriculumConfig`, `CurriculumStore`
- data building: `PointwiseCritic`, `CriticConfig`, `GeneratorConfig` (see `writing_rl.selection`)
- local judge: `LocalJudgeServer`
Training (`writing_rl.train`) and evaluation (`writing_rl.eval`) import torch / matplotlib, so they
are imported on use, not here.
"""

from .config import ConfigError, CoreConfig, load_config
from .critic import CriticConfig, PointwiseCritic
from .curriculum import Curriculum, CurriculumConfig, CurriculumStore
from .data import Criterion, Sample, SampleFileError, load_hf, load_jsonl, load_samples, sample_key, validate_jsonl
from .endpoint import EndpointConfig, OpenAICompatClient
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
from .reward import PairReward, PairwiseReward, RewardConfig
from .server import LocalJudgeServer

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
