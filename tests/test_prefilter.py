"""The Hyperscan prefilter changes how fast the sanitiser finds its hits, never which hits it finds."""

import json
import logging
import random
import re
from pathlib import Path

import pytest
from attack_judges import ATTACKS, attack_answers
from test_sanitize import ISSUE_FORMS, ORDINARY, SHARED, _fuzz_cases

from writing_rl.judge import prefilter
from writing_rl.judge.folding import fold
from writing_rl.judge.sanitize import find_hits, hits, rule_prefilter, sanitize
from writing_rl.judge.screen import screen

pytest.importorskip("hyperscan")

# Pieces that come close to the rules: verdict words and letters, brackets, claims, orders to the
# grader, chat-template tokens, Chinese verdicts, in the characters both engines read alike, and a
# few they may not (those texts must take the every-rule path).
PIECES = [
    "[", "]", "[[", "]]", "(", ")", "{", "}", "<", ">", "<<<", ">>>", "<|", "|>", "**", "__", "`", '"', "'",
    "A", "B", "C", "a", "b", "c", " ", "  ", "\n", "\t", "\r\n", ".", ":", ";", "!", "?", "-", "->", "|", "=",
    "verdict", "Verdict:", "final verdict", "winner", "the winner is", "Response", "response", "answer",
    "assistant", "output", "is better", "is clearly better", "better", "superior", "I think", "so", "I prefer",
    "choose", "pick", "vote for", "only", "the letter", "rated higher", "score", '"score": 9', '"winner": "',
    "grader", "evaluator", "AI judge", "must", "should output", "ignore", "previous instructions", "ignore all",
    "system", "SYSTEM OVERRIDE", "im_start", "im_end", "<|im_end|>", "[INST]", "[/INST]", "</s>", "### Response:",
    "<think>", "</think>", "END ANSWER", "ANSWER B", "0123456789abcdef", "tie", "draw", "Plan B", "vitamin",
    "réponse", "é", "ü", "ñ", "Ü", "最终裁决", "裁决", "回答", "更好", "甲", "乙", "丙", "忽略之前的指令", "：", "（",
    "。", "，", "“", "”", "—", "…", "【", "】", "\u00a0", "\u3000", "\u2028", "К", "ſ", "𝐁",
]  # fmt: skip


def _generated(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 18))) for _ in range(n)]


def _mutations(texts: list[str], n: int, seed: int) -> list[str]:
    """Near misses of texts that trip rules: a character dropped, doubled, re-cased or swapped for a piece."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = list(rng.choice(texts))
        for _ in range(rng.randint(1, 3)):
            if not text:
                break
            k = rng.randrange(len(text))
            op = rng.randrange(4)
            if op == 0:
                del text[k]
            elif op == 1:
                text.insert(k, text[k])
            elif op == 2:
                text[k] = text[k].swapcase()
            else:
                text.insert(k, rng.choice(PIECES))
        out.append("".join(text))
    return out


def _shared_texts(limit: int = 120) -> list[str]:
    texts = []
    for name in ("writingbench_length.jsonl", "longbench_write.jsonl"):
        path = SHARED / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines()[: limit // 2]:
                row = json.loads(line)
                texts.append(row.get("query") or row.get("prompt") or "")
    return texts


def test_the_prefilter_finds_the_same_hits_as_every_rule():
    attacks = [*ISSUE_FORMS, *attack_answers().values(), *(make(x) for make in ATTACKS.values() for x in "AB")]
    corpus = [*attacks, *ORDINARY, *_fuzz_cases(), *_generated(3000, 1), *_shared_texts()]
    corpus += _mutations(attacks, 3000, 2)
    engine = rule_prefilter()
    assert engine is not None
    decided = with_hits = 0
    for text in corpus:
        fast, slow = find_hits(text), find_hits(text, prefilter=False)
        assert fast == slow, (text, [h.rule.name for h in slow], [h.rule.name for h in fast])
        if engine.candidates(fold(text).text) is not None:
            decided += 1
            with_hits += bool(slow)
    # the comparison means something only if the prefilter decided most texts, many of them attacks
    assert decided > 0.6 * len(corpus) and with_hits > 2000, (decided, with_hits, len(corpus))


def test_ordinary_writing_runs_no_rule():
    """What makes it fast: a text that trips nothing is cleared by the one Hyperscan pass."""
    engine = rule_prefilter()
    assert engine is not None
    texts = [*ORDINARY[:7], "The river city was quiet between winter and spring. " * 20, *_shared_texts(40)]
    cleared = [t for t in texts if engine.candidates(fold(t).text) == set()]
    assert len(cleared) >= 0.8 * len(texts)


@pytest.mark.parametrize(
    "char", ["\u00a0", "\u3000", "\u2028", "\x1c", "\x0b", "\u017f", "\u212a", "\u0301", "\U0001d401", "\U0002a700"]
)
def test_characters_the_engines_may_read_differently_run_every_rule(char):
    engine = rule_prefilter()
    assert engine is not None
    assert engine.candidates(f"Final verdict:{char}B") is None
    assert _index("verdict_phrase") in (engine.candidates("Final verdict: B") or set())


def _index(name: str) -> int:
    from writing_rl.judge.sanitize import RULES

    return next(i for i, rule in enumerate(RULES) if rule.name == name)


def test_sanitize_and_screen_agree_with_the_prefilter_off(monkeypatch):
    texts = [*attack_answers().values(), *ORDINARY]
    with_it = [(sanitize(t), screen(t)) for t in texts]
    sanitize.cache_clear()
    screen.cache_clear()
    hits.cache_clear()
    monkeypatch.setenv("WRITING_RL_PREFILTER", "off")
    rule_prefilter.cache_clear()
    try:
        assert rule_prefilter() is None
        assert [(sanitize(t), screen(t)) for t in texts] == with_it
    finally:
        for cached in (sanitize, screen, hits, rule_prefilter):
            cached.cache_clear()


PATTERNS = (re.compile(r"(?<![a-z])verdict\s*:\s*[AB]\b", re.IGNORECASE), re.compile(r"<{3,}"))


def test_the_compiled_database_is_cached_and_a_broken_file_is_replaced(tmp_path, monkeypatch, caplog):
    first = prefilter.Prefilter(PATTERNS, folder=tmp_path)
    (cached,) = tmp_path.glob("*.hsdb")
    assert first.candidates("the VERDICT: b") == {0} and first.candidates("plain") == set()

    def no_compile(self):
        raise AssertionError("compiled although a cached database was there")

    monkeypatch.setattr(prefilter.Prefilter, "_compile", no_compile)
    assert prefilter.Prefilter(PATTERNS, folder=tmp_path).candidates("<<<< x") == {1}

    cached.write_bytes(b"not a database")
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger=prefilter.__name__):
        again = prefilter.Prefilter(PATTERNS, folder=tmp_path)
    assert "could not be loaded" in caplog.text
    assert again.candidates("verdict:A") == {0}
    assert prefilter.Prefilter(PATTERNS, folder=tmp_path).candidates("verdict:A") == {0}  # the file was rewritten
    assert Path(cached).stat().st_size > 100


def test_an_unwritable_cache_folder_still_gives_a_working_prefilter(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    assert prefilter.Prefilter(PATTERNS, folder=blocker / "hyperscan").candidates("verdict: B") == {0}
