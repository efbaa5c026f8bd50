"""The curriculum inside every verl checkpoint, and back out of it on resume.

verl 0.9.1's (v1) trainer builds `trainer.checkpoint_callback_class` on its driver (the TaskRunner) when it
is constructed, and calls `on_save(trainer, global_step, checkpoint_dir)` after each `global_step_N` folder
is written. verl has no load hook, so the callback restores in its constructor: the trainer builds it before
`fit()` loads the checkpoint, and the callback finds the same folder with verl's own rules
(`trainer.resume_mode`, `resume_from_path`, the `latest_checkpointed_iteration.txt` tracker), so the
curriculum resumes exactly where the weights do, forgetting later promotions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from verl.trainer.ppo.checkpoint_callback import CheckpointCallback
from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

from .curriculum_actor import connect_curriculum
from .groups import DEFAULT_ACTOR_NAME

SNAPSHOT_FILE = "writing_rl_curriculum.json"
# Where the recipe puts the actor's name, which the reward function reads too.
ACTOR_NAME_KEY = "reward.custom_reward_function.reward_kwargs.curriculum"


def actor_name(config: DictConfig) -> str:
    return OmegaConf.select(config, ACTOR_NAME_KEY, default=None) or DEFAULT_ACTOR_NAME


def resume_folder(config: DictConfig) -> Path | None:
    """The `global_step_N` folder verl's trainer will resume from (its `_load_checkpoint` rules), or None."""
    trainer = config.trainer
    if trainer.resume_mode == "disable":
        return None
    if trainer.resume_mode == "auto":
        found = find_latest_ckpt_path(os.path.abspath(trainer.default_local_dir))
        return Path(found) if found else None
    if trainer.resume_mode == "resume_path":
        return Path(os.path.abspath(trainer.resume_from_path))
    raise ValueError(f"unknown trainer.resume_mode {trainer.resume_mode!r}")


class CurriculumCheckpoint(CheckpointCallback):
    """Writes the curriculum actor's snapshot into each checkpoint; restores it when the run resumes."""

    def __init__(self, config: DictConfig | None = None):
        super().__init__(config)
        if config is None:
            raise ValueError("CurriculumCheckpoint needs the trainer config")
        self.curriculum = connect_curriculum(actor_name(config))
        folder = resume_folder(config)
        if folder is not None:
            self.curriculum.restore(load_snapshot(folder))

    def on_save(
        self, trainer: Any, global_step: int, checkpoint_dir: str, async_save: bool = False, **kwargs: Any
    ) -> None:
        save_snapshot(Path(checkpoint_dir), self.curriculum.snapshot(step=global_step))


def save_snapshot(folder: Path, snapshot: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (SNAPSHOT_FILE + ".tmp")
    tmp.write_text(json.dumps(snapshot), encoding="utf-8")
    os.replace(tmp, folder / SNAPSHOT_FILE)


def load_snapshot(folder: Path) -> dict[str, Any]:
    path = folder / SNAPSHOT_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} has no {SNAPSHOT_FILE}: cannot restore the curriculum exactly; resume from an earlier "
            "checkpoint (trainer.resume_mode=resume_path trainer.resume_from_path=...)"
        )
    return json.loads(path.read_text(encoding="utf-8"))
