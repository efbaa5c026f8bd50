"""Which reference pairs the judge audit asks about.

Every sample's references are sorted weakest first, so any two of them form a pair whose better answer
is known without a label. The curriculum moves a prompt one tier at a time, so adjacent tiers matter
most; the weakest against the strongest is the easiest test a judge can get. The audit draws both kinds
in turn, from as many prompts as it can before a prompt gives a second pair.

The length control: for pairs whose stronger reference is clearly longer, the stronger one is cut to
the weaker one's length (at a sentence end where one is near). A judge that still prefers it reads
more than length; one that no longer does was following length.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from itertools import combinations

from ..data import Sample
from ..text_metrics import count_length

# Units as LongBench-Write counts them (text_metrics.count_length): CJK characters and ASCII words.
_UNIT = re.compile(r"[\u4e00-\u9fff]|\b[a-zA-Z]+\b")
_SENTENCE_END = re.compile(r"[.!?。！？…](?:[\"'”’)\]]*)(?=\s|$)|[。！？]")
CONTROL_MIN_RATIO = 1.25  # a control only where the stronger reference is at least this much longer
CONTROL_MIN_UNITS = 5  # and the weaker one has at least this many words (or CJK characters)
KEEP_AT_SENTENCE_END = 0.6  # cut at an earlier sentence end if it keeps at least this share of the target


@dataclass(frozen=True)
class TierPair:
    """Two references of one sample; `stronger` is the higher tier. A control pair holds the stronger
    reference cut to the weaker one's length (`stronger_text` is then the cut text)."""

    sample: Sample
    weaker: int
    stronger: int
    control: bool = False
    cut_text: str | None = None

    @property
    def n_levels(self) -> int:
        return len(self.sample.references)

    @property
    def gap(self) -> int:
        return self.stronger - self.weaker

    @property
    def adjacent(self) -> bool:
        return self.gap == 1

    @property
    def extreme(self) -> bool:
        """The weakest against the strongest reference."""
        return self.weaker == 0 and self.stronger == self.n_levels - 1

    @property
    def weaker_text(self) -> str:
        return self.sample.references[self.weaker]

    @property
    def stronger_text(self) -> str:
        return self.cut_text if self.cut_text is not None else self.sample.references[self.stronger]


def candidate_pairs(sample: Sample) -> list[TierPair]:
    """Every pair of distinct references whose order is known: with `reference_scores`, equal scores
    leave the order open, so such pairs are left out."""
    refs, scores = sample.references, sample.reference_scores
    pairs = []
    for i, j in combinations(range(len(refs)), 2):
        if refs[i].strip() == refs[j].strip():
            continue
        if scores is not None and scores[i] is not None and scores[j] is not None and not scores[i] < scores[j]:
            continue
        pairs.append(TierPair(sample, i, j))
    return pairs


def choose_pairs(samples: list[Sample], n: int, seed: int = 0) -> list[TierPair]:
    """Up to `n` pairs, adjacent and wider ones (weakest-vs-strongest first) in turn, each kind spread
    over as many samples as possible; reproducible by `seed`."""
    rng = random.Random(seed)
    adjacent: list[list[TierPair]] = []
    wide: list[list[TierPair]] = []
    for sample in samples:
        pairs = candidate_pairs(sample)
        near = [p for p in pairs if p.adjacent]
        far = [p for p in pairs if not p.adjacent]
        rng.shuffle(near)
        rng.shuffle(far)
        far.sort(key=lambda p: not p.extreme)  # stable: the extreme pair first, the rest shuffled
        adjacent.append(near)
        wide.append(far)
    kinds = [_spread(adjacent, rng), _spread(wide, rng)]
    chosen: list[TierPair] = []
    while len(chosen) < n and any(kinds):
        for kind in kinds:
            if kind and len(chosen) < n:
                chosen.append(kind.pop(0))
    return chosen


def _spread(per_sample: list[list[TierPair]], rng: random.Random) -> list[TierPair]:
    """Round-robin over the samples (in a random order): every sample's first pair before any second."""
    order = list(range(len(per_sample)))
    rng.shuffle(order)
    out = []
    depth = max((len(p) for p in per_sample), default=0)
    for k in range(depth):
        out.extend(per_sample[i][k] for i in order if k < len(per_sample[i]))
    return out


def shorten(text: str, units: int) -> str:
    """`text` cut after its `units`-th word (or CJK character), back at an earlier sentence end when that
    keeps most of it; the text itself when it is no longer."""
    ends = [m.end() for m in _UNIT.finditer(text)]
    if units <= 0 or len(ends) <= units:
        return text
    cut = ends[units - 1]
    head = text[:cut]
    sentence_ends = [m.end() for m in _SENTENCE_END.finditer(text) if m.end() <= cut + 3]
    for end in reversed(sentence_ends):
        if count_length(text[:end]) >= KEEP_AT_SENTENCE_END * units:
            head = text[:end]
            break
    return head.rstrip()


def control_pairs(pairs: list[TierPair], n: int) -> list[TierPair]:
    """Up to `n` length controls from `pairs`, where the stronger reference is clearly the longer."""
    out = []
    for p in pairs:
        if len(out) >= n:
            break
        weak, strong = count_length(p.weaker_text), count_length(p.stronger_text)
        if weak >= CONTROL_MIN_UNITS and strong >= CONTROL_MIN_RATIO * weak:
            out.append(TierPair(p.sample, p.weaker, p.stronger, control=True, cut_text=shorten(p.stronger_text, weak)))
    return out
