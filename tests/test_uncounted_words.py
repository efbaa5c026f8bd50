"""scripts/uncounted_words.py: the share of tokens LongBench-Write's word counter does not see (the padding a
policy trained on S_l can hide in)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "uncounted_words.py"


def load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("uncounted_words", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_only_tokens_without_a_counted_word_are_uncounted():
    share = load().uncounted_share
    assert share("A cat naps in the sun.") == 0.0
    assert share("cat 🌸 1056 سرس nap") == 3 / 5  # emoji, a number and another script: invisible to S_l
    assert share("don't x-ray") == 0.0  # counted (as several words), not hidden
    assert share("  ") is None
