from pathlib import Path

import pytest
from typer.testing import CliRunner

from writing_rl.cli import app
from writing_rl.config import ConfigError, CoreConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_core_config_loads():
    cfg = load_config(ROOT / "configs" / "core.yaml", CoreConfig)
    assert cfg.judge.mode == "soft" and cfg.reward.position == "both_average"


@pytest.mark.parametrize(
    "text, message",
    [
        ("judge: {mode: loud}", "judge.mode"),
        ("reward: {win: 0.2, tie: 0.5}", "loss <= tie <= win"),
        ("curriculum: {schedule: static}", "milestones"),
        ("judge: {endpoint: {api_key: sk-123}}", "judge.endpoint.api_key"),  # keys never go in configs
        ("- a list", "expected a mapping"),
        ("judge: [unclosed", "not valid YAML"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(path, CoreConfig)


def test_judge_pair_with_bad_config_exits_2(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("judge: {mode: loud}", encoding="utf-8")
    result = CliRunner().invoke(app, ["judge-pair", "--question", "q", "--a", "x", "--b", "y", "--config", str(path)])
    assert result.exit_code == 2
