"""The run folder's layout: the one place that names what a training run writes and its readers look for.

A leaf module (it imports nothing), so a reader (`report`, `curriculum show`, `train --resume`) finds a
run's files without importing the engine that wrote them (TRL, verl).
"""

from __future__ import annotations

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
