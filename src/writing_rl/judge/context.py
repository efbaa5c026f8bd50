"""Fitting two answers into the judge's context window, never silently.

Two 8k-token answers plus the question overflow many judges, and a server answers an over-long
prompt with an HTTP 400: without this step the longest answers would quietly lose their reward.
The judge's window comes from the config, the server's `/models`, or the server's own overflow
error; tokens are counted with the judge's tokenizer where we have it (a `.gguf` file or a
tokenizer folder), else with `estimate_tokens`, an estimate meant to err on the high side. Answers
that do not fit are cut in the middle (head and tail kept, a visible marker between) or, by choice,
left unjudged with reason `context_overflow`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CUT_MARKER = "\n[… {n} tokens cut here to fit the context window …]\n"
MIN_KEPT_TOKENS = 32  # below this an answer is no longer worth judging: the verdict is unknown instead

# Runs a tokenizer keeps together: ASCII words, single digits, spaces, newlines, other ASCII, non-ASCII.
_RUN = re.compile(r"[A-Za-z]+|[0-9]| +|\t+|\n+|[\x00-\x7f]|[^\x00-\x7f]")


def _run_tokens(run: str) -> int:
    c = run[0]
    if c.isascii() and c.isalpha():
        return math.ceil(len(run) / 3)  # English words average ~4.5 letters a token; 3 leaves room
    if c == " ":
        return len(run) - 1  # one space joins the next word; more are tokens of their own
    if c in "\t\n":
        return len(run)
    if c.isascii():
        return 1  # a digit or a punctuation mark (Qwen and Llama 3 split digits)
    return len(c.encode("utf-8"))  # byte-level BPE needs at most one token per byte


def estimate_tokens(text: str) -> int:
    """Tokens `text` takes, estimated high: on the shipped and public data SmolLM2's tokenizer (a small
    English vocabulary, so a hard case for Chinese) needs 55% of this on average, 95% at most.

    The sum of `_run_tokens` over the runs, computed without visiting each run: every byte counts one,
    except that a word of L letters counts ceil(L/3) and each run of spaces one less than its length."""
    words = _WORD.findall(text)
    letters = sum(map(len, words))
    return len(text.encode("utf-8")) - letters + sum((len(w) + 2) // 3 for w in words) - len(_SPACES.findall(text))


_WORD = re.compile(r"[A-Za-z]+")
_SPACES = re.compile(r" +")


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens and cuts a text to a token budget, keeping its head and tail."""

    count: Callable[[str], int]
    cut: Callable[[str, int], tuple[str, str]]  # (text, tokens to keep) -> (head, tail)
    exact: bool


def _estimated_cut(text: str, keep: int) -> tuple[str, str]:
    runs = [m.group() for m in _RUN.finditer(text)]
    costs = [_run_tokens(r) for r in runs]
    head_budget, tail_budget = keep - keep // 2, keep // 2
    head, used = 0, 0
    while head < len(runs) and used + costs[head] <= head_budget:
        used += costs[head]
        head += 1
    tail, used = len(runs), 0
    while tail > head and used + costs[tail - 1] <= tail_budget:
        used += costs[tail - 1]
        tail -= 1
    return "".join(runs[:head]), "".join(runs[tail:])


ESTIMATE = TokenCounter(lru_cache(maxsize=4096)(estimate_tokens), _estimated_cut, exact=False)


def _from_encoder(encode: Callable[[str], list[int]], decode: Callable[[list[int]], str]) -> TokenCounter:
    @lru_cache(maxsize=4096)  # a reference is counted for every completion of its group, in both orders
    def count(text: str) -> int:
        return len(encode(text))

    def cut(text: str, keep: int) -> tuple[str, str]:
        ids = encode(text)
        head, tail = keep - keep // 2, keep // 2
        return decode(ids[:head]), decode(ids[len(ids) - tail :]) if tail else ""

    return TokenCounter(count, cut, exact=True)


@lru_cache(maxsize=4)
def load_counter(spec: str | None) -> TokenCounter:
    """A `.gguf` file (read with llama.cpp, the embedded judge's own tokenizer), a tokenizer folder or
    hub name (transformers), or None for the estimate."""
    if not spec or spec == "chatml" or "{%" in spec or "{{" in spec or spec.endswith(".jinja"):
        return ESTIMATE
    if spec.endswith(".gguf"):
        try:
            import llama_cpp

            vocab = llama_cpp.Llama(model_path=spec, vocab_only=True, verbose=False)
            return _from_encoder(
                lambda t: vocab.tokenize(t.encode("utf-8"), add_bos=False, special=True),
                lambda ids: vocab.detokenize(ids).decode("utf-8", errors="ignore"),
            )
        except ImportError:
            path = Path(spec)
            return _from_hf(str(path.parent), gguf_file=path.name)
    return _from_hf(spec)


def _from_hf(name: str, **kwargs: str) -> TokenCounter:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name, **kwargs)
    return _from_encoder(lambda t: tok.encode(t, add_special_tokens=False), lambda ids: tok.decode(ids))


def cut_middle(text: str, keep: int, counter: TokenCounter) -> tuple[str, int]:
    """`text` cut to `keep` tokens (its head and tail) with a marker saying how many went (estimated
    when the counter is), and that number."""
    head, tail = counter.cut(text, keep)
    removed = max(counter.count(text) - counter.count(head) - counter.count(tail), 0)
    return head + CUT_MARKER.format(n=removed) + tail, removed


def fit_pair(a: str, b: str, room: int, counter: TokenCounter) -> tuple[str, str, tuple[int, int]] | None:
    """Both answers within `room` tokens together: the longer ones are cut first, the shorter kept whole
    when it fits in half the room. Returns (A, B, tokens cut from each), or None if `room` is too small."""
    na, nb = counter.count(a), counter.count(b)
    if na + nb <= room:
        return a, b, (0, 0)
    marker = counter.count(CUT_MARKER.format(n=10**6))
    half = room // 2
    if na <= half:
        share = {"a": na, "b": room - na}
    elif nb <= half:
        share = {"a": room - nb, "b": nb}
    else:
        share = {"a": room - half, "b": half}
    out: dict[str, tuple[str, int]] = {}
    for name, text, n in (("a", a, na), ("b", b, nb)):
        if n <= share[name]:
            out[name] = (text, 0)
            continue
        keep = share[name] - marker
        if keep < MIN_KEPT_TOKENS:
            return None
        out[name] = cut_middle(text, keep, counter)
    return out["a"][0], out["b"][0], (out["a"][1], out["b"][1])
