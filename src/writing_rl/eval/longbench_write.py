"""LongBench-Write's scores as THUDM/LongWriter computes them (`evaluation/pred.py`, `eval_length.py`,
`eval_quality.py`, `judge.txt`).

- S_l: `text_metrics.length_score` of the required length against `text_metrics.count_length` of the
  output (the official `count_words`), averaged over the outputs.
- S_q: a judge (GPT-4o in the paper) reads `judge.txt` with the request and the response, at temperature
  0.5 and up to 1024 new tokens. Its reply is read as the official script does: the body of a
  ```` ```json ```` block if there is one, newlines removed, the whole text `json.loads`-ed, and all six
  dimensions present (values taken as `float`, not range-checked); otherwise it asks again until 5 tries
  are spent, and a response still unread is left out. A reply can spend two tries (`read_quality`). S_q:
  for each dimension (mean over responses − 1) × 25, then the mean over the six dimensions.
- S = (S_l + S_q) / 2, as the LongWriter paper reports it.
"""

from __future__ import annotations

import json
import statistics

SCORER_VERSION = "longbench-write-official-2"
DIMENSIONS = ["Relevance", "Accuracy", "Coherence", "Clarity", "Breadth and Depth", "Reading Experience"]
QUALITY_SAMPLING = {"temperature": 0.5, "max_tokens": 1024}
QUALITY_ATTEMPTS = 5

# `evaluation/judge.txt` (Apache-2.0), quoted unchanged: the score depends on every word.
JUDGE_PROMPT = """You are an expert in evaluating text quality. Please evaluate the quality of an AI assistant's response to a user's writing request. Be as strict as possible.

You need to evaluate across the following six dimensions, with scores ranging from 1 to 5. The scoring criteria from 5 to 1 for each dimension are as follows:

1. Relevance: From content highly relevant and fully applicable to the user's request to completely irrelevant or inapplicable.

2. Accuracy: From content completely accurate with no factual errors or misleading information to content with numerous errors and highly misleading.

3. Coherence: From clear structure with smooth logical connections to disorganized structure with no coherence.

4. Clarity: From clear language, rich in detail, and easy to understand to confusing expression with minimal details.

5. Breadth and Depth: From both broad and deep content with a lot of information to seriously lacking breadth and depth with minimal information.

6. Reading Experience: From excellent reading experience, engaging and easy to understand content to very poor reading experience, boring and hard to understand content.

Please evaluate the quality of the following response to a user's request according to the above requirements.

<User Request>

$INST$

</User Request>

<Response>

$RESPONSE$

</Response>

Please evaluate the quality of the response. You must first provide a brief analysis of its quality, then give a comprehensive analysis with scores for each dimension. The output must strictly follow the JSON format: {"Analysis": ..., "Relevance": ..., "Accuracy": ..., "Coherence": ..., "Clarity": ..., "Breadth and Depth": ..., "Reading Experience": ...}. You do not need to consider whether the response meets the user's length requirements in your evaluation. Ensure that only one integer between 1 and 5 is output for each dimension score."""


def quality_prompt(request: str, response: str) -> str:
    """The official substitution, in its order (request first, then response)."""
    return JUDGE_PROMPT.replace("$INST$", request).replace("$RESPONSE$", response)


def parse_quality(text: str | None) -> dict[str, float] | None:
    """The six ratings as the official script reads them, or None (unread, or unusable)."""
    return read_quality(text)[0]


def read_quality(text: str | None) -> tuple[dict[str, float] | None, int]:
    """(the six ratings or None, the tries the official loop spends on this reply: 0 when it takes the reply).

    The official loop (`eval_quality.py`) charges a try for a reply it cannot read, and checks the dimensions in
    order: a reply missing one charges a try and sets the ratings to None, so the check of the next dimension
    fails on None and charges a second. A reply missing any dimension but the last costs 2 of the 5 tries.
    A reply the loop takes whose values its aggregation cannot `float()` (a string or list of the six names,
    "good" as a rating, an int too large) would stop the official script: here it is taken and left out
    (None at cost 0), never asked again.

    Bounded on any input: the block is found in one forward scan (the official `re.search(r"```json\\n(.*?)\\n```",
    text, re.DOTALL)` finds the same, but rescans the rest of the text for every unclosed opening), and JSON nested
    past the interpreter's depth (100,000 `[` or `{`) or holding an int too long for `int` is a reply it cannot
    read (the official `except Exception` catches the same errors), never an exception here."""
    if text is None:
        return None, 1
    if "```json" in text:
        block = _json_block(text)
        if block is None:  # the official `None.replace` raises: one try
            return None, 1
        text = block
    try:
        scores = json.loads(text.replace("\n", ""))
    except (ValueError, RecursionError):  # JSONDecodeError, an int past the digit limit, nesting too deep
        return None, 1
    if (cost := _missing_dimension_cost(scores)) > 0:
        return None, cost
    if not isinstance(scores, dict):
        return None, 0
    try:  # the official aggregation takes float(); a value it could not read would stop it
        return {d: float(scores[d]) for d in DIMENSIONS}, 0
    except (TypeError, ValueError, OverflowError):
        return None, 0


def _missing_dimension_cost(scores: object) -> int:
    """Tries the official dimension check charges: 0 when every name is `in` the value, 1 when only the last is
    missing or `in` cannot search the value (a number, null), 2 when an earlier one is missing."""
    try:
        missing = [d not in scores for d in DIMENSIONS]  # type: ignore[operator]
    except TypeError:
        return 1
    if not any(missing):
        return 0
    return 1 if missing.index(True) == len(DIMENSIONS) - 1 else 2


def _json_block(text: str) -> str | None:
    """What the official pattern `` ```json\\n(.*?)\\n``` `` (DOTALL) captures, or None. Its leftmost match starts at
    the first opening, if any start does: a later opening has less text after it to hold a closing."""
    start = text.find("```json\n")
    if start == -1:
        return None
    end = text.find("\n```", start + len("```json\n"))
    return None if end == -1 else text[start + len("```json\n") : end]


def quality_score(rated: list[dict[str, float]]) -> float | None:
    """S_q: per dimension (mean rating − 1) × 25, then the mean over the dimensions."""
    if not rated:
        return None
    return statistics.fmean((statistics.fmean(r[d] for r in rated) - 1) * 25 for d in DIMENSIONS)
