"""Rollout records: size caps, filters and the readable form."""

import hashlib
import json

import pytest

from writing_rl.rollouts import RolloutSettings, RolloutWriter, capped, format_rollout, read_rollouts


def record(step: int, sample_id, text: str = "an answer", reward: float | None = 0.75) -> dict:
    return {
        "step": step,
        "sample": json.dumps(sample_id),
        "sample_id": sample_id,
        "index": 0,
        "level": 1,
        "n_levels": 3,
        "reference_source": "given-1",
        "completion": capped(text, 50),
        "judgements": [
            {
                "order": "reference_first",
                "verdict": "B" if reward is not None else "unknown",
                "probs": {"a": 0.2, "b": 0.7, "tie": 0.1} if reward is not None else None,
                "text": capped("[[B]]", 50),
                "error": None if reward is not None else "no verdict probability at the verdict position",
                "cached": False,
            }
        ],
        "outcome": "win" if reward is not None else None,
        "reward": reward,
        "components": {"pairwise": reward, "repetition": -0.05},
        "injection": None,
        "missing_reason": None if reward is not None else "no_verdict_mass",
        "missing_detail": None if reward is not None else "A, B and tie hold less than min_verdict_mass=0.001",
    }


def test_long_texts_become_hash_and_length():
    assert capped("short", 10) == {"text": "short", "chars": 5}
    long = "x" * 11
    assert capped(long, 10) == {"text": None, "chars": 11, "sha256": hashlib.sha256(long.encode()).hexdigest()}


def test_writer_stops_at_the_size_cap_with_one_warning(tmp_path):
    writer = RolloutWriter(tmp_path, RolloutSettings(max_mb=0.001))  # about 1 KB
    with pytest.warns(UserWarning, match="max_mb"):
        written = writer.write([record(1, i) for i in range(50)])
    assert 0 < written < 50 and writer.stopped
    size = (tmp_path / "rollouts.jsonl").stat().st_size
    assert writer.write([record(2, 0)]) == 0 and (tmp_path / "rollouts.jsonl").stat().st_size == size
    assert RolloutWriter(tmp_path / "off", RolloutSettings(enabled=False)).write([record(1, 0)]) == 0


def test_filters_by_step_and_by_sample_id_or_key(tmp_path):
    RolloutWriter(tmp_path, RolloutSettings()).write([record(1, 5), record(1, "5"), record(2, 5), record(2, "x")])
    assert len(read_rollouts(tmp_path, step=2)) == 2
    assert [r["sample_id"] for r in read_rollouts(tmp_path, sample="5")] == [5, "5", 5]  # id text matches both
    assert [r["sample_id"] for r in read_rollouts(tmp_path, sample='"5"')] == ["5"]  # the typed key only one
    with pytest.raises(FileNotFoundError, match="no rollout records"):
        read_rollouts(tmp_path / "nothing")


def test_readable_form_names_level_verdicts_components_and_why_missing():
    shown = format_rollout(record(3, 7, text="y" * 80))
    assert "step 3 · sample 7" in shown and "reference level 1/2 (given-1)" in shown
    assert "P(A) 0.20 P(B) 0.70" in shown and "pairwise 0.750, repetition -0.050" in shown
    assert "<80 characters, sha256" in shown
    missing = format_rollout(record(3, 7, reward=None))
    assert "reward missing" in missing and "missing because: no_verdict_mass (A, B and tie hold less" in missing
