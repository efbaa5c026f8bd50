import pytest

from writing_rl.text_metrics import count_length, length_score, repetition_ratio


def test_count_length_mixes_chinese_characters_and_english_words():
    assert count_length("Hello, world!") == 2
    assert count_length("秋天的早晨") == 5
    assert count_length("我爱 Python 和 open-source code") == 3 + 3  # 我 爱 和 + Python, open-source, code
    assert count_length("") == 0


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
