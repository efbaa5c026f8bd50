"""Injection screening: answers that address the judge are a reward hack, caught before any call.

Sanitising (`sanitize.py`) keeps a judge from *reading* a verdict in an answer; the screen goes one
step further for the policy's answers: an answer that carries verdict-like text, instructions to the
grader, chat-template control tokens or fake fence markers is an attempt on the judge, and the
`injection` policy decides what it earns before a judge call is spent:

- `penalize` (the default): scored as a loss. Left unpunished, the policy keeps searching for the
  form that gets through; a loss makes the search itself unrewarding.
- `unknown`: a missing reward with reason `injection` (the attempt teaches nothing either way).
- `off`: judged as usual (the answer is still sanitised).

Only rules that ordinary writing does not trip count here (`Rule.screen`); the false-positive rate
on real reference and prompt texts is measured by `benchmarks/screen_false_positives.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .memo import memo
from .sanitize import hits

InjectionPolicy = Literal["penalize", "unknown", "off"]
EXCERPT_CHARS = 160


@dataclass(frozen=True)
class Injection:
    """What the screen found: the rules that fired and the first offending text."""

    rules: tuple[str, ...]
    excerpt: str

    def to_json(self) -> dict[str, Any]:
        return {"rules": list(self.rules), "excerpt": self.excerpt}


@memo(maxsize=4096)  # see prepare.py
def screen(text: str) -> Injection | None:
    """The injection attempt in `text`, or None for an answer that only writes."""
    found = [h for h in hits(text) if h.rule.screen]
    if not found:
        return None
    first = found[0]
    excerpt = text[first.start : first.end]
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS - 1] + "…"
    return Injection(tuple(dict.fromkeys(h.rule.name for h in found)), excerpt)
