"""The ablation's page: per-step curves of every schedule on shared axes, and the held-out table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from .report import STYLE, fmt, pyplot, training_summary

CURVES = (
    ("reward", "reward"),
    ("judge/win_rate", "win rate vs current reference"),
    ("curriculum/mean_level", "mean reference level"),
    ("curriculum/promotions", "promotions per step"),
)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>writing-rl scheduling ablation</title>
{{ style }}</head><body>
<h1>Scheduling ablation</h1>
<p>{{ n_prompts }} held-out prompts × {{ per_prompt }} answers per model. Means over prompts with
bootstrap 95% intervals; Δ is the paired difference from the base model (prompts resampled).</p>
<h2>Training</h2>
<img src="ablation_curves.png" alt="per-step curves">
<table><tr><th>schedule</th><th>steps</th><th>promotions</th><th>final mean level</th><th>rollouts</th></tr>
{% for t in training %}<tr><td>{{ t.name }}</td><td>{{ t.steps }}</td><td>{{ t.promotions }}</td><td>{{ fmt(t.level) }}</td>
<td>{% if t.rollouts %}<a href="{{ t.rollouts }}">rollouts.jsonl</a>{% else %}–{% endif %}</td></tr>{% endfor %}
</table>
<h2>Held-out</h2>
<img src="ablation_heldout.png" alt="held-out means">
<table><tr><th>model</th>{% for m in metrics %}<th>{{ m }}</th><th>Δ vs base [95% CI]</th>{% endfor %}</tr>
{% for name, row in models %}<tr><td>{{ name }}</td>{% for m in metrics %}
<td>{{ "%.1f [%.1f, %.1f]"|format(row[m].mean, row[m].ci95[0], row[m].ci95[1]) }}</td>
<td>{% if row[m].diff_vs_base %}{{ "%+.1f [%+.1f, %+.1f]"|format(row[m].diff_vs_base.mean, row[m].diff_vs_base.ci95[0], row[m].diff_vs_base.ci95[1]) }}{% else %}–{% endif %}</td>
{% endfor %}</tr>{% endfor %}
</table>
</body></html>
"""


def _plot_curves(training: list[dict[str, Any]], out: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4 * len(CURVES), 3.4))
    for t in training:
        xs = [r["step"] for r in t["rows"]]
        for ax, (key, _) in zip(axes, CURVES):
            ax.plot(xs, [r.get(key) for r in t["rows"]], marker="o", markersize=3, label=t["name"])
    for ax, (_, title) in zip(axes, CURVES):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "ablation_curves.png", dpi=110)
    plt.close(fig)


def _plot_heldout(results: dict[str, Any], out: Path) -> None:
    plt = pyplot()
    metrics, models = results["metrics"], list(results["models"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        means = [results["models"][name][m]["mean"] for name in models]
        lows = [mean - results["models"][name][m]["ci95"][0] for name, mean in zip(models, means)]
        highs = [results["models"][name][m]["ci95"][1] - mean for name, mean in zip(models, means)]
        ax.bar(models, means, yerr=[lows, highs], capsize=4, color="#7a9cc6")
        ax.set_title(f"held-out {m} (95% CI)", fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    fig.savefig(out / "ablation_heldout.png", dpi=110)
    plt.close(fig)


def write_ablation_report(folder: Path, results: dict[str, Any], out: Path | None = None) -> Path:
    """The page in `out` (default: `folder/report`, where `writing-rl ablation` writes it; `writing-rl
    report ABLATION_FOLDER --out DIR` renders it again elsewhere)."""
    out = out or folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    training = []
    for schedule, run in results["runs"].items():
        training.append({**training_summary(Path(run), out), "name": schedule})
    _plot_curves(training, out)
    _plot_heldout(results, out)
    page = (
        Environment(autoescape=select_autoescape(default=True))
        .from_string(PAGE)
        .render(
            style=Markup(STYLE),
            training=training,
            metrics=results["metrics"],
            models=list(results["models"].items()),
            n_prompts=results["heldout_prompts"],
            per_prompt=results["samples_per_prompt"],
            fmt=lambda v: Markup(fmt(v)),
        )
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
