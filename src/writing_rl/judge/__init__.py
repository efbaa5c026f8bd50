"""Pairwise LLM judge: prompt templates, verdict parsing, OpenAI-compatible backend, cache."""

from .cache import JudgeCache
from .chat_template import ChatTemplate
from .client import EndpointConfig, EndpointError, OpenAICompatClient
from .pairwise import JudgeConfig, Judgement, PairwiseJudge, probs_at_verdict_position
from .templates import PairwiseTemplate, defang
from .verdict import Verdict, VerdictProbs, parse_verdict, probs_from_top_logprobs

__all__ = [
    "ChatTemplate",
    "EndpointConfig",
    "EndpointError",
    "JudgeCache",
    "JudgeConfig",
    "Judgement",
    "OpenAICompatClient",
    "PairwiseJudge",
    "PairwiseTemplate",
    "Verdict",
    "VerdictProbs",
    "defang",
    "parse_verdict",
    "probs_at_verdict_position",
    "probs_from_top_logprobs",
]
