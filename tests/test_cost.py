"""The judge cost estimate (from the config alone), `judge.price` and `judge.budget` as config, and what
`writing-rl check` prints of them."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from writing_rl.cli import app
from writing_rl.config import ConfigError, load_config
from writing_rl.cost import MeasuredTokens, estimate_cost, trl_completions_per_step
from writing_rl.data import Sample
from writing_rl.judge import JudgeConfig, PairwiseJudge
from writing_rl.judge.context import estimate_tokens
from writing_rl.spend import BudgetSpecError, JudgeBudget, parse_budget_specs
from writing_rl.train import TrainConfig
from writing_rl.verl.launch import VerlRecipe

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = [
    Sample(id=1, prompt="Write a short poem about rain.", references=["weak rain poem", "a much stronger poem " * 20]),
    Sample(id=2, prompt="Write a long essay about the sea " * 10, references=["sea"], criteria="Vivid, precise."),
]


def train_config(position: str = "reference_first", judge: dict | None = None, **grpo) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "judge": {"mode": "hard", "max_tokens": 512, **(judge or {})},
            "reward": {"position": position},
            "grpo": {
                "num_generations": 2,
                "per_device_train_batch_size": 6,
                "max_completion_length": 300,
                "max_steps": 10,
                **grpo,
            },
        }
    )


@pytest.mark.parametrize(("position", "per_step"), [("reference_first", 6), ("policy_first", 6), ("both_average", 12)])
def test_calls_per_step_are_completions_times_judged_orders(position, per_step):
    est = estimate_cost(train_config(position), SAMPLES)
    assert est.calls_per_step == per_step and est.steps == 10 and est.calls == per_step * 10
    assert f"{per_step} a step" in est.lines()[0] and f"= {per_step * 10} calls" in est.lines()[0]


def test_gradient_accumulation_processes_and_iterations_multiply_as_in_trl():
    cfg = train_config("both_agree", per_device_train_batch_size=4, gradient_accumulation_steps=3)
    assert estimate_cost(cfg, SAMPLES, num_processes=2).calls_per_step == 4 * 3 * 2 * 2
    reused = train_config(per_device_train_batch_size=4, gradient_accumulation_steps=3, num_iterations=2)
    assert estimate_cost(reused, SAMPLES, num_processes=2).calls_per_step == 4 * 3 * 2 / 2  # each batch trained twice

    # TRL's own arithmetic (one process here): a generation batch of `generation_batch_size` every
    # `steps_per_generation * num_iterations` micro-steps, `gradient_accumulation_steps` micro-steps a step
    pytest.importorskip("trl")
    from writing_rl.train import grpo_args

    for grpo in ({"gradient_accumulation_steps": 3}, {"steps_per_generation": 4}, {"num_iterations": 2}):
        cfg = train_config(per_device_train_batch_size=4, **grpo)
        args = grpo_args(cfg, Path("unused"))
        trl = args.generation_batch_size * args.gradient_accumulation_steps
        trl /= args.steps_per_generation * args.num_iterations
        assert trl_completions_per_step(cfg.grpo, 1) == trl, grpo


def test_tokens_per_call_are_prompt_reference_and_completion_and_the_reply_budget():
    cfg = train_config()
    est = estimate_cost(cfg, SAMPLES)
    judge = PairwiseJudge(cfg.judge)
    prompt = sum(judge.prompt_tokens(s.prompt_text, s.criteria_text) for s in SAMPLES) / 2
    refs = [estimate_tokens(r) for s in SAMPLES for r in s.references]  # the judge's counter: the estimate here
    assert est.input_per_call == pytest.approx(prompt + sum(refs) / 3 + 300)
    assert prompt > cfg.judge.prompt_overhead_tokens + 100  # the template, questions and criteria are counted
    assert est.output_per_call == 512 and not est.measured  # hard: the whole explanation budget
    assert "estimated, upper bound" in est.lines()[1]

    longer = [s.model_copy(update={"prompt": s.prompt_text * 3}) for s in SAMPLES]
    assert estimate_cost(cfg, longer).input_per_call > est.input_per_call  # averaged over the dataset's questions

    soft = estimate_cost(train_config(judge={"mode": "soft"}), SAMPLES)
    assert soft.output_per_call == 1 and soft.calls_per_step == 6
    chat = estimate_cost(train_config(judge={"mode": "soft", "soft_via": "chat", "reason_first": True}), SAMPLES)
    assert chat.output_per_call == 513 and chat.calls_per_step == 6
    # via /completions a reasoning soft judge sends two requests per order: the reasoning, then the verdict
    two = estimate_cost(train_config(judge={"mode": "soft", "reason_first": True}), SAMPLES)
    assert two.calls_per_step == 12 and two.output_per_call * 2 == 513


def test_measured_tokens_replace_the_estimate():
    cfg = train_config()
    est = estimate_cost(cfg, SAMPLES)
    measured = estimate_cost(cfg, SAMPLES, measured=MeasuredTokens(prompt_overhead=400, completion=120))
    refs = [estimate_tokens(r) for s in SAMPLES for r in s.references]
    assert measured.input_per_call == pytest.approx(400 + sum(refs) / 3 + 300)  # the answers are still counted
    assert measured.output_per_call == 120 and measured.measured and measured.calls == est.calls
    assert "(measured)" in measured.lines()[1] and "(measured)" in measured.describe()


def test_money_from_prices_and_price_outside_the_cache_key():
    price = {"input_per_million": 8.0, "output_per_million": 20.0, "currency": "CNY"}
    est = estimate_cost(train_config(judge={"price": price}), SAMPLES)
    expected = est.calls * (est.input_per_call * 8.0 + est.output_per_call * 20.0) / 1e6
    assert est.money == pytest.approx(expected)
    assert f"~{expected:,.2f} CNY" in est.lines()[2] and "CNY" in est.describe()
    assert "set judge.price" in estimate_cost(train_config(), SAMPLES).lines()[2]

    plain = PairwiseJudge(JudgeConfig())
    priced = PairwiseJudge(JudgeConfig(price=price, budget={"calls": 10, "money": 1.0}))
    messages = [{"role": "user", "content": "judge this"}]
    assert plain._key(messages) == priced._key(messages)  # a price or budget changes no verdict


def test_a_rule_judge_is_free():
    cfg = TrainConfig.model_validate({"judge": {"backend": "rule", "rule": "length_fit"}})
    est = estimate_cost(cfg)  # no samples needed: nothing is counted
    assert est.free and est.money is None
    assert est.lines() == ["judge cost: none (rule judge: no judge calls)"]


def test_the_published_verl_run_judges_32_rollouts_a_step_for_405_steps():
    recipe = load_config(ROOT / "configs" / "verl" / "ppo_paper.yaml", VerlRecipe)  # verl itself not needed
    est = estimate_cost(recipe)
    assert (est.calls_per_step, est.steps, est.calls) == (32, 405, 12960)
    assert est.output_per_call == 1024  # hard judge, max_tokens default
    assert est.input_per_call > 10000  # responses up to 10000 tokens
    assert any("train_files not read" in n for n in est.notes)  # no data here: said, not hidden


def test_verl_steps_from_the_data_when_total_training_steps_is_absent(tmp_path):
    from writing_rl.verl.export import export_verl

    samples = [Sample(id=i, prompt=f"Write {i}.", references=["r"]) for i in range(5)]
    export_verl(samples, tmp_path)
    recipe = VerlRecipe.model_validate(
        {
            "reward": {"position": "both_agree"},
            "verl": {
                "data": {"train_files": str(tmp_path / "train.parquet"), "train_batch_size": 2},
                "actor_rollout_ref": {"rollout": {"n": 4}},
                "trainer": {"total_epochs": 3},
            },
        }
    )
    est = estimate_cost(recipe)
    assert est.calls_per_step == 2 * 4 * 2 and est.steps == 5 // 2 * 3
    assert any("5 rows // 2 a batch x 3 epochs" in n for n in est.notes)
    assert est.input_per_call == pytest.approx(estimate_cost(recipe, samples).input_per_call)  # the parquet's samples
    # verl's defaults where the recipe says nothing: batch 1024, n 1, 30 epochs, responses of 512 tokens
    bare = estimate_cost(VerlRecipe())
    assert bare.calls_per_step == 1024 and bare.steps is None and "steps unknown" in bare.describe()


def test_an_ablation_costs_one_run_per_arm_and_seed():
    from writing_rl.ablation import AblationConfig

    cfg = AblationConfig.model_validate(
        {"grpo": {"max_steps": 5, "per_device_train_batch_size": 4}, "ablation": {"heldout": "h.jsonl"}}
    )
    est = estimate_cost(cfg, SAMPLES)  # the four schedules, one seed
    assert est.runs == 4 and est.calls == 4 * 5 * 4 and "x 4 runs (one per arm and seed)" in est.lines()[0]
    seeded = cfg.model_copy(update={"ablation": cfg.ablation.model_copy(update={"seeds": [0, 1, 2]})})
    assert estimate_cost(seeded, SAMPLES).runs == 12


def test_a_money_budget_needs_a_price_and_verl_refuses_a_budget(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"judge": {"budget": {"money": 5}}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"judge: Value error, budget.money needs `price`") as err:
        load_config(path, TrainConfig)
    assert len(str(err.value).splitlines()) == 1
    ok = {"judge": {"budget": {"money": 5}, "price": {"input_per_million": 1, "output_per_million": 2}}}
    path.write_text(yaml.safe_dump(ok), encoding="utf-8")
    assert load_config(path, TrainConfig).judge.budget.money == 5
    path.write_text(yaml.safe_dump({"judge": {"budget": {"calls": 100}}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="judge: Value error, budget: only `writing-rl train` keeps a judge budget"):
        load_config(path, VerlRecipe)


def test_budget_specs_from_the_command_line():
    current = JudgeBudget(calls=10, tokens=500)
    assert parse_budget_specs(["calls=20", "money=1.5"], current) == JudgeBudget(calls=20, tokens=500, money=1.5)
    assert parse_budget_specs(["tokens=none"], current) == JudgeBudget(calls=10)
    for bad, said in [
        ("calls", "KIND=VALUE"),
        ("dollars=3", "KIND=VALUE"),
        ("calls=1.5", "whole number"),
        ("calls=0", "above 0"),
    ]:
        with pytest.raises(BudgetSpecError, match=said):
            parse_budget_specs([bad], current)


def test_check_prints_the_estimate_for_the_processes_it_is_told(tmp_path):
    pytest.importorskip("trl")
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps(s.model_dump()) + "\n" for s in SAMPLES), encoding="utf-8")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}", encoding="utf-8")
    cfg = {
        "model": str(tmp_path / "model"),
        "dataset": str(samples),
        "output_dir": str(tmp_path / "run"),
        "judge": {
            "mode": "hard",
            "price": {"input_per_million": 1.0, "output_per_million": 4.0},
            "budget": {"calls": 500, "money": 2.5},
        },
        "grpo": {"num_generations": 2, "per_device_train_batch_size": 2, "max_steps": 7, "report_to": ["none"]},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    runner = CliRunner()
    one = runner.invoke(app, ["check", str(path), "--skip-endpoints"])
    assert one.exit_code == 0, one.output
    assert "  ok  judge calls: 2 a step (2 completions x 1 order) x 7 steps = 14 calls" in one.output
    assert "  ok  judge money: ~" in one.output and "USD" in one.output
    assert "  ok  judge budget: calls=500, money=2.50 USD" in one.output
    two = runner.invoke(app, ["check", str(path), "--skip-endpoints", "--num-processes", "2"])
    assert "judge calls: 4 a step (4 completions x 1 order, over 2 processes) x 7 steps = 28 calls" in two.output


def test_spend_against_a_budget_and_the_command_that_continues():
    from writing_rl.judge.budget import JudgePrice
    from writing_rl.spend import JudgeSpend, budget_problem, continue_hint

    price = JudgePrice(input_per_million=1.0, output_per_million=3.0)
    spend = JudgeSpend(calls=3, prompt_tokens=500, completion_tokens=100)
    assert budget_problem(spend, JudgeBudget(calls=4, tokens=601), price) is None
    both = JudgeBudget(calls=3, tokens=600, money=1.0)
    assert budget_problem(spend, both, price) == "judge budget calls=3, tokens=600 reached"
    assert (
        continue_hint(Path("r"), spend, both, price)
        == "writing-rl train --resume r --budget calls=6 --budget tokens=1200"
    )
    tiny = JudgeBudget(money=0.0005)  # 500 x 1 + 100 x 3 per million = 0.0008
    assert budget_problem(spend, tiny, price) == "judge budget money=0.0005 USD reached"
    assert continue_hint(Path("r"), spend, tiny, price).endswith("--budget money=0.0016")  # a valid, larger budget
    unreported = JudgeSpend(calls=3, no_usage=3)
    assert budget_problem(unreported, JudgeBudget(calls=100), None) is None  # calls are counted all the same
    assert "cannot be counted" in budget_problem(unreported, JudgeBudget(tokens=100), None)


def test_a_pointwise_run_counts_the_critics_calls_not_the_judges():
    """Under `reward.kind: pointwise` the pairwise judge is never called: the critic is, once per criterion per
    answer (one generic criterion where a sample has none); its tokens and money are said to be not estimated."""
    from writing_rl.data import Criterion

    three = [Criterion(name=f"c{i}", criteria_description="d") for i in range(3)]
    samples = [*SAMPLES, Sample(id=3, prompt="p", references=["r"], criteria=three)]  # 1, 1 and 3 criteria
    raw = train_config("both_average").model_dump() | {"reward": {"kind": "pointwise"}}
    raw["curriculum"] = {"schedule": "none"}
    est = estimate_cost(TrainConfig.model_validate(raw), samples)
    per_step = 6 * (1 + 1 + 3) / 3  # completions x mean criteria; the two orders of both_average do not apply
    assert est.calls_per_step == pytest.approx(per_step) and est.calls == pytest.approx(per_step * 10)
    assert est.tokens is None and est.money is None
    assert est.lines()[0].startswith("critic calls: 10 a step (6 completions x 1.67 criteria on average, at least)")
    assert "not estimated under reward.kind: pointwise" in est.lines()[1]
    assert "not estimated" in est.describe() and "at least 100 calls" in est.describe()
    recipe = load_config(ROOT / "configs" / "verl" / "ppo_paper.yaml", VerlRecipe)
    verl = estimate_cost(recipe.model_copy(update={"reward": recipe.reward.model_copy(update={"kind": "pointwise"})}))
    assert (verl.calls_per_step, verl.steps, verl.pointwise) == (32, 405, True)  # no data here: one criterion each
