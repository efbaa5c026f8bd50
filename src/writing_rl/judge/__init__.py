"""Pairwise judges: an LLM (prompt templates, sanitising and injection screening, verdict parsing, context
fitting, cache) or a known-truth rule."""

from ..reasons import Reason
from .cache import JudgeCache
from .chat_template import ChatTemplate
from .factory import build_judge
from .judgement import Judge, Judgement, JudgeStats
from .pairwise import JudgeConfig, PairwiseJudge, probs_at_verdict_position
from .rules import RuleJudge, RuleJudgeConfig, rule_score
from .sanitize import sanitize
from .screen import Injection, InjectionPolicy, screen
from .templates import PairwiseTemplate, defang
from .verdict import Verdict, VerdictProbs, parse_verdict, probs_from_top_logprobs

__all__ = [
    "ChatTemplate",
    "Injection",
    "InjectionPolicy",
    "JudgeCache",
    "Judge",
    "JudgeConfig",
    "JudgeStats",
    "Judgement",
    "PairwiseJudge",
    "PairwiseTemplate",
    "Reason",
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
    "sanitize",
    "screen",
]
