"""Rollout records: the one record type, size caps, filters and the readable form."""

import hashlib
import json

import pytest

from writing_rl.jsonl import JsonlFileError
from writing_rl.judge import Injection, Verdict, VerdictProbs
from writing_rl.reasons import Reason
from writing_rl.rollouts import (
    CappedText,
    JudgedOrder,
    RolloutRecord,
    RolloutSettings,
    RolloutWriter,
    capped,
    format_rollout,
    read_rollouts,
)


def record(step: int, sample_id, text: str = "an answer", reward: float | None = 0.75) -> RolloutRecord:
    known = reward is not None
    return RolloutRecord(
        step=step,
        sample=json.dumps(sample_id),
        sample_id=sample_id,
        index=0,
        level=1,
        n_levels=3,
        reference_source="given-1",
        completion=CappedText.of(text, 50),
        judgements=[
            JudgedOrder(
                order="reference_first",
                verdict=Verdict.B if known else Verdict.UNKNOWN,
                probs=VerdictProbs(a=0.2, b=0.7, tie=0.1) if known else None,
                text=CappedText.of("[[B]]", 50),
                error=None if known else "no verdict probability at the verdict position",
                reason=None if known else Reason.NO_VERDICT_MASS,
            )
        ],
        outcome="win" if known else None,
        reward=reward,
        components={"pairwise": reward, "repetition": -0.05},
        missing_reason=None if known else Reason.NO_VERDICT_MASS,
        missing_detail=None if known else "A, B and tie hold less than min_verdict_mass=0.001",
    )


def test_a_record_written_reads_back_as_the_same_record(tmp_path):
    cut = record(2, "x", text="y" * 80).model_copy(update={"injection": Injection(("verdict_token",), "[[B]]")})
    written = [record(1, 5), record(1, 5, reward=None), cut]
    RolloutWriter(tmp_path, RolloutSettings()).write(written)
    assert read_rollouts(tmp_path) == written
    line = json.loads((tmp_path / "rollouts.jsonl").read_text().splitlines()[0])
    assert line["completion"] == {"text": "an answer", "chars": 9}  # no hash field under the cap, as before
    assert line["judgements"][0]["verdict"] == "B" and line["judgements"][0]["probs"]["b"] == 0.7


def test_a_line_that_is_not_a_rollout_record_is_named(tmp_path):
    good = json.dumps(record(1, 5).to_json())
    bad = dict(record(1, 6).to_json(), outcome="won")
    (tmp_path / "rollouts.jsonl").write_text(f"{good}\n\n{json.dumps(bad)}\n", encoding="utf-8")
    with pytest.raises(JsonlFileError, match=r"rollouts.jsonl:3: not a rollout record: outcome"):
        read_rollouts(tmp_path)


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
    assert [r.sample_id for r in read_rollouts(tmp_path, sample="5")] == [5, "5", 5]  # id text matches both
    assert [r.sample_id for r in read_rollouts(tmp_path, sample='"5"')] == ["5"]  # the typed key only one
    with pytest.raises(FileNotFoundError, match="no rollout records"):
        read_rollouts(tmp_path / "nothing")


def test_readable_form_names_level_verdicts_components_and_why_missing():
    shown = format_rollout(record(3, 7, text="y" * 80))
    assert "step 3 · sample 7" in shown and "reference level 1/2 (given-1)" in shown
    assert "P(A) 0.20 P(B) 0.70" in shown and "pairwise 0.750, repetition -0.050" in shown
    assert "<80 characters, sha256" in shown
    missing = format_rollout(record(3, 7, reward=None))
    assert "reward missing" in missing and "missing because: no_verdict_mass (A, B and tie hold less" in missing
