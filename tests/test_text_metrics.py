import pytest

from writing_rl.text_metrics import count_length, length_score, repetition_ratio


# Worked out by hand from LongBench-Write's `count_words` (THUDM/LongWriter, evaluation/pred.py):
# re.findall(r"[\u4e00-\u9fff]") + re.findall(r"\b[a-zA-Z]+\b"), where Python's \b is Unicode-aware.
@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello, world!", 2),
        ("秋天的早晨", 5),
        ("", 0),
        ("我爱 Python 和 open-source code", 3 + 4),  # 我 爱 和 + Python, open, source, code
        ("我爱Python和open-source code", 3 + 2),  # 爱 and 和 are word characters: only source, code
        ("Python，很好。", 1 + 2),  # full-width punctuation is a boundary
        ("don't stop", 3),  # don, t, stop
        ("In 2024, GPT-4 scored 95.3% on 3D tasks", 5),  # In, GPT, scored, on, tasks: no numbers, no "3D"
        ("café naïve résumé", 0),  # ASCII runs glued to accented letters have no boundary
        ("snake_case and x2", 1),  # "_" and digits are word characters: only "and"
        # CJK extension A and B, a compatibility ideograph, full-width Latin, kana: none counted
        ("\u3400\U00020000\uf900 ＡＢＣ こんにちは", 0),
    ],
)
def test_count_length_is_longbench_writes_count_words(text, expected):
    assert count_length(text) == expected


@pytest.mark.parametrize(
    "required, output, expected",
    [
        (100, 100, 100.0),
        (100, 250, 50.0),  # too long: 1 - (2.5 - 1) / 3 = 0.5
        (100, 400, 0.0),  # 1 - 3/3
        (100, 1000, 0.0),  # floored at 0
        (100, 50, 50.0),  # too short: 1 - (2 - 1) / 2 = 0.5
        (300, 100, 0.0),  # 1 - (3 - 1) / 2 = 0
        (100, 0, 0.0),
    ],
)
def test_length_score_matches_longbench_write(required, output, expected):
    assert length_score(required, output) == pytest.approx(expected)


def test_length_score_needs_a_positive_requirement():
    with pytest.raises(ValueError):
        length_score(0, 10)


def test_repetition_ratio():
    assert repetition_ratio("the quick brown fox jumps over the lazy dog") == 0.0
    looped = "I love writing. " * 20
    assert repetition_ratio(looped) > 0.9
    assert repetition_ratio("short") == 0.0
    assert 0 < repetition_ratio("a b c d e a b c d f") < 0.5
