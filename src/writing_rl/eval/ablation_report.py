"""The ablation's page: per-step curves of every arm (mean over seeds, each seed faint), the held-out means with
their intervals on the metric's full 0–100 range, and the paired differences from the base model and from the
comparison arm. Renders results.json of earlier, single-seed ablations too (one run per schedule)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from .report import STYLE, fmt, frame_step_axis, pyplot, training_summary
from .text_measures import MEASURES

CURVES = (  # metric, title, the short label of a row in the one-column-per-arm layout
    ("reward", "reward", "reward"),
    ("judge/win_rate", "win rate vs current reference", "win rate"),
    ("curriculum/mean_level", "mean reference level", "reference level"),
    ("curriculum/promotions", "promotions per step", "promotions"),
)
SCORE_RANGE = (0.0, 100.0)  # a rule metric's range (judge/rules.py); a measure of the text has its own

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>writing-rl ablation</title>
{{ style }}</head><body>
<h1>Scheduling ablation: {{ arms|length }} arm(s) × {{ seeds|length }} seed(s)</h1>
<p>{{ n_prompts }} held-out prompts × {{ per_prompt }} answers per model{% if seeds|length > 1 %} and seed{% endif %}.
Means over {% if seeds|length > 1 %}seeds ({{ seeds|join(", ") }}) and {% endif %}prompts with bootstrap 95%
intervals{% if seeds|length > 1 %} (seeds and prompts both resampled){% endif %}; Δ is the paired difference, on
matching {% if seeds|length > 1 %}(seed, prompt){% else %}prompt{% endif %} pairs, from the base model
{%- if ref %} and from {{ ref }}{% endif %}. An interval that holds 0 shows no difference at this size.</p>
{% if arms_table %}<h2>Arms</h2>
<table><tr><th>arm</th><th>overrides of the training config</th></tr>
{% for name, over in arms_table %}<tr><td>{{ name }}</td><td><code>{{ over }}</code></td></tr>{% endfor %}
</table>{% endif %}
<h2>Held-out</h2>
<img src="ablation_heldout.png" alt="held-out means">
{% if measures %}<p>{% for m, about in measures %}<b>{{ m }}</b>: {{ about }}. {% endfor %}A rule metric can be won
with text that is not writing; these read the same answers for that.</p>{% endif %}
<table><tr><th>model</th>{% for m in metrics %}<th>{{ m }} [95% CI]</th>{% if seeds|length > 1 %}<th>per seed</th>{% endif %}
<th>Δ vs base [95% CI]</th>{% if ref %}<th>Δ vs {{ ref }} [95% CI]</th>{% endif %}{% endfor %}</tr>
{% for name, row in models %}<tr><td>{{ name }}</td>{% for m in metrics %}
<td>{{ cell(row[m], False, m) }}</td>{% if seeds|length > 1 %}<td>{{ per_seed(row[m], m) }}</td>{% endif %}
<td>{{ cell(row[m].diff_vs_base, True, m) }}</td>{% if ref %}<td>{{ cell(row[m]["diff_vs_" ~ ref], True, m) }}</td>{% endif %}
{% endfor %}</tr>{% endfor %}
</table>
<img src="ablation_differences.png" alt="paired differences">
<h2>Training</h2>
<img src="ablation_curves.png" alt="per-step curves">
<table><tr><th>run</th><th>steps</th><th>promotions</th><th>final mean level</th><th>rollouts</th></tr>
{% for t in training %}<tr><td>{{ t.name }}</td><td>{{ t.steps }}</td><td>{{ t.promotions }}</td><td>{{ fmt(t.level) }}</td>
<td>{% if t.rollouts %}<a href="{{ t.rollouts }}">rollouts.jsonl</a>{% else %}–{% endif %}</td></tr>{% endfor %}
</table>
</body></html>
"""


def _digits(metric: str) -> int:
    return MEASURES[metric].digits if metric in MEASURES else 1


