"""The shipped GPU recipes at least parse and validate, so a user's first cluster run fails on real problems only."""

from pathlib import Path

import pytest
import yaml

from writing_rl.config import load_config
from writing_rl.train import TrainConfig, grpo_args

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["deepspeed_zero3.yaml", "fsdp.yaml"])
def test_accelerate_configs_parse(name):
    cfg = yaml.safe_load((ROOT / "configs" / "accelerate" / name).read_text())
    assert cfg["distributed_type"] in {"DEEPSPEED", "FSDP"} and cfg["num_processes"] >= 1


def test_gpu_recipe_validates_and_trl_accepts_its_grpo_section(tmp_path):
    pytest.importorskip("trl")
    cfg = load_config(ROOT / "configs" / "gpu_7b.yaml", TrainConfig)
    assert cfg.grpo.model_extra["use_vllm"] is True
    assert cfg.judge.endpoint.api_key_env is None  # a key-less vLLM judge must not need JUDGE_API_KEY
    # on this CPU machine bf16 is refused by transformers; everything else must be accepted by GRPOConfig
    cpu = cfg.model_copy(update={"grpo": cfg.grpo.model_copy(update={"bf16": False, "use_cpu": True})})
    args = grpo_args(cpu, tmp_path)
    assert args.use_vllm and args.vllm_mode == "server" and args.num_generations == 8


def test_demo_config_is_the_default():
    from writing_rl.training.config import load_train_config

    assert load_train_config(None) == load_config(ROOT / "configs" / "demo.yaml", TrainConfig)
