"""The training-curve tables of docs/results/: what each training of an ablation did, from its metrics.jsonl alone.

    python scripts/training_curves.py docs/results/data/promotion-rules

Per training: the first step at which every prompt sat at its strongest reference (`curriculum/mean_level` is the
mean level over all of the training's prompts), the mean reward over each quarter of the steps, and over the second
half the judge's loss rate and the share of GRPO groups with no reward spread (no gradient). Then the same per arm,
as the mean and range over seeds. Works on a kept folder (`--keep-results`) as on an ablation's own.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import mean

import yaml

from writing_rl.ablation import ran_to_end
from writing_rl.jsonl import jsonl_rows


def step_rows(run: Path, config: dict) -> list[dict]:
    """The per-step rows of a training that ran to its end; none for one that was stopped, which the ablation
    trains again from the start."""
    if not ran_to_end(run, config["grpo"]["max_steps"]):
        return []
    return [r for _, r in jsonl_rows(run / "metrics.jsonl") if isinstance(r, dict) and "reward" in r]


def top_level(config: dict) -> float | None:
    """The mean level over the training prompts once each is at its strongest reference (a prompt with n references
    tops out at level n - 1), which `curriculum/mean_level` reaches when every prompt is there."""
    dataset = Path(config["dataset"])
    if not dataset.is_file():
        return None
    refs = [len(r.get("references", [])) for _, r in jsonl_rows(dataset) if isinstance(r, dict)]
    return mean(n - 1 for n in refs) if refs else None


def summarize(run: Path) -> dict[str, float | int | str | None] | None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    rows = step_rows(run, config)
    if not rows:
        return None
    n = rows[-1]["step"]
    quarters = [[r["reward"] for r in rows if q * n / 4 < r["step"] <= (q + 1) * n / 4] for q in range(4)]
    late = [r for r in rows if r["step"] > n / 2]
    top = top_level(config)
    levels = [(r["step"], r["curriculum/mean_level"]) for r in rows if "curriculum/mean_level" in r]
    at_top: int | str | None = "never" if levels else None
    if top is not None:
        at_top = next((step for step, level in levels if level >= top - 1e-6), at_top)
    losses = [r["judge/loss_rate"] for r in late if "judge/loss_rate" in r]
    return {
        "steps": n,
        "all_at_top": at_top,
        **{f"reward_q{q + 1}": mean(v) if v else None for q, v in enumerate(quarters)},
        "loss_rate_late": mean(losses) if losses else None,
        "no_spread_late": mean(r["frac_reward_zero_std"] for r in late),
    }


COLUMNS = ["all_at_top", "reward_q1", "reward_q2", "reward_q3", "reward_q4", "loss_rate_late", "no_spread_late"]
HEADER = (
    "every prompt at the strongest reference by step | reward, 1st quarter of the steps | 2nd | 3rd | 4th | "
    "judge loss rate, 2nd half | groups with no reward spread, 2nd half"
)


def cell(value: object) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def arm_cell(values: list) -> str:
    """Mean and range over seeds; a step at which some seed never got there is shown per seed."""
    if any(v is None for v in values):
        return "–"
    if all(isinstance(v, float) for v in values):
        return f"{mean(values):.2f} ({min(values):.2f}–{max(values):.2f})" if len(values) > 1 else f"{values[0]:.2f}"
    return ", ".join(str(v) for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="an ablation's output folder or the folder --keep-results wrote")
    folder = parser.parse_args().folder
    runs = {
        run: s for run in sorted(folder.glob("*/seed*")) if (run / "metrics.jsonl").is_file() and (s := summarize(run))
    }
    print(f"| training | {HEADER} |\n|{' --- |' * (len(COLUMNS) + 1)}")
    for run, s in runs.items():
        print(f"| {run.parent.name}/{run.name} | " + " | ".join(cell(s[c]) for c in COLUMNS) + " |")
    print(f"\n| arm (seeds) | {HEADER} |\n|{' --- |' * (len(COLUMNS) + 1)}")
    for arm in dict.fromkeys(run.parent.name for run in runs):
        mine = [s for run, s in runs.items() if run.parent.name == arm]
        print(f"| {arm} ({len(mine)}) | " + " | ".join(arm_cell([s[c] for s in mine]) for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
