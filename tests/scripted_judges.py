"""Judges over HTTP whose preferences are known, and tiered samples built to follow them.

Each judge reads the writing request and both fenced answers out of the real prompt (so what it
decides depends on what the prompt carried) and answers through the scripted OpenAI-compatible server:
a written verdict on /chat/completions (hard mode), the verdict token's log-probabilities on
/completions (soft mode). Replies report `usage` as a server would.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable
from pathlib import Path

from fake_openai import chat_reply, completion_reply, fenced_answers

from writing_rl.text_metrics import count_length

Decide = Callable[[str, str, str], str]  # (question, answer A, answer B) -> "A" | "B" | "C"
VOCAB = [
    "river",
    "stone",
    "lantern",
    "harbour",
    "meadow",
    "quiet",
    "amber",
    "window",
    "garden",
    "letter",
    "morning",
    "copper",
    "thread",
]
KEYWORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def _target(question: str) -> int:
    return int(re.search(r"about (\d+) words", question).group(1))  # type: ignore[union-attr]


def closer_to_target(question: str, a: str, b: str) -> str:
    """The answer whose length is closer (in log ratio) to the request's 'about N words' wins."""
    t = _target(question)
    da, db = abs(math.log(count_length(a) / t)), abs(math.log(count_length(b) / t))
    return "C" if abs(da - db) < 1e-9 else "A" if da < db else "B"


def more_keywords(question: str, a: str, b: str) -> str:
    """The answer using more of the fixed keywords wins, whatever its length."""
    ka, kb = (len(set(KEYWORDS) & set(re.findall(r"[a-z]+", text.lower()))) for text in (a, b))
    return "C" if ka == kb else "A" if ka > kb else "B"


def longer_wins(question: str, a: str, b: str) -> str:
    la, lb = count_length(a), count_length(b)
    return "C" if la == lb else "A" if la > lb else "B"


def always_first(question: str, a: str, b: str) -> str:
    return "A"


def judge_behaviour(decide: Decide, usage: tuple[int, int] = (300, 12)):  # type: ignore[no-untyped-def]
    """A FakeOpenAIServer behaviour that judges every request with `decide`."""

    def behaviour(path: str, body: dict, n: int) -> tuple:
        prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        if "[Writing request]" not in prompt:  # `writing-rl check` asks for one token first
            return chat_reply("OK") if "messages" in body else completion_reply("OK", {"OK": -0.1})
        question = prompt.rsplit("[Writing request]", 1)[1].split("<<<ANSWER A", 1)[0].strip()
        a, b = (text.strip() for text in fenced_answers(prompt))
        verdict = decide(question, a, b)
        tokens = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
        if path.endswith("chat/completions"):
            choice = {"index": 0, "message": {"role": "assistant", "content": f"Compared.\n[[{verdict}]]"}}
        else:
            top = {letter: math.log(0.9 if letter == verdict else 0.04) for letter in "ABC"} | {" The": math.log(0.02)}
            choice = {"index": 0, "text": verdict, "logprobs": {"tokens": [verdict], "top_logprobs": [top]}}
        return ("json", {"choices": [choice], "usage": tokens})

    return behaviour


def words(n: int, rng: random.Random, extra: list[str] = ()) -> str:  # type: ignore[assignment]
    """`n` words: the `extra` ones first, then filler."""
    filler = [rng.choice(VOCAB) for _ in range(max(0, n - len(extra)))]
    body = list(extra) + filler
    return " ".join(body[:n]).capitalize() + "."


def length_tiered(path: Path, prompts: int = 12, seed: int = 0) -> Path:
    """Tiers that follow `closer_to_target`: far too long, too short, on target (weakest first), so the
    stronger of a pair is sometimes the shorter, sometimes the longer."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(prompts):
            t = 20 + 5 * i
            refs = [words(4 * t, rng), words(t // 2, rng), words(t, rng)]
            fh.write(json.dumps({"id": i, "prompt": f"Write about {t} words on topic {i}.", "references": refs}) + "\n")
    return path


def keyword_tiered(path: Path, prompts: int = 12, seed: int = 0, stronger_longer: bool = True) -> Path:
    """Tiers that follow `more_keywords` (1, 3, then 6 keywords, placed first). With `stronger_longer`
    each tier is also longer than the one below, as real references often are; else lengths are mixed."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(prompts):
            lengths = [20, 45, 90] if stronger_longer else rng.sample([30, 60, 90], 3)
            refs = [words(n, rng, rng.sample(KEYWORDS, k)) for n, k in zip(lengths, (1, 3, 6))]
            fh.write(
                json.dumps({"id": i, "prompt": f"Write about {lengths[-1]} words on topic {i}.", "references": refs})
                + "\n"
            )
    return path
