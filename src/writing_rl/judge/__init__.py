"""Pairwise judges: an LLM (prompt templates, verdict parsing, OpenAI-compatible backend, cache) or a known-truth rule."""

from .cache import JudgeCache
from .chat_template import ChatTemplate
from .client import EndpointConfig, EndpointError, OpenAICompatClient
from .factory import build_judge
from .judgement import Judge, Judgement, JudgeStats
from .pairwise import JudgeConfig, PairwiseJudge, probs_at_verdict_position
from .rules import RuleJudge, RuleJudgeConfig, rule_score
from .templates import PairwiseTemplate, defang
from .verdict import Verdict, VerdictProbs, parse_verdict, probs_from_top_logprobs

__all__ = [
    "ChatTemplate",
    "EndpointConfig",
    "EndpointError",
    "JudgeCache",
    "Judge",
    "JudgeConfig",
    "JudgeStats",
    "Judgement",
    "OpenAICompatClient",
    "PairwiseJudge",
    "PairwiseTemplate",
    "RuleJudge",
    "RuleJudgeConfig",
    "Verdict",
    "VerdictProbs",
    "build_judge",
    "defang",
    "parse_verdict",
    "probs_at_verdict_position",
    "probs_from_top_logprobs",
    "rule_score",
]
