"""The train config: its schema, the embedded demo config, and the config a resumed run reads back."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import run_layout as layout
from ..audit.runner import AuditSettings
from ..config import LocalJudgeSettings, load_config
from ..critic import CriticConfig
from ..curriculum import CurriculumConfig
from ..errors import ConfigError
from ..judge import JudgeConfig
from ..models import EMBEDDED_MODEL
from ..pointwise import reward_setup_problem
from ..reward import ExtraRewards, RewardConfig
from ..rollouts import RolloutSettings

DEMO_DATASET = "demo"
DEMO_SAMPLES = files("writing_rl") / "assets" / "demo_samples.jsonl"
DEMO_CONFIG = files("writing_rl") / "assets" / "demo.yaml"


class GRPOSettings(BaseModel):
    """The GRPO settings most runs touch; any other `trl.GRPOConfig` field may be added here too."""

    model_config = ConfigDict(extra="allow")

    num_generations: int = Field(4, ge=2, description="GRPO group size G")
    per_device_train_batch_size: int = Field(8, ge=1, description="completions per device per step (a multiple of G)")
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_completion_length: int = Field(256, ge=1)
    learning_rate: float = Field(1e-6, gt=0)
    beta: float = Field(0.0, ge=0, description="KL coefficient (0 = no reference model)")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"] = "dapo"
    temperature: float = Field(1.0, gt=0)
    max_steps: int = Field(400, ge=1)
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(50, ge=1)
    report_to: list[str] = Field(
        default_factory=lambda: ["none"], description="tensorboard, wandb, ... (TRL's report_to)"
    )
    seed: int = 0


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(EMBEDDED_MODEL, description="HF model folder/name, or the embedded SmolLM2")
    dataset: str = Field(DEMO_DATASET, description="'demo', a .jsonl of samples, or a datasets name/folder")
    dataset_split: str | None = None
    output_dir: str = "runs/demo"
    local_judge: LocalJudgeSettings = Field(default_factory=LocalJudgeSettings)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    critic: CriticConfig | None = Field(
        None,
        description="reward.kind pointwise with an LLM judge: the pointwise critic that scores each answer; "
        "null: the judge's own endpoint read as a critic (soft when the judge is soft)",
    )
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    extras: ExtraRewards = Field(default_factory=ExtraRewards)
    grpo: GRPOSettings = Field(default_factory=GRPOSettings)
    rollouts: RolloutSettings = Field(default_factory=RolloutSettings)
    audit: AuditSettings = Field(
        default_factory=AuditSettings,
        description="the judge audit run before the model is loaded (docs/judge-audit.md); pairs: 0 skips it",
    )
    max_unknown_steps: int = Field(
        2, ge=0, description="stop after this many steps in a row in which the judge gave no reward at all (0: never)"
    )
    outage_wait_s: float = Field(
        300,
        ge=0,
        description="when every judge call of a step fails and the judge's address stops answering, wait this long "
        "for it to come back and judge the step again, before the step counts toward max_unknown_steps (0: never)",
    )

    @model_validator(mode="after")
    def _reward_set_up(self) -> TrainConfig:
        if problem := reward_setup_problem(self.reward.kind, self.curriculum.schedule, self.judge, self.critic):
            raise ValueError(problem)
        return self


def load_train_config(path: str | Path | None) -> TrainConfig:
    """The given config, or with none the embedded demo (the same file as configs/demo.yaml)."""
    return load_config(path or str(DEMO_CONFIG), TrainConfig)


def resume_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / layout.CONFIG
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no config.yaml)")
    # the folder given wins over the (often relative) output_dir saved in it
    return load_config(path, TrainConfig).model_copy(update={"output_dir": str(run_dir)})
