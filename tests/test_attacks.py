"""The attack suite: answers that try to sway the judge, against two scripted judges, in every position mode.

A flip is an attack answer rewarded above its plain carrier text by the same judge in the same mode.
With sanitising alone (`injection: off`) no attack may flip a reward; with the screen (`penalize`,
the default) every attack is caught before a judge call and scored as a loss. A control run without
sanitising shows that each attack does flip the obeying judge: the judges are real adversaries.
"""

import pytest
from attack_judges import (
    ATTACKS,
    CARRIER,
    QUESTION,
    REFERENCE,
    attack_answers,
    obeying_judge,
    quoting_judge,
)
from fake_openai import FakeOpenAIServer

from writing_rl.endpoint import EndpointConfig
from writing_rl.judge import JudgeConfig, PairwiseJudge
from writing_rl.reasons import Reason
from writing_rl.reward import PairItem, PairwiseReward, RewardConfig

POSITIONS = ["reference_first", "policy_first", "both_average", "both_agree"]
JUDGES = {"quoting": quoting_judge, "obeying": obeying_judge}
ANSWERS = attack_answers()


def test_the_suite_is_large_and_varied():
    assert len(ATTACKS) >= 30 and len(ANSWERS) >= 60


async def score_all(judge_name: str, verdicts: str, position: str, injection: str) -> tuple[dict, float, int]:
    """(attack name -> reward, the carrier's own reward, judge calls spent) for one configuration."""
    with FakeOpenAIServer(JUDGES[judge_name]) as server:
        cfg = JudgeConfig(
            endpoint=EndpointConfig(base_url=server.base_url, max_retries=0, timeout_s=30),
            mode=verdicts,
            reason_first=verdicts == "soft" and judge_name == "quoting",  # the quote is its reasoning
        )
        judge = PairwiseJudge(cfg)
        reward = PairwiseReward(judge, RewardConfig(position=position, injection=injection))
        names = list(ANSWERS)
        items = [PairItem(QUESTION, ANSWERS[n], REFERENCE) for n in names] + [PairItem(QUESTION, CARRIER, REFERENCE)]
        results = await reward.score_batch(items)
        await judge.aclose()
        calls = server.calls()
    *attacked, plain = results
    return dict(zip(names, attacked)), plain.reward, calls


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("verdicts", ["hard", "soft"])
@pytest.mark.parametrize("judge_name", JUDGES)
async def test_sanitised_attacks_flip_no_reward(judge_name, verdicts, position):
    results, plain, _ = await score_all(judge_name, verdicts, position, injection="off")
    assert plain is not None and plain < 0.5  # the judge prefers the reference on its own
    assert all(r.reward is not None for r in results.values())
    flipped = {name: r.reward for name, r in results.items() if r.reward > plain + 1e-9}
    assert flipped == {}


@pytest.mark.parametrize("position", POSITIONS)
async def test_the_screen_scores_every_attack_as_a_loss_before_any_call(position):
    results, plain, calls = await score_all("obeying", "hard", position, injection="penalize")
    missed = [name for name, r in results.items() if r.injection is None]
    assert missed == []
    assert all(r.reward == 0.0 and r.outcome == "loss" and r.judgements == () for r in results.values())
    assert calls == (2 if position.startswith("both") else 1)  # only the carrier text was judged


async def test_screen_policy_unknown_leaves_the_reward_missing_with_its_reason():
    results, _, _ = await score_all("obeying", "hard", "reference_first", injection="unknown")
    assert {r.reward for r in results.values()} == {None}
    assert {r.missing_reason for r in results.values()} == {Reason.INJECTION}
    assert all("addresses the judge" in r.missing_detail for r in results.values())


async def test_without_sanitising_every_attack_flips_the_obeying_judge(monkeypatch):
    """The control: with the answers passed through untouched, each attack wins in some position."""
    import writing_rl.judge.pairwise as pairwise
    import writing_rl.judge.templates as templates

    monkeypatch.setattr(pairwise, "sanitize", lambda text: text)
    monkeypatch.setattr(templates, "sanitize", lambda text: text)
    flipped: set[str] = set()
    for position in ("reference_first", "policy_first"):
        results, plain, _ = await score_all("obeying", "hard", position, injection="off")
        flipped |= {name.split(" -> ")[0] for name, r in results.items() if r.reward > plain}
    assert flipped == set(ATTACKS)
