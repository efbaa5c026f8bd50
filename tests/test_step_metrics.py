"""One writer of the per-step metric names: the TRL engine's logged metrics and verl's metrics.jsonl line agree on
every key they share, for the same rollout records."""

from __future__ import annotations

import json

import pytest

from writing_rl.curriculum import Curriculum, CurriculumConfig, CurriculumStore
from writing_rl.data import Sample
from writing_rl.engines.trl_grpo import WritingReward
from writing_rl.judge import JudgeConfig, build_judge
from writing_rl.judge.judgement import Judgement
from writing_rl.judge.screen import Injection
from writing_rl.judge.verdict import Verdict
from writing_rl.reasons import Reason
from writing_rl.reward import ExtraRewards, PairReward, PairwiseReward, RewardConfig
from writing_rl.rollouts import RolloutRecord
from writing_rl.verl.groups import CurriculumGroups, GroupSettings

SAMPLES = [Sample(id=i, prompt="Write.", references=["r0", "r1", "r2"], length=4) for i in range(2)]
EXTRAS = ExtraRewards(length_weight=0.5)


def pair(outcome: str | None, **kw: object) -> PairReward:
    reward = None if outcome is None else {"win": 1.0, "tie": 0.5, "loss": 0.0}[outcome]
    verdict = Verdict.UNKNOWN if outcome is None else Verdict.B
    return PairReward(reward, outcome, (Judgement(verdict, **kw),), ("reference_first",))  # type: ignore[arg-type]


def batch() -> list[RolloutRecord]:
    """Two groups of three: every outcome, an unknown with its reason, a cut answer, an injection penalty."""
    pairs = [
        pair("win"),
        pair("win", truncated=(3, 0)),
        pair("tie"),
        pair("loss"),
        pair(None, reason=Reason.TIMEOUT, error="timed out"),
        PairReward(0.0, "loss", (), injection=Injection(("role_tag",), "[[A]]")),
    ]
    return [
        RolloutRecord.of_pair(
            step=1,
            sample=SAMPLES[i // 3],
            index=i % 3,
            level=0,
            text="one two three",
            pair=p,
            extras=EXTRAS,
            max_text_chars=99,
        )
        for i, p in enumerate(pairs)
    ]


def trl_line(tmp_path, records: list[RolloutRecord]) -> dict[str, float]:
    judge = build_judge(JudgeConfig(backend="rule", rule={"name": "low_repetition"}))
    fn = WritingReward(SAMPLES, PairwiseReward(judge, RewardConfig()), Curriculum(CurriculumConfig(), tmp_path / "t"))
    fn.levels = {}
    logged: dict[str, float] = {}
    fn.settle(records, step=0, local={"time/judge_s": 0.0}, log_metric=logged.__setitem__)
    fn.reward.close()
    return logged


def verl_line(tmp_path, records: list[RolloutRecord]) -> dict[str, float]:
    metrics = tmp_path / "metrics.jsonl"
    cur = Curriculum(CurriculumConfig(), CurriculumStore(tmp_path / "v.sqlite"))
    groups = CurriculumGroups(cur, GroupSettings(group_size=3), metrics)
    for i, r in enumerate(records):
        uid = f"group-{r.sample}"
        level = groups.assign(uid, r.sample, r.n_levels, r.step)
        groups.report(uid, f"{uid}/{i}", r.sample, r.n_levels, level, r.outcome, r.step, r)
    groups.finish()
    [row] = [json.loads(x) for x in metrics.read_text().splitlines()]
    return row


def test_trl_and_verl_write_the_same_metrics_for_the_same_records(tmp_path):
    records = batch()
    trl, verl = trl_line(tmp_path, records), verl_line(tmp_path, records)
    shared = set(trl) & set(verl)
    expected = {
        "judge/win_rate", "judge/tie_rate", "judge/loss_rate", "judge/unknown_rate", "judge/injection_rate",
        "judge/truncated_rate", "judge/missing/timeout", "reward/pairwise", "reward/length",
        "curriculum/promotions", "curriculum/mean_level",
    }  # fmt: skip
    assert expected <= shared
    assert {k: verl[k] for k in shared} == pytest.approx({k: trl[k] for k in shared})
    assert trl["judge/win_rate"] == pytest.approx(2 / 6) and trl["judge/missing/timeout"] == 1.0
    assert {k for k in verl if k.startswith("curriculum/")} >= {
        "curriculum/groups",
        "curriculum/flushed_groups",
        "curriculum/duplicate_reports",
        "curriculum/refused_reports",
    }
