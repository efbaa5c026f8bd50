"""The engine refuses a TRL it was not tested with, before a run writes anything."""

import pytest

pytest.importorskip("trl")

from trl import GRPOTrainer  # noqa: E402

from writing_rl.config import ConfigError  # noqa: E402
from writing_rl.engines.trl_version import check_trl  # noqa: E402
from writing_rl.train import TrainConfig, train  # noqa: E402


def test_the_installed_trl_is_the_tested_one():
    check_trl()


@pytest.mark.parametrize(
    "version, message",
    [
        ("1.5.2", "scores a missing \\(None\\) reward as a loss"),  # before unknowns left the baseline
        ("1.15.9", "not a version the writing-rl engine was tested with"),
        ("1.17.0", "not a version the writing-rl engine was tested with"),
        ("2.0.0", "not a version the writing-rl engine was tested with"),
    ],
)
def test_an_untested_trl_is_refused_with_the_fix(version, message):
    with pytest.raises(ConfigError, match=message) as err:
        check_trl(version)
    assert "pip install 'trl==1.16.0'" in str(err.value)


def test_a_changed_private_method_is_refused():
    class Changed(GRPOTrainer):
        def _calculate_rewards(self, inputs, prompts, completions):  # a parameter gone
            return None

    with pytest.raises(ConfigError, match="GRPOTrainer._calculate_rewards"):
        check_trl("1.16.0", Changed)


def test_train_stops_before_writing_anything(tmp_path, monkeypatch):
    monkeypatch.setattr("writing_rl.engines.trl_version.installed_version", lambda name: "1.17.0")
    # a missing dataset stops a run quickly (and differently) should the guard ever come too late
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), dataset=str(tmp_path / "missing.jsonl"))
    with pytest.raises(ConfigError, match="TRL 1.17.0"):
        train(cfg)
    assert not (tmp_path / "run").exists()
