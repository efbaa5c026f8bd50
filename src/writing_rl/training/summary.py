"""What `writing-rl train` prints when a run ends: where its files are and what each step did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import run_layout as layout
from ..jsonl import read_jsonl
from ..spend import saved_spend_line


def _num(value: Any, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def step_table(rows: list[dict[str, Any]]) -> list[str]:
    """Per training step: reward, its judged part (pairwise, or pointwise), win rate against the current reference
    (none under pointwise), promotions, level."""
    kind = "pointwise" if any("reward/pointwise" in r for r in rows) else "pairwise"
    lines = [f"{'step':>5} {'reward':>7} {kind:>9} {'win':>5} {'tie':>5} {'loss':>5} {'promoted':>8} {'level':>6}"]
    for r in rows:
        lines.append(
            f"{r['step']:>5} {_num(r.get('reward'), '.3f'):>7} {_num(r.get(f'reward/{kind}'), '.3f'):>9} "
            f"{_num(r.get('judge/win_rate')):>5} {_num(r.get('judge/tie_rate')):>5} {_num(r.get('judge/loss_rate')):>5} "
            f"{_num(r.get('curriculum/promotions'), '.0f'):>8} {_num(r.get('curriculum/mean_level')):>6}"
        )
    return lines


def summarize_run(run_dir: Path) -> str:
    """Where the results are, what each step did, and what the judge audit said of the judge."""
    from ..audit.report import headline, read_audit

    lines = [f"run folder: {run_dir}"]
    if (audit := read_audit(run_dir)) is not None:  # first: it says how far to trust the wins below
        lines.append(f"{headline(audit)}: {run_dir / 'audit' / 'index.html'}")
        lines += [f"  - {r['text']}" for r in audit["recommendations"]]
    ckpts = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if ckpts:
        final = run_dir / layout.FINAL
        last = f"final model: {final}" if final.is_dir() else "no final model (stopped early: resume it with --resume)"
        lines.append(f"checkpoints: {', '.join(p.name for p in ckpts)}; {last}")
    metrics = run_dir / layout.METRICS
    if metrics.is_file():
        steps = [r for r in read_jsonl(metrics) if "reward" in r]
        if steps:
            lines += ["per step (win/tie/loss against each prompt's current reference):", *step_table(steps)]
            unknown = max((r.get("judge/unknown_rate") or 0) for r in steps)
            if unknown:
                lines.append(f"warning: up to {unknown:.0%} of rewards per step were missing (see rollouts)")
        lines.append(f"metrics: {metrics} (TensorBoard logs under {run_dir / 'runs'} when report_to includes it)")
    if (run_dir / layout.ROLLOUTS).is_file():
        lines.append(f"rollouts: {run_dir / layout.ROLLOUTS} (writing-rl rollouts {run_dir} --step N)")
    if (run_dir / layout.JUDGE_SPEND).is_file():
        lines.append(f"judge spend: {saved_spend_line(run_dir / layout.JUDGE_SPEND)}")
    lines.append(f"curriculum: writing-rl curriculum show {run_dir}")
    return "\n".join(lines)
