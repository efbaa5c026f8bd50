"""Long-input transfer: LongBench v2 multiple choice as THUDM/LongBench scores it (`pred.py`, `result.py`).

- Prompt: `prompts/0shot.txt`, the context, question and choices stripped and put in by plain
  replacement, in the official order.
- Truncation: a prompt longer than `max_tokens` keeps its first `max_tokens // 2` and last
  `-(-max_tokens // 2)` tokens, decoded together (the question and choices sit at the end, so they stay).
- Answer: the first "The correct answer is (X)", else "The correct answer is X", after removing every
  `*`; case-sensitive, X in A-D. Anything else is no answer (wrong), even a reply that lists the options.
- An empty reply is not scored (the official `get_pred` skips `output == ''`; we count it as missing); any
  other reply is read, whitespace alone too (no answer: wrong). Accuracy
  overall, by difficulty ("easy", anything else "hard") and by length ("short", "medium", anything else
  "long"). `compensated` (the official flag, off by default) credits a reply with no answer 0.25.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

SCORER_VERSION = "longbench-v2-official-2"

# `prompts/0shot.txt` (Apache-2.0), quoted unchanged.
TEMPLATE = """Please read the following text and answer the question below.

<text>
$DOC$
</text>

What is the correct answer to this question: $Q$
Choices:
(A) $C_A$
(B) $C_B$
(C) $C_C$
(D) $C_D$

Format your response as follows: "The correct answer is (insert answer here)"."""

REQUIRED = ("_id", "question", "choice_A", "choice_B", "choice_C", "choice_D", "answer", "context")
_FIELDS = (("$DOC$", "context"), ("$Q$", "question"), ("$C_A$", "choice_A"), ("$C_B$", "choice_B"))
_FIELDS += (("$C_C$", "choice_C"), ("$C_D$", "choice_D"))


def truncate_middle(
    text: str, max_tokens: int, encode: Callable[[str], Sequence], decode: Callable[[Sequence], str]
) -> str:
    """LongBench's rule: `ids[:max//2] + ids[-max//2:]` (Python's floor division: the tail gets the odd one)."""
    tokens = list(encode(text))
    if len(tokens) <= max_tokens:
        return text
    return decode(tokens[: max_tokens // 2] + tokens[-max_tokens // 2 :])


def word_tokens() -> tuple[Callable[[str], list[str]], Callable[[Sequence[str]], str]]:
    """A tokenizer stand-in for endpoints whose tokenizer we do not hold: whitespace-kept word pieces."""
    return (lambda t: re.findall(r"\S+\s*", t)), (lambda toks: "".join(toks))


def build_prompt(item: dict, max_tokens: int, encode: Callable, decode: Callable) -> str:
    missing = [k for k in REQUIRED if k not in item]
    if missing:
        raise ValueError(f"LongBench v2 item {item.get('_id', '?')} lacks {missing}")
    prompt = TEMPLATE
    for placeholder, key in _FIELDS:
        prompt = prompt.replace(placeholder, str(item[key]).strip())
    return truncate_middle(prompt, max_tokens, encode, decode)


def parse_choice(text: str) -> str | None:
    """The official `extract_answer`: 'The correct answer is (B)' or '... is B' (no `*`), else None."""
    text = text.replace("*", "")
    found = re.search(r"The correct answer is \(([A-D])\)", text) or re.search(r"The correct answer is ([A-D])", text)
    return found.group(1) if found else None


def credit(choice: str | None, answer: str, compensated: bool = False) -> float:
    """1 for the right letter, 0 for a wrong one or none (0.25 for none with `compensated`)."""
    if choice is None:
        return 0.25 if compensated else 0.0
    return float(choice == answer)


def groups(item: dict) -> tuple[str, str]:
    """The item's official difficulty and length groups."""
    difficulty = "easy" if item.get("difficulty") == "easy" else "hard"
    length = item.get("length") if item.get("length") in ("short", "medium") else "long"
    return difficulty, length  # type: ignore[return-value]
