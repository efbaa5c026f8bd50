"""The judge audit against judges whose preferences are known, over HTTP on loopback."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from fake_openai import FakeOpenAIServer
from scripted_judges import (
    always_first,
    closer_to_target,
    judge_behaviour,
    keyword_tiered,
    length_tiered,
    longer_wins,
    more_keywords,
)
from typer.testing import CliRunner

from writing_rl.audit import AuditSettings
from writing_rl.audit.command import AuditInputs, run_audit
from writing_rl.audit.pairs import candidate_pairs, choose_pairs, control_pairs, shorten
from writing_rl.cli import app
from writing_rl.config import LocalJudgeSettings
from writing_rl.data import Sample, load_samples
from writing_rl.eval.stats import cluster_bootstrap, spearman
from writing_rl.judge import JudgeConfig
from writing_rl.reward import RewardConfig
from writing_rl.text_metrics import count_length


def judge_config(base_url: str, mode: str = "hard", cache: str | None = None) -> JudgeConfig:
    return JudgeConfig.model_validate(
        {"mode": mode, "endpoint": {"base_url": base_url, "max_retries": 0, "timeout_s": 60}, "cache_path": cache}
    )


def audit(tmp_path, decide, data, position="both_average", mode="hard", pairs=24):  # type: ignore[no-untyped-def]
    with FakeOpenAIServer(judge_behaviour(decide)) as server:
        inputs = AuditInputs(
            judge_config(server.base_url, mode),
            RewardConfig(position=position),
            local=LocalJudgeSettings(),
            samples=load_samples(str(data)),
            where=str(data),
        )
        result = run_audit(inputs, AuditSettings(pairs=pairs), tmp_path / "audit", cache=False, progress=False)
        requests = server.calls()
    return result, requests


# -- the known-truth judges -----------------------------------------------------------------------------------
def test_a_judge_that_follows_the_tiers_agrees_with_them(tmp_path):
    result, requests = audit(tmp_path, more_keywords, keyword_tiered(tmp_path / "k.jsonl", stronger_longer=False))
    f = result.figures
    assert requests == 2 * (f.pairs + f.control_pairs) and f.pairs == 24
    assert f.tier_agreement.estimate == 1.0 and f.adjacent_tier_agreement.estimate == 1.0
    assert f.reward_agreement.estimate == 1.0 and f.swap_consistency.estimate == 1.0
    assert f.first_position_rate.estimate == pytest.approx(0.5)
    assert f.stronger_win_rate.estimate == 1.0 and f.weaker_win_rate.estimate == 0.0
    assert f.unknown_rate == 0.0 and f.net_preference.estimate == 1.0
    assert result.verdict == "usable" and not result.recommendations
    assert result.cost.prompt_tokens_per_call == 300 and result.cost.completion_tokens_per_call == 12


def test_the_length_rule_judge_agrees_with_tiers_built_to_its_rule(tmp_path):
    result, _ = audit(tmp_path, closer_to_target, length_tiered(tmp_path / "l.jsonl"))
    f = result.figures
    assert f.tier_agreement.estimate == 1.0 and f.adjacent_tier_agreement.estimate == 1.0
    assert f.extreme_tier_agreement.estimate == 1.0
    # it is a length judge: the stronger reference cut to the weaker's length is an exact tie for it
    assert f.length_control_agreement.estimate == pytest.approx(0.5) and f.length_control_original.estimate == 1.0
    assert result.verdict == "weak" and "length_driven" in {r.code for r in result.recommendations}


def test_a_judge_that_always_answers_the_first_position_is_useless_and_its_bias_named(tmp_path):
    data = keyword_tiered(tmp_path / "k.jsonl", stronger_longer=False)
    one_order, _ = audit(tmp_path, always_first, data, position="reference_first")
    f = one_order.figures
    assert f.first_position_rate.estimate == 1.0 and f.swap_consistency.estimate == 0.0
    assert f.tier_agreement.estimate == pytest.approx(0.5) and f.reward_agreement.estimate == pytest.approx(0.5)
    assert f.stronger_win_rate.estimate == 0.0  # the reference sits in A: the policy never wins, nothing promotes
    assert one_order.verdict == "useless"
    advice = {r.code: r.text for r in one_order.recommendations}
    assert "both_average" in advice["position_bias"] and "1.00" in advice["position_bias"]
    both, _ = audit(tmp_path, always_first, data, position="both_average")
    assert (
        both.verdict == "useless"
        and "cancelled by both_average" in {r.code: r.text for r in both.recommendations}["position_bias"]
    )


def test_a_judge_that_prefers_the_longer_answer_is_flagged_for_length(tmp_path):
    result, _ = audit(tmp_path, longer_wins, keyword_tiered(tmp_path / "k.jsonl", stronger_longer=True))
    f = result.figures
    assert f.tier_agreement.estimate == 1.0  # on these tiers longer is stronger: agreement alone looks perfect
    assert f.longer_preferred_rate.estimate == 1.0
    assert f.length_control_original.estimate == 1.0 and f.length_control_agreement.estimate == pytest.approx(0.5)
    assert result.verdict == "weak" and "length_driven" in {r.code for r in result.recommendations}
    # the content judge on the same tiers keeps its preference when the stronger is cut to the same length
    content, _ = audit(tmp_path, more_keywords, keyword_tiered(tmp_path / "k.jsonl", stronger_longer=True))
    assert content.figures.length_control_agreement.estimate == 1.0 and content.verdict == "usable"


def test_length_bias_is_a_rank_correlation_with_the_length_ratio(tmp_path):
    # mixed lengths: a longer-wins judge's preference follows the length ratio's sign, not the tiers
    result, _ = audit(tmp_path, longer_wins, keyword_tiered(tmp_path / "k.jsonl", stronger_longer=False), pairs=36)
    assert result.figures.length_bias.estimate > 0.8 and result.figures.length_bias.low > 0.5
    content, _ = audit(tmp_path, more_keywords, keyword_tiered(tmp_path / "k.jsonl", stronger_longer=False), pairs=36)
    assert content.figures.length_bias is None or abs(content.figures.length_bias.estimate) < 0.3


def test_soft_verdicts_read_through_the_completions_route(tmp_path):
    result, _ = audit(tmp_path, more_keywords, keyword_tiered(tmp_path / "k.jsonl", stronger_longer=False), mode="soft")
    f = result.figures
    assert f.tier_agreement.estimate == 1.0 and f.net_preference.estimate == pytest.approx(
        (0.9 - 0.04) / 0.98
    )  # renormalised over A, B, tie
    assert f.verdict_mass == pytest.approx(0.98, abs=0.01) and result.verdict == "usable"


def test_unknown_verdicts_are_counted_by_reason_and_make_the_judge_useless(tmp_path):
    def mute(question: str, a: str, b: str) -> str:
        return "no verdict here"  # judge_behaviour writes it where the verdict goes: no [[X]] on the last line

    result, _ = audit(tmp_path, mute, keyword_tiered(tmp_path / "k.jsonl"))
    assert result.figures.unknown_rate == 1.0 and result.figures.unknown_reasons == {"parse": result.figures.calls}
    assert result.verdict == "useless" and "parse" in result.verdict_reasons[0]


# -- the pairs ----------------------------------------------------------------------------------------------------
def sample(i: int, refs: list[str], scores: list[float] | None = None) -> Sample:
    return Sample(id=i, prompt=f"p{i}", references=refs, reference_scores=scores)


def test_pairs_alternate_adjacent_and_wide_and_spread_over_prompts():
    samples = [sample(i, [f"r{i}-{k}" for k in range(4)]) for i in range(6)]
    chosen = choose_pairs(samples, 12, seed=1)
    assert [p.adjacent for p in chosen] == [True, False] * 6
    assert len({p.sample.key for p in chosen if p.adjacent}) == 6  # every prompt before any second pair
    assert all(p.extreme for p in chosen if not p.adjacent)  # the widest pair of each prompt comes first
    assert choose_pairs(samples, 12, seed=1) == chosen and choose_pairs(samples, 12, seed=2) != chosen
    assert len(choose_pairs(samples, 1000)) == 6 * 6  # all of them when asked for more


def test_pairs_whose_order_is_unknown_are_left_out():
    assert [(p.weaker, p.stronger) for p in candidate_pairs(sample(0, ["a", "b", "c"], [1.0, 1.0, 2.0]))] == [
        (0, 2),
        (1, 2),
    ]
    assert [(p.weaker, p.stronger) for p in candidate_pairs(sample(1, ["same", " same ", "other"]))] == [(0, 2), (1, 2)]
    assert choose_pairs([sample(2, ["only one"])], 10) == []


def test_shorten_cuts_to_the_length_at_a_sentence_end_when_near():
    text = "One two three four. Five six seven eight nine ten. Eleven twelve."
    assert shorten(text, 5) == "One two three four."  # 4 of 5 words, at a sentence end
    assert shorten(text, 10) == "One two three four. Five six seven eight nine ten."
    assert shorten("one two three four five six seven", 3) == "one two three"
    assert shorten("short", 10) == "short"
    cjk = "我们今天去公园。天气很好，我们玩得很开心。"
    assert count_length(shorten(cjk, 9)) <= 9 and shorten(cjk, 9).startswith("我们今天去公园。")


def test_controls_only_where_the_stronger_is_clearly_longer():
    rng = random.Random(0)
    long = " ".join(rng.choice(["a", "b"]) + "x" for _ in range(40))
    pairs = choose_pairs([sample(0, ["one two three four five six", long]), sample(1, ["w " * 30, "v " * 31])], 10)
    controls = control_pairs(pairs, 10)
    assert len(controls) == 1 and controls[0].control and count_length(controls[0].stronger_text) == 6


# -- statistics ---------------------------------------------------------------------------------------------------
def test_spearman_and_the_cluster_bootstrap_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833, abs=1e-6)  # ties take average ranks
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    # two groups, one all 1s and one all 0s: a draw of groups gives 0, 0.5 or 1; the mean over items is 0.75
    ci = cluster_bootstrap([[1, 1, 1], [0]], lambda xs: sum(xs) / len(xs), resamples=4000, seed=0)
    assert ci.estimate == pytest.approx(0.75) and ci.low == 0.0 and ci.high == 1.0


# -- the command --------------------------------------------------------------------------------------------------
def train_config(tmp_path, base_url: str, data, **more) -> Path:  # type: ignore[no-untyped-def]
    """A train config file judging in one order (reference_first) with a hard judge at `base_url`."""
    config = tmp_path / "train.yaml"
    judge = {"mode": "hard", "endpoint": {"base_url": base_url, "max_retries": 0}}
    body = {"dataset": str(data), "judge": judge, "reward": {"position": "reference_first"}, **more}
    config.write_text(yaml.safe_dump(body))
    return config


def test_judge_audit_command_prints_json_and_writes_the_page(tmp_path):
    data = keyword_tiered(tmp_path / "k.jsonl", stronger_longer=False)
    with FakeOpenAIServer(judge_behaviour(more_keywords)) as server:
        config = train_config(tmp_path, server.base_url, data)
        out = tmp_path / "audit-out"
        run = CliRunner().invoke(app, ["judge-audit", str(config), "--pairs", "8", "--out", str(out)])
        assert run.exit_code == 0, run.output
        first = server.calls()
        again = CliRunner().invoke(app, ["judge-audit", str(config), "--pairs", "8", "--json", "--out", str(out)])
        assert again.exit_code == 0 and server.calls() == first  # the second audit is answered by the cache
    report = json.loads(next(line for line in again.stdout.splitlines() if line.startswith("{")))
    for key in ("tier_agreement", "adjacent_tier_agreement", "first_position_rate", "swap_consistency", "length_bias",
                "unknown_rate", "verdict"):  # fmt: skip
        assert key in report, key
    assert report["verdict"] == "usable" and report["ci95"]["tier_agreement"] == [1.0, 1.0]
    assert report["calls"]["cached"] == report["calls"]["calls"] and report["calls"]["requests"] == 0
    assert "verdict: USABLE" in run.stdout and "tier agreement" in run.stdout
    # the run's judge cost with the tokens the audit measured (the cached second audit measured none)
    measured = next(line for line in run.stdout.splitlines() if line.startswith("judge tokens:"))
    assert "+ 12 out a call (measured)" in measured and "judge calls: 8 a step (8 completions x 1 order)" in run.stdout
    for name in ("audit.json", "pairs.jsonl", "index.html", "audit.png"):
        assert (out / name).is_file(), name
    assert (
        len((out / "pairs.jsonl").read_text().splitlines())
        == report["pairs"]["audited"] + report["pairs"]["length_controls"]
    )


def test_judge_audit_against_a_dead_server_fails_and_writes_nothing(tmp_path, monkeypatch):
    from writing_rl.server import free_port

    monkeypatch.chdir(tmp_path)  # the default folder is runs/judge-audit-train
    data = keyword_tiered(tmp_path / "k.jsonl")
    config = train_config(tmp_path, f"http://127.0.0.1:{free_port()}/v1", data)
    before = sorted(p.name for p in tmp_path.iterdir())
    run = CliRunner().invoke(app, ["judge-audit", str(config), "--pairs", "4"])
    assert run.exit_code == 2, run.output
    assert "no judge call succeeded at http://127.0.0.1:" in run.output and "(transport: " in run.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no runs/, no page, no cache file


def test_judge_audit_needs_samples_for_a_judge_only_config(tmp_path):
    config = tmp_path / "core.yaml"
    config.write_text(yaml.safe_dump({"judge": {"mode": "hard"}}))
    run = CliRunner().invoke(app, ["judge-audit", str(config)])
    assert run.exit_code == 2 and "--data" in run.output


def test_check_audit_warns_on_a_useless_judge_and_strict_fails(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # check --audit writes its page under runs/
    data = keyword_tiered(tmp_path / "k.jsonl")
    with FakeOpenAIServer(judge_behaviour(always_first)) as server:
        config = train_config(
            tmp_path, server.base_url, data, grpo={"per_device_train_batch_size": 4, "num_generations": 2}
        )
        warned = CliRunner().invoke(app, ["check", str(config), "--audit", "--pairs", "6"])
        assert warned.exit_code == 0, warned.output
        assert "  warn  judge audit: useless" in warned.output and "use reward.position: both_average" in warned.output
        strict = CliRunner().invoke(app, ["check", str(config), "--audit", "--pairs", "6", "--strict"])
        assert strict.exit_code == 2 and "--strict stops here" in strict.output
        plain = CliRunner().invoke(app, ["check", str(config)])
        assert plain.exit_code == 0 and "judge audit" not in plain.output
    assert (tmp_path / "runs" / "judge-audit-train" / "index.html").is_file()


def test_eval_and_verl_configs_audit_their_own_samples(tmp_path):
    from writing_rl.audit.command import audit_inputs
    from writing_rl.eval.runner import EvalConfig
    from writing_rl.verl.export import export_verl
    from writing_rl.verl.launch import VerlRecipe

    data = keyword_tiered(tmp_path / "k.jsonl", prompts=3)
    samples = load_samples(str(data))
    arena = EvalConfig.model_validate(
        {
            "model": {"name": "m", "endpoint": {"base_url": "http://127.0.0.1:9/v1"}},
            "output_dir": str(tmp_path / "eval"),
            "tasks": {"arena": {"samples": str(data), "injection": "unknown"}},
        }
    )
    inputs = audit_inputs(arena)
    assert (
        inputs.samples == samples and inputs.reward.position == "both_average" and inputs.reward.injection == "unknown"
    )
    export_verl(samples, tmp_path / "verl")
    recipe = VerlRecipe.model_validate({"verl": {"data": {"train_files": str(tmp_path / "verl" / "train.parquet")}}})
    assert audit_inputs(recipe).samples == samples
    missing = VerlRecipe.model_validate({"verl": {"data": {"train_files": str(tmp_path / "none.parquet")}}})
    with pytest.raises(ValueError, match="none.parquet: no such file"):
        audit_inputs(missing)
