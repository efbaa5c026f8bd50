"""The engine needs TRL's public reward-function contract: checked on the installed TRL by a tiny run, and
a TRL outside the range that keeps it is refused before a run writes anything."""

import pytest

pytest.importorskip("trl")

from writing_rl.config import ConfigError  # noqa: E402
from writing_rl.engines.trl_version import check_trl  # noqa: E402
from writing_rl.train import TrainConfig, train  # noqa: E402


def test_the_installed_trl_is_in_the_supported_range():
    check_trl()


@pytest.mark.parametrize("version", ["1.6.0", "1.16.0", "1.17.0", "1.99.3"])
def test_every_1x_from_1_6_is_accepted(version):
    check_trl(version)


@pytest.mark.parametrize(
    "version, message",
    [
        ("1.5.2", "scores a missing \\(None\\) reward as a loss"),  # before unknowns left the baseline
        ("0.29.1", "scores a missing \\(None\\) reward as a loss"),
        ("2.0.0", "new major version"),
        ("2.1.0", "new major version"),
    ],
)
def test_a_trl_outside_the_range_is_refused_with_the_fix(version, message):
    with pytest.raises(ConfigError, match=message) as err:
        check_trl(version)
    assert "pip install 'trl>=1.6.0,<2.0.0'" in str(err.value)


@pytest.mark.train
def test_trl_keeps_the_reward_function_contract_the_engine_relies_on(tmp_path, tiny_model):
    """Plain `trl.GRPOTrainer` and a reward function that does what `WritingReward` relies on: it is called
    once per generation batch with `trainer_state` (the step about to train) and `log_metric` (whose values
    reach the logs under their own name), and a None reward is left out of the group baseline: in a group
    scored win 1, loss 0, unknown None, the baseline is 0.5 (1/3 if None counted as 0), so the win and the
    loss get opposite advantages and the unknown none."""
    import pandas as pd
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    calls = []

    def probe(prompts, completions, trainer_state, log_metric, **kwargs):
        calls.append(trainer_state.global_step)
        log_metric("probe/calls", float(len(calls)))
        return [[1.0, 0.0, None][i % 3] for i in range(len(completions))]  # one group of 3 per batch

    args = GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        num_generations=3,
        per_device_train_batch_size=3,
        max_completion_length=4,
        max_steps=2,
        logging_steps=1,
        save_strategy="no",
        report_to=["none"],
        log_completions=True,  # the completions table, with each completion's advantage
        seed=0,
    )
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": f"Write line {i}."}]} for i in range(4)])
    trainer = GRPOTrainer(model=tiny_model, reward_funcs=[probe], args=args, train_dataset=dataset)
    trainer.train()
    assert calls == [0, 1]
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert [h["probe/calls"] for h in logged] == [1.0, 2.0]
    assert [h["reward"] for h in logged] == [pytest.approx(0.5)] * 2  # None left out of the logged reward too
    table = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "completions").glob("*.parquet")))
    assert len(table) == 6
    for _, group in table.groupby("step"):
        by_reward = {("none" if pd.isna(r) else r): a for r, a in zip(group["probe"], group["advantage"])}
        assert by_reward["none"] == 0.0
        assert by_reward[1.0] > 0 and by_reward[0.0] == pytest.approx(-by_reward[1.0])


def test_train_stops_before_writing_anything(tmp_path, monkeypatch):
    monkeypatch.setattr("writing_rl.engines.trl_version.installed_version", lambda name: "2.0.0")
    # a missing dataset stops a run quickly (and differently) should the guard ever come too late
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), dataset=str(tmp_path / "missing.jsonl"))
    with pytest.raises(ConfigError, match="TRL 2.0.0"):
        train(cfg)
    assert not (tmp_path / "run").exists()
