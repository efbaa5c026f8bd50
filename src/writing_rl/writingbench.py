"""WritingBench's critic protocol (X-PLUG/WritingBench: `prompt.py`, `evaluate_benchmark.py`,
`evaluator/`, `calculate_scores.py`), so our WritingBench number and the official one agree given the
same critic.

- Prompt: the official system and user texts below (Apache-2.0, quoted unchanged because the score
  depends on every word). The criterion is filled in as Python renders its checklist entry
  (`str(dict)`, keys in the file's order), and the response is cut after its first `</think>\\n\\n`
  (`process_gen_field`), before anything else reads it: our sanitiser runs on the cut answer.
- Sampling: temperature 1.0, top_p 0.95, at most 2048 new tokens (`CriticAgent.run`).
- Reply: accepted when, stripped of the characters `json|\\``, it is a JSON object whose `score` equals
  one of 1..10 and whose `reason` is a string (`success_check_fn_score`); otherwise asked again, in rounds
  of 5 tries (`CriticAgent.run`). After a failed round the script reads the last reply with `json.loads`,
  else `eval`: only when that works does it start another round (at most 3); otherwise it stops with an
  error, as it does on a reply its check cannot even inspect (`official_check`, `round_goes_on`).
- Aggregation: the benchmark score is the mean of all criterion scores (flat, `calculate_scores.py`),
  a domain's score the mean of its queries' means; the leaderboard multiplies by 10.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Literal

# Bumped whenever our reading of the official scorer changes, so results name the scorer they used.
SCORER_VERSION = "writingbench-official-2"
TRIES_PER_ROUND = 5  # CriticAgent.run: max_try
ROUNDS = 3  # EvalAgent.generate_score: retry < 3
OFFICIAL_SAMPLING = {"temperature": 1.0, "top_p": 0.95, "max_tokens": 2048}

SYSTEM = "You are an expert evaluator with extensive experience in evaluating response of given query."

_OUTPUT_FORMAT = (
    "** Output format ** \n"
    + """(Remove symbols that interfere with JSON parsing, don't use " inside reason)
Return the results in the following JSON format, Only output the following JSON format and nothing else:
```json
{{
    "score": an integer score between 1 to 10,
    "reason": "Specific and detailed justification for the score using text elements."
}}"""
)

USER = (
    """Evaluate the Response based on the Query and Criteria provided following the Scoring Rules.

** Scoring Rules **

"1-2": "Low score description: Critical deficiencies and major issues that prevent adequate functionality.",
"3-4": "Below average score description: Lacking with noticeable shortcomings that impact overall effectiveness and require improvement.",
"5-6": "Average score description: Adequate but not exemplary, Baseline performance that meets essential requirements. Most models may achieve this score.",
"7-8": "Above average score description: Strong performance characterized by competent execution, though minor refinements are needed to achieve excellence.",
"9-10": "High score description: Exceptional performance with all aspects optimally addressed, demonstrating superior effectiveness and quality without any flaws."

-Provide reasons for each score by indicating specific strengths or deficiencies within the Response. Reference exact text passages to justify the score, ensuring that each reason is concrete and aligns with the criteria requirements while highlighting key gaps from the ideal answer.

-Be very STRICT and do not be misled by format or length; ensure that the Response is thoroughly evaluated beyond superficial appearances.

-Carefully discern whether the content of the Response is an illusion, appearing substantial but actually entirely fabricated.

-Sometimes the model may only provide an introduction or an overview without truly completing the query, which should be considered a failed response. Carefully discern this.

-Scoring Range: Assign an integer score between 1 to 10

"""
    + _OUTPUT_FORMAT
    + """

** Criteria **
```{criteria}```

** Query **
```{query}```

** Response **
```{response}```

Provide your evaluation based on the criteria restated below:

```{criteria}```

"""
    + _OUTPUT_FORMAT
    + "\n```"
)

