"""Reading a judge's verdict without being fooled by the answers it judged.

The published code took the *first* `[[X]]` anywhere in the judge's text, so a policy answer
containing `[[B]]` (quoted back by the judge) could flip its own reward. Here only the judge's own
final line counts, fenced answer text the judge echoes is cut out first, and anything ambiguous is
UNKNOWN: a missing reward, never a loss. Only whole fenced blocks are cut: a judge that merely names
a fence marker in its explanation keeps the rest of its text (and its verdict).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum


class Verdict(str, Enum):
    A = "A"
    B = "B"
    TIE = "C"
    UNKNOWN = "unknown"


VERDICT_TOKEN = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def fence_pattern(nonce: str) -> re.Pattern[str]:
    """Matches a fenced answer the judge echoed, from its opening to its closing marker, or a lone marker.

    An opening marker without its closing one is cut alone, not with the rest of the text: a judge may
    name the markers in its explanation ("the text inside <<<ANSWER A ...>>> is longer"), and answers
    are sanitised, so an echoed answer that the judge never closes holds no verdict token to read.
    """
    n = rf"(?:{re.escape(nonce)}|(?<=A )[0-9a-f]{{16}})"  # answer A's fence has an id of its own (templates.py)
    return re.compile(rf"<<<ANSWER [AB] {n}>>>.*?<<<END ANSWER [AB] {n}>>>|<<<(?:END )?ANSWER [AB] {n}>>>", re.DOTALL)


def _marker_pattern(nonce: str) -> re.Pattern[str]:
    n = rf"(?:{re.escape(nonce)}|(?<=A )[0-9a-f]{{16}})"
    return re.compile(rf"<<<(END )?ANSWER [AB] {n}>>>")


def cut_fences(text: str, nonce: str) -> str:
    """`fence_pattern(nonce).sub(" ", text)`, in one pass over the markers.

    The pattern's lazy `.*?` scans the rest of the text for a closing marker from every opening that has
    none, so a reply of many unclosed openings took quadratic time (20,000 of them: two minutes). The
    first closing marker after an opening ends its block; markers never overlap (a fence id holds no `<`),
    so walking them in order gives the same cut."""
    markers = list(_marker_pattern(nonce).finditer(text))
    if not markers:
        return text
    next_end: list[int | None] = [None] * (len(markers) + 1)  # the first closing marker at or after each one
    for k in range(len(markers) - 1, -1, -1):
        next_end[k] = k if markers[k].group(1) else next_end[k + 1]
    out, at, k = [], 0, 0
    while k < len(markers):
        marker, closing = markers[k], next_end[k + 1]
        out += (text[at : marker.start()], " ")
        if not marker.group(1) and closing is not None:  # an opening with a closing after it: the whole block
            at, k = markers[closing].end(), closing + 1
        else:  # a lone marker
            at, k = marker.end(), k + 1
    out.append(text[at:])
    return "".join(out)


def parse_verdict(text: str | None, nonce: str | None = None) -> Verdict:
    """Return the judge's final verdict: `[[A]]`, `[[B]]` or `[[C]]` (tie) on its last non-empty line.

    `nonce` is the fence id used in the judge prompt; text the judge copied from inside a fence is
    ignored. Several different verdict tokens on the last line, or none, give `Verdict.UNKNOWN`.
    """
    if not text:
        return Verdict.UNKNOWN
    if nonce and "<<<" in text:  # every fence marker starts so: none, nothing to cut (and nothing to compile)
        text = cut_fences(text, nonce)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return Verdict.UNKNOWN
    letters = set(VERDICT_TOKEN.findall(lines[-1]))
    if len(letters) != 1:
        return Verdict.UNKNOWN
    return Verdict(letters.pop())


@dataclass(frozen=True)
class VerdictProbs:
    """Judge's probabilities for A, B and tie, renormalised over those three.

    `mass` is what A, B and tie held together before renormalising: a judge that puts little of its
    probability on the verdict letters (a wrong chat template, a judge not answering the question) shows
    it there. Not part of equality: it describes the reading, not the verdict."""

    a: float
    b: float
    tie: float
    mass: float | None = field(default=None, compare=False)

    @property
    def argmax(self) -> Verdict:
        best = max((self.a, Verdict.A), (self.b, Verdict.B), (self.tie, Verdict.TIE), key=lambda t: t[0])
        return best[1]

    def for_letter(self, verdict: Verdict) -> float:
        return {Verdict.A: self.a, Verdict.B: self.b, Verdict.TIE: self.tie}[verdict]


def _letter_of(token: str) -> str | None:
    t = token.strip()
    if not t or t[0] not in "ABC":
        return None
    rest = t[1:]
    if rest and not set(rest) <= set("] "):
        return None
    return t[0]


def probs_from_top_logprobs(
    top_logprobs: Mapping[str, float] | Iterable[tuple[str, float]], min_mass: float = 1e-3
) -> VerdictProbs | None:
    """Turn the top log-probabilities at the verdict position into P(A), P(B), P(tie).

    Tokens such as "A", " A", "A]]" all count for A. Returns None (unknown) when the three letters
    together hold less than `min_mass` of the probability: the judge was not answering the question.
    """
    mass = {"A": 0.0, "B": 0.0, "C": 0.0}
    pairs = top_logprobs.items() if isinstance(top_logprobs, Mapping) else top_logprobs
    for token, logprob in pairs:
        letter = _letter_of(token)
        if letter is not None and logprob is not None and math.isfinite(logprob):
            mass[letter] += math.exp(logprob)
    total = sum(mass.values())
    if total < min_mass:
        return None
    return VerdictProbs(a=mass["A"] / total, b=mass["B"] / total, tie=mass["C"] / total, mass=min(total, 1.0))
