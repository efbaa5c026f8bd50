"""Long-input transfer: LongBench v2-style multiple choice, with middle truncation as LongBench does."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

TEMPLATE = """Please read the following text and answer the question below.

<text>
{context}
</text>

What is the correct answer to this question: {question}
Choices:
(A) {choice_A}
(B) {choice_B}
(C) {choice_C}
(D) {choice_D}

Format your response as follows: "The correct answer is (insert answer here)"."""

REQUIRED = ("_id", "question", "choice_A", "choice_B", "choice_C", "choice_D", "answer", "context")


def truncate_middle(
    text: str, max_tokens: int, encode: Callable[[str], Sequence], decode: Callable[[Sequence], str]
) -> str:
    """Keep the first and last max_tokens/2 tokens when the text is too long (LongBench's rule)."""
    tokens = encode(text)
    if len(tokens) <= max_tokens:
        return text
    half = max_tokens // 2
    return decode(tokens[:half]) + decode(tokens[len(tokens) - half :])


def word_tokens() -> tuple[Callable[[str], list[str]], Callable[[Sequence[str]], str]]:
    """A tokenizer stand-in for endpoints whose tokenizer we do not hold: whitespace-kept word pieces."""
    return (lambda t: re.findall(r"\S+\s*", t)), (lambda toks: "".join(toks))


def build_prompt(item: dict, max_tokens: int, encode: Callable, decode: Callable) -> str:
    missing = [k for k in REQUIRED if k not in item]
    if missing:
        raise ValueError(f"LongBench v2 item {item.get('_id', '?')} lacks {missing}")
    # the template around the context costs tokens too: leave it room
    overhead = len(encode(TEMPLATE.format(**{**item, "context": ""})))
    context = truncate_middle(item["context"], max(1, max_tokens - overhead), encode, decode)
    return TEMPLATE.format(**{**item, "context": context})


def parse_choice(text: str) -> str | None:
    """'The correct answer is (B)' -> 'B'; else a lone A-D in parentheses; else None (counted as wrong)."""
    patterns = (
        r"(?i:correct answer is)\s*\(([ABCD])\)",  # the requested form
        r"(?i:correct answer is)\s*([ABCD])\b",  # without parentheses; the letter must stand alone
        r"\(([ABCD])\)",
        r"^\s*([ABCD])\s*$",
    )
    for pattern in patterns:
        m = re.search(pattern, text.replace("*", ""), re.MULTILINE)
        if m:
            return m.group(1)
    return None
