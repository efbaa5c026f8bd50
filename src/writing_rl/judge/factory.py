"""One place that turns a `JudgeConfig` into a judge backend."""

from __future__ import annotations

from .judgement import Judge
from .pairwise import JudgeConfig, PairwiseJudge
from .rules import RuleJudge


def build_judge(config: JudgeConfig) -> Judge:
    if config.backend == "rule":
        assert config.rule is not None  # the config validator guarantees it
        return RuleJudge(config.rule)
    return PairwiseJudge(config)
