"""Rule judges: known-truth verdicts through the same reward path as an LLM judge."""

import pytest

from writing_rl.curriculum import Curriculum, CurriculumConfig
from writing_rl.data import Sample
from writing_rl.judge import JudgeConfig, RuleJudge, RuleJudgeConfig, Verdict, build_judge, rule_score
from writing_rl.reward import PairItem, PairwiseReward, RewardConfig
from writing_rl.text_metrics import keyword_coverage


def sample(length: int = 10, keywords=None, refs=("r0", "r1", "r2")) -> Sample:
    extra = {"keywords": keywords} if keywords is not None else {}
    return Sample(id=1, prompt="Write ten words.", references=list(refs), length=length, **extra)


def words(n: int) -> str:
    return " ".join(["word"] * n)


def test_rule_config_by_name_and_backend_checks():
    cfg = JudgeConfig.model_validate({"backend": "rule", "rule": "length_fit"})
    assert isinstance(build_judge(cfg), RuleJudge) and cfg.rule.tolerance == 5.0
    with pytest.raises(ValueError, match="needs `rule`"):
        JudgeConfig.model_validate({"backend": "rule"})
    with pytest.raises(ValueError, match="backend is 'llm'"):
        JudgeConfig.model_validate({"rule": "length_fit"})
    with pytest.raises(ValueError):
        JudgeConfig.model_validate({"backend": "rule", "rule": "prettiness"})


async def test_length_fit_prefers_the_answer_closer_to_the_target_in_either_position():
    judge = RuleJudge(RuleJudgeConfig(name="length_fit"))
    s = sample(length=10)
    near, far = words(10), words(25)  # S_l 100 vs 50
    assert (await judge.judge("q", near, far, sample=s)).verdict is Verdict.A
    assert (await judge.judge("q", far, near, sample=s)).verdict is Verdict.B
    # within the tolerance (5 points of S_l): 10 vs 11 words scores 100 vs 96.7
    assert (await judge.judge("q", words(10), words(11), sample=s)).verdict is Verdict.TIE
    j = await judge.judge("q", near, far, sample=s)
    assert "10 of 10 words" in j.text and "25 of 10 words" in j.text and j.text.endswith("[[A]]")
    # each judgement is one call (the judge/calls metric and the spend ledger read these)
    stats = judge.call_stats()
    assert stats["calls"] == 4 and stats["retries"] == 0 and stats["latency_s"] >= 0


async def test_length_fit_counts_like_the_evaluation_cjk_characters():
    judge = RuleJudge(RuleJudgeConfig(name="length_fit", tolerance=0))
    s = Sample(id="zh", prompt="写十个字", references=["x"], length=10, lang="zh")
    assert rule_score("length_fit", "秋天的早晨校园很安静", s) == 100.0
    assert (await judge.judge("q", "秋天的早晨校园很安静", "秋天", sample=s)).verdict is Verdict.A


async def test_missing_target_is_unknown_with_a_reason_not_a_loss():
    judge = RuleJudge(RuleJudgeConfig(name="length_fit"))
    reward = PairwiseReward(judge)
    s = Sample(id=2, prompt="no target", references=["r"])
    [r] = await reward.score_batch([PairItem("q", "policy", "reference", sample=s)])
    assert r.reward is None and r.outcome is None and "target `length`" in r.missing_detail
    assert r.missing_reason == "not_applicable"
    [r] = await reward.score_batch([PairItem("q", "policy", "reference")])  # no sample at all
    assert r.reward is None


def test_keyword_coverage_whole_words_any_case_and_cjk_substrings():
    assert keyword_coverage("The Lantern swung; harbours were calm.", ["lantern", "harbour", "salt"]) == 1 / 3
    assert keyword_coverage("书店开业，欢迎来读书", ["书店", "咖啡"]) == 0.5
    with pytest.raises(ValueError):
        keyword_coverage("text", [])


async def test_keyword_coverage_rule_is_not_about_length():
    judge = RuleJudge(RuleJudgeConfig(name="keyword_coverage", tolerance=0))
    s = sample(keywords=["lantern", "harbour", "salt"])
    short_all = "Salt air, a lantern, the harbour."
    long_none = words(200)
    assert (await judge.judge("q", long_none, short_all, sample=s)).verdict is Verdict.B
    j = await judge.judge("q", short_all, long_none, sample=sample())  # no keywords on the sample
    assert j.verdict is Verdict.UNKNOWN and "keywords" in j.error