THINK_MARKER = "</think>\n\n"
_VALID_SCORES = range(1, 11)
_SCORE_PATTERN = re.compile(r'"score"\s*:\s*"?(\d{1,2})(?![\d.])')


def strip_thinking(response: str) -> str:
    """What the official scorer reads of a reasoning model's output (`process_gen_field`): the text after the
    first `</think>\\n\\n`, else all of it. Done before sanitising, which rewrites the marker."""
    at = response.find(THINK_MARKER)
    return response if at == -1 else response[at + len(THINK_MARKER) :]


def user_prompt(query: str, answer: str, criterion: dict[str, Any]) -> str:
    """The official user prompt for an answer already cut by `strip_thinking`; the criterion dict appears as
    `str(dict)`, keys in their file order."""
    return USER.format(query=query, response=answer, criteria=criterion)


Check = Literal["accepted", "rejected", "stop"]


def official_check(text: str | None) -> Check:
    """What `success_check_fn_score` does with a reply: accept it, reject it (ask again), or stop the script
    with an exception: `json.loads` failing other than by a decode error (nesting too deep, an int past the
    digit limit), a JSON scalar that `"score" in` cannot search, a string or list holding the words "score"
    and "reason" (then indexed by a key)."""
    try:
        result = json.loads((text or "").strip("json|`"))
    except json.JSONDecodeError:
        return "rejected"
    except (ValueError, RecursionError):
        return "stop"
    if not isinstance(result, (dict, list, str)):
        return "stop"
    if "score" not in result or "reason" not in result:
        return "rejected"
    if not isinstance(result, dict):
        return "stop"
    return "accepted" if parse_score(text) is not None else "rejected"


def round_goes_on(last_reply: str | None) -> bool:
    """After a round of 5 rejected replies, the official script reads the last with `json.loads`, else `eval`,
    and starts another round only when that works. We never `eval` a model's text: `ast.literal_eval` stands
    in, which reads the literals (a Python dict in single quotes, say) and refuses any other expression that
    `eval` would run (a call, a name): the only replies on which the two differ, and rare."""
    body = (last_reply or "").strip("json|`")
    try:
        json.loads(body)
        return True
    except json.JSONDecodeError:
        pass
    except (ValueError, RecursionError):
        return False
    try:
        ast.literal_eval(body)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False
    return True


def parse_score(text: str | None) -> float | None:
    """The official acceptance rule: the whole reply (stripped of `json|\\``) is a JSON object with a
    `score` equal to one of 1..10 (7.0 passes, "7" and 7.5 do not) and a string `reason`."""
    if text is None:
        return None
    try:
        obj = json.loads(text.strip("json|`"))
    except (ValueError, RecursionError):  # JSONDecodeError, an int past the digit limit, nesting too deep
        return None
    if not isinstance(obj, dict) or "score" not in obj or "reason" not in obj:
        return None
    score, reason = obj["score"], obj["reason"]
    if isinstance(score, (dict, list)) or score not in _VALID_SCORES or not isinstance(reason, str):
        return None
    return float(score)


def parse_score_lenient(text: str | None) -> float | None:
    """`parsing: lenient`: the official rule, else the last JSON object with a score of 1..10 anywhere in
    the text, else a last `"score": N` (for weak critics that wrap their JSON in prose)."""
    if (official := parse_score(text)) is not None or not text:
        return official
    for match in reversed(list(re.finditer(r"\{[^{}]*\}", text, re.DOTALL))):
        try:
            obj = json.loads(match.group(0))  # no nesting: `{[^{}]*}` holds no brace
        except ValueError:  # JSONDecodeError, or an int past the digit limit
            continue
        score = obj.get("score") if isinstance(obj, dict) else None
        if isinstance(score, str) and score.strip().isdigit():
            score = int(score.strip())
        if isinstance(score, (int, float)) and not isinstance(score, bool) and float(score).is_integer():
            return float(score) if 1 <= score <= 10 else None
    found = _SCORE_PATTERN.findall(text)
    return float(found[-1]) if found and 1 <= int(found[-1]) <= 10 else None
