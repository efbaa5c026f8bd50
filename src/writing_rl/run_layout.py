"""The run folder's layout: the one place that names what a training run writes and its readers look for.

A leaf module (it imports nothing of ours), so a reader (`report`, `curriculum show`, `train --resume`) finds a
run's files without importing the engine that wrote them (TRL, verl).

Step numbering, one convention for both engines:
- `metrics.jsonl` and `rollouts.jsonl` number a line by the step it trains, from 1 (`trained_step`): TRL's
  `global_step` once that optimizer step is done, verl's `global_steps` while it runs. A checkpoint-N (TRL) or
  global_step_N (verl) folder holds the state after trained step N; a resume keeps the lines up to N.
- the curriculum store (`curriculum.sqlite`: outcomes, promotions, `updated_step`) and the schedules (`static`
  milestones, the `none` schedule's draw) count the steps completed before the batch, from 0
  (`completed_steps`): TRL's `global_step` while its reward function runs, verl's `global_steps - 1`.
"""

from __future__ import annotations

from pathlib import Path

CONFIG = "config.yaml"  # the run's resolved config, what --resume reads
METRICS = "metrics.jsonl"  # one row per logged step
ROLLOUTS = "rollouts.jsonl"  # one record per judged rollout (`writing-rl rollouts`)
CURRICULUM_STORE = "curriculum.sqlite"  # levels, outcomes and promotions
FINAL = "final"  # the servable model, once training ends
# in each checkpoint-N/ folder
CURRICULUM_SNAPSHOT = "curriculum_snapshot.json"
JUDGE_SPEND = "judge_spend.json"
# verl's own metrics, one file per start of a run (`started`: the start time)
VERL_METRICS = "verl_metrics-{started}.jsonl"


def lock_file(run_dir: Path) -> Path:
    """Held by the process training `run_dir`: beside the folder, not in it, so `--overwrite` can delete the
    folder and an empty folder stays empty."""
    folder = run_dir.expanduser().resolve()  # `.`, `runs/x/` and a symlink to the folder: one lock
    if folder == folder.parent:
        raise ValueError(f"{run_dir} is a file system root: not a run folder")
    return folder.parent / f".{folder.name}.lock"


def trained_step(completed: int) -> int:
    """The step a batch trains (metrics and rollout records), from the steps completed before it (the store's)."""
    return completed + 1


def completed_steps(trained: int) -> int:
    """The steps completed before the batch that trains step `trained` (the store's numbering; never below 0)."""
    return max(trained - 1, 0)