@pytest.mark.parametrize("position", ["reference_first", "policy_first", "both_average", "both_agree"])
async def test_every_position_mode_gives_the_rule_s_truth(position):
    reward = PairwiseReward(RuleJudge(RuleJudgeConfig(name="length_fit")), RewardConfig(position=position))
    s = sample(length=10)
    good, bad = await reward.score_batch([PairItem("q", words(10), words(30), sample=s), PairItem("q", words(30), words(10), sample=s)])
    assert (good.outcome, good.reward) == ("win", 1.0)
    assert (bad.outcome, bad.reward) == ("loss", 0.0)
    assert len(good.judgements) == len(good.orders) == (2 if position.startswith("both") else 1)


async def test_position_bias_is_seeded_and_cancelled_by_judging_both_orders():
    cfg = RuleJudgeConfig(name="length_fit", position_bias=0.5, seed=3)
    s = sample(length=10)
    pairs = [PairItem("q", words(10 + (i % 3)), words(30 + i), sample=s) for i in range(200)]  # policy always better
    first = await PairwiseReward(RuleJudge(cfg), RewardConfig(position="reference_first")).score_batch(pairs)
    again = await PairwiseReward(RuleJudge(cfg), RewardConfig(position="reference_first")).score_batch(pairs)
    assert [r.outcome for r in first] == [r.outcome for r in again]  # same pair, same verdict
    losses = sum(r.outcome == "loss" for r in first) / len(first)
    assert 0.35 < losses < 0.65  # the biased judge hands position A (the reference) about half
    both = await PairwiseReward(RuleJudge(cfg), RewardConfig(position="both_average")).score_batch(pairs)
    assert sum(r.outcome == "loss" for r in both) == 0  # a loss needs the reference preferred in both orders
    other_seed = RuleJudge(cfg.model_copy(update={"seed": 4}))
    changed = await PairwiseReward(other_seed, RewardConfig(position="reference_first")).score_batch(pairs)
    assert [r.outcome for r in changed] != [r.outcome for r in first]


async def test_noise_flips_about_that_share_of_verdicts():
    judge = RuleJudge(RuleJudgeConfig(name="length_fit", noise=0.2, seed=1))
    s = sample(length=10)
    verdicts = [(await judge.judge(f"q{i}", words(10), words(30), sample=s)).verdict for i in range(500)]
    flipped = verdicts.count(Verdict.B) / len(verdicts)
    assert 0.14 < flipped < 0.26 and Verdict.A in verdicts


def test_fixed_schedule_uses_one_level_and_never_moves(tmp_path):
    s = sample()
    strongest = Curriculum(CurriculumConfig(schedule="fixed"), tmp_path / "a.sqlite")
    assert [strongest.level(s, step) for step in (0, 5, 50)] == [2, 2, 2]
    assert strongest.record(s, 2, ["win", "win"], 0) == (2, False)
    assert Curriculum(CurriculumConfig(schedule="fixed", fixed_level=1), tmp_path / "b.sqlite").level(s, 0) == 1
    assert Curriculum(CurriculumConfig(schedule="fixed", fixed_level=7), tmp_path / "c.sqlite").level(s, 0) == 2


class LeaningSoftJudge:
    """A soft judge that leans towards position A by `bias` but still prefers the better answer a little."""

    def __init__(self, bias: float):
        from writing_rl.judge import JudgeStats

        self.bias = bias
        self.stats = JudgeStats()

    async def judge(self, question, answer_a, answer_b, criteria=None, sample=None):
        from writing_rl.judge import Judgement, VerdictProbs

        edge = 0.1 * (("GOOD" in answer_a) - ("GOOD" in answer_b))
        a = min(max(0.5 + self.bias + edge, 0.0), 0.9)
        probs = VerdictProbs(a=a, b=0.9 - a, tie=0.1)
        return Judgement(probs.argmax, probs=probs)


async def test_soft_both_average_outcome_cancels_position_bias():
    reward = PairwiseReward(LeaningSoftJudge(bias=0.3), RewardConfig(position="both_average"))
    better, worse = await reward.score_batch([PairItem("q", "GOOD", "plain"), PairItem("q", "plain", "GOOD")])
    # each order alone says "A wins"; averaged over both orders the better answer wins
    assert [j.verdict for j in better.judgements] == [Verdict.A, Verdict.A]
    assert better.outcome == "win" and better.reward > 0.5
    assert worse.outcome == "loss" and worse.reward < 0.5
    [even] = await reward.score_batch([PairItem("q", "plain", "plain")])
    assert even.outcome == "tie"
