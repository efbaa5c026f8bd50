"""Why a verdict or score is missing: one code per cause, counted per training step and per eval task.

A missing reward is never a loss, but "missing" alone hides whether the judge server is down, the
answers no longer fit its context, or the policy is trying to talk to the judge. Every unknown
verdict and missing score carries one of these codes (the text next to it says the details).
"""

from __future__ import annotations

import logging
import re
from enum import Enum


class Reason(str, Enum):
    TRANSPORT = "transport"  # connection refused or reset, DNS, protocol error (after retries)
    TIMEOUT = "timeout"  # no answer within the endpoint's timeout_s (after retries)
    HTTP_STATUS = "http_status"  # the server answered with an error status
    BAD_RESPONSE = "bad_response"  # a 200 whose body is not a usable completion (after retries)
    CREDENTIALS = "credentials"  # the API key variable is not set
    PARSE = "parse"  # the judge's or critic's text holds no readable verdict or score
    NO_VERDICT_MASS = "no_verdict_mass"  # soft verdict: A, B and tie hold less than min_verdict_mass
    CONTEXT_OVERFLOW = "context_overflow"  # the prompt does not fit the judge's context window
    INJECTION = "injection"  # the screen caught an answer addressing the judge (policy `unknown`)
    NOT_APPLICABLE = "not_applicable"  # a rule judge cannot measure this sample (no target length ...)
    NO_OUTPUT = "no_output"  # evaluation: the model produced no answer to score
    INTERNAL = "internal"  # an unexpected error in this framework on one call (its traceback is logged at debug)


ALL_REASONS = tuple(r.value for r in Reason)

# What OpenAI, vLLM, SGLang and llama.cpp servers say when a prompt is longer than the context.
_OVERFLOW = re.compile(
    r"maximum context length|context length|context_length_exceeded|context window|exceeds? (?:the )?(?:model'?s? )?"
    r"(?:max(?:imum)?|context)|too many tokens|prompt is too long|input is too long|n_ctx",
    re.IGNORECASE,
)
_WINDOW = re.compile(
    r"(?:maximum context length is|context window of|max_model_len(?:=|:| of| is)?|n_ctx(?:=|:| of| is)?)\s*(\d{3,8})",
    re.IGNORECASE,
)


def is_context_overflow(message: str) -> bool:
    return bool(_OVERFLOW.search(message))


def window_from_message(message: str) -> int | None:
    """The context window a server names in its overflow error ("maximum context length is 4096 tokens")."""
    m = _WINDOW.search(message)
    return int(m.group(1)) if m else None


def unexpected_failure(err: Exception, logger: logging.Logger, what: str) -> str:
    """The details of an exception nobody expected in one call (`what`), which a boundary turns into an unknown
    with reason `internal` instead of a crash of the batch; logged once, with its traceback, at debug level.

    Boundaries catch `Exception` only, so cancellation, KeyboardInterrupt and SystemExit pass, and let a
    MemoryError pass too: then the process, not one call, is in trouble."""
    logger.debug("%s failed unexpectedly; its result is unknown (reason internal)", what, exc_info=err)
    return f"{what} failed unexpectedly: {type(err).__name__}: {str(err)[:300]}"