def interval_text(r: dict[str, Any] | None, signed: bool = False, metric: str = "") -> str:
    """`mean [low, high]` with the metric's decimals; `–` where there is none."""
    if not r:
        return "–"
    f = f"{{:{'+' if signed else ''}.{_digits(metric)}f}}"
    return f"{f.format(r['mean'])} [{f.format(r['ci95'][0])}, {f.format(r['ci95'][1])}]"


def _per_seed(r: dict[str, Any], metric: str = "") -> str:
    return " · ".join(f"{v:.{_digits(metric)}f}" for v in (r.get("per_seed") or {}).values()) or "–"


def _arm_of(run: str) -> str:
    """`dynamic/seed0` -> `dynamic`; an older single-seed ablation's run is named by its schedule alone."""
    return run.split("/")[0]


def _mean_curve(runs: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """The mean over seeds at each step that every seed logged."""
    by_step: dict[int, list[float]] = {}
    for t in runs:
        for r in t["rows"]:
            if r.get(key) is not None:
                by_step.setdefault(r["step"], []).append(r[key])
    steps = sorted(s for s, v in by_step.items() if len(v) == len(runs))
    return steps, [sum(by_step[s]) / len(runs) for s in steps]


OVERLAID_ARMS = 3  # up to this many arms share each curve's panel; more get a column each (one row per curve)


def _plot_curves(training: list[dict[str, Any]], out: Path) -> None:
    """Each arm's mean over seeds (bold) with each seed faint, on the quantity's full range. Up to
    `OVERLAID_ARMS` arms are drawn over each other; more would hide each other, so each gets its own column,
    rows sharing the y axis."""
    plt = pyplot()
    arms: dict[str, list[dict[str, Any]]] = {}
    for t in training:
        arms.setdefault(_arm_of(t["name"]), []).append(t)
    seeded = any(len(r) > 1 for r in arms.values())
    overlaid = len(arms) <= OVERLAID_ARMS
    if overlaid:
        fig, grid = plt.subplots(1, len(CURVES), figsize=(4 * len(CURVES), 3.4), squeeze=False)
        panels = {(arm, key): grid[0][c] for arm in arms for c, (key, _, _) in enumerate(CURVES)}
    else:
        fig, grid = plt.subplots(
            len(CURVES), len(arms), figsize=(2.4 * len(arms), 2.2 * len(CURVES)), squeeze=False, sharey="row"
        )
        panels = {(arm, key): grid[r][c] for c, arm in enumerate(arms) for r, (key, _, _) in enumerate(CURVES)}
    for colour, (arm, runs) in enumerate(arms.items()):
        for key, _, _ in CURVES:
            ax = panels[(arm, key)]
            if len(runs) > 1:  # each seed faint, their mean bold
                for t in runs:
                    ax.plot(
                        [r["step"] for r in t["rows"]],
                        [r.get(key) for r in t["rows"]],
                        color=f"C{colour}",
                        alpha=0.25,
                        lw=0.8,
                    )
            xs, ys = _mean_curve(runs, key)
            ax.plot(xs, ys, color=f"C{colour}", marker="o", markersize=3 if overlaid else 2, label=arm)
    titles = {key: (title, short) for key, title, short in CURVES}
    for (arm, key), ax in panels.items():
        frame_step_axis(ax, key, [r.get(key) for t in training for r in t["rows"]])
        title, short = titles[key]
        if overlaid:
            ax.set_title(title + (" (mean over seeds)" if seeded else ""), fontsize=9)
            continue
        if key == CURVES[0][0]:
            ax.set_title(arm, fontsize=9)
        if arm == next(iter(arms)):
            ax.set_ylabel(short, fontsize=9)
        if key != CURVES[-1][0]:
            ax.set_xlabel("")
    if overlaid:
        grid[0][0].legend(fontsize=8)
    elif seeded:
        fig.suptitle("per step: the mean over seeds (bold), each seed (faint)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "ablation_curves.png", dpi=110)
    plt.close(fig)


def _plot_heldout(results: dict[str, Any], out: Path) -> None:
    """Means with their intervals on each metric's full range (a rule's 0–100; from 0 for an unbounded measure);
    each seed's mean as a small dot."""
    plt = pyplot()
    metrics, models = results["metrics"], list(results["models"])
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(max(4.5, 0.8 * len(models) + 2) * len(metrics), 3.6), squeeze=False
    )
    for ax, m in zip(axes[0], metrics):
        for x, name in enumerate(models):
            r = results["models"][name][m]
            ax.errorbar(
                [x],
                [r["mean"]],
                yerr=[[r["mean"] - r["ci95"][0]], [r["ci95"][1] - r["mean"]]],
                fmt="o",
                color="#35608f",
                capsize=4,
            )
            seeds = list((r.get("per_seed") or {}).values())
            if len(seeds) > 1:
                ax.plot([x + 0.15] * len(seeds), seeds, ".", color="#999", markersize=4)
        ax.set_xticks(range(len(models)), models, rotation=30, fontsize=8)
        if m not in MEASURES:
            ax.set_ylim(*SCORE_RANGE)
        elif (full := MEASURES[m].full_range) is not None:
            ax.set_ylim(*full)
        else:  # unbounded above: from 0, so a difference is drawn to scale
            ax.set_ylim(0, 1.1 * max(results["models"][name][m]["ci95"][1] for name in models))
        ax.set_title(
            f"held-out {m}: mean, 95% CI" + (", seeds (grey)" if len(results.get("seeds", [])) > 1 else ""), fontsize=9
        )
    fig.tight_layout()
    fig.savefig(out / "ablation_heldout.png", dpi=110)
    plt.close(fig)


def _plot_differences(results: dict[str, Any], out: Path) -> None:
    """Each arm's paired differences (vs base, vs the comparison arm) with their intervals, around 0."""
    plt = pyplot()
    metrics, ref = results["metrics"], results.get("compare_to")
    arms = [a for a in results["models"] if a != "base"]
    keys = [("diff_vs_base", "vs base")] + ([(f"diff_vs_{ref}", f"vs {ref}")] if ref else [])
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(5 * len(metrics), 0.45 * len(arms) * len(keys) + 1.5), squeeze=False
    )
    for ax, m in zip(axes[0], metrics):
        labels: list[str] = []
        for k, (key, what) in enumerate(keys):
            for a in arms:
                if not (d := results["models"][a][m].get(key)):
                    continue  # the comparison arm against itself
                ax.errorbar(
                    [d["mean"]],
                    [len(labels)],
                    xerr=[[d["mean"] - d["ci95"][0]], [d["ci95"][1] - d["mean"]]],
                    fmt="o",
                    color=f"C{k}",
                    capsize=3,
                )
                labels.append(f"{a} {what}")
        ax.axvline(0, color="#555", lw=0.8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"paired Δ {m} (95% CI)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "ablation_differences.png", dpi=110)
    plt.close(fig)


def write_ablation_report(folder: Path, results: dict[str, Any], out: Path | None = None) -> Path:
    """The page in `out` (default: `folder/report`, where `writing-rl ablation` writes it; `writing-rl
    report ABLATION_FOLDER --out DIR` renders it again elsewhere)."""
    out = out or folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    training = [{**training_summary(Path(run), out), "name": name} for name, run in results["runs"].items()]
    _plot_curves(training, out)
    _plot_heldout(results, out)
    _plot_differences(results, out)
    ref = results.get("compare_to")
    page = (
        Environment(autoescape=select_autoescape(default=True))
        .from_string(PAGE)
        .render(
            style=Markup(STYLE),
            training=training,
            metrics=results["metrics"],
            measures=[(m, MEASURES[m].about) for m in results["metrics"] if m in MEASURES],
            models=list(results["models"].items()),
            arms=results.get("arms") or results.get("schedules") or [],
            arms_table=[(k, json.dumps(v)) for k, v in (results.get("arms") or {}).items()],
            seeds=results.get("seeds") or [None],
            ref=ref if ref in results["models"] else None,
            n_prompts=results["heldout_prompts"],
            per_prompt=results["samples_per_prompt"],
            cell=interval_text,
            per_seed=_per_seed,
            fmt=lambda v: Markup(fmt(v)),
        )
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
