"""Text measures shared by training rewards and evaluation: length as LongBench-Write counts it,
its length score, and repetition."""

from __future__ import annotations

import re
from collections import Counter

# LongBench-Write's `count_words` (THUDM/LongWriter, evaluation/pred.py): characters of the CJK Unified
# Ideographs block, plus runs of ASCII letters standing alone between word boundaries. Python's `\b` is
# Unicode-aware, so digits, "_", accented letters and CJK characters glued to a run hide it ("3D",
# "café", "我爱Python" count no English word); "open-source" and "don't" count two each; numbers none.
_LONGBENCH_CJK = re.compile(r"[\u4e00-\u9fff]")
_LONGBENCH_WORD = re.compile(r"\b[a-zA-Z]+\b")
_CJK = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]")


def count_length(text: str) -> int:
    """Chinese characters plus English words, exactly as LongBench-Write's official `count_words`."""
    return len(_LONGBENCH_CJK.findall(text)) + len(_LONGBENCH_WORD.findall(text))


def length_score(required: int, output: int) -> float:
    """LongBench-Write S_l in [0, 100] (evaluation/eval_length.py): 100 at the required length, falling
    faster when too short. An empty output scores 0, the formula's limit (the official script divides by
    zero there)."""
    if required <= 0:
        raise ValueError("required length must be positive")
    if output <= 0:
        return 0.0
    if output > required:
        return 100.0 * max(0.0, 1.0 - (output / required - 1.0) / 3.0)
    return 100.0 * max(0.0, 1.0 - (required / output - 1.0) / 2.0)


def _units(text: str) -> list[str]:
    return [m.group(0) for m in re.finditer(r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]|[A-Za-z0-9]+", text.lower())]


def repetition_ratio(text: str, n: int = 4) -> float:
    """Share of n-grams (of words / CJK characters) that repeat an earlier one: 0 = none, near 1 = a loop."""
    units = _units(text)
    grams = [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(c - 1 for c in counts.values()) / len(grams)


def keyword_coverage(text: str, keywords: list[str]) -> float:
    """Share of `keywords` the text uses, in [0, 1]: whole words for Latin script (any case), substrings
    for CJK (which has no word boundaries)."""
    if not keywords:
        raise ValueError("no keywords")
    lowered = text.lower()

    def used(word: str) -> bool:
        word = word.strip().lower()
        if _CJK.search(word):
            return word in lowered
        return re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", lowered) is not None

    return sum(used(k) for k in keywords) / len(keywords)
