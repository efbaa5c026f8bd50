"""`writing-rl report RUN [RUN...]`: training curves, the curriculum picture and eval tables in one HTML page."""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from .. import run_layout as layout
from ..jsonl import read_jsonl
from ..run_layout import VERL_METRICS
from ..sqlite_store import open_read_only

# One stylesheet for every writing-rl page.
STYLE = """<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; margin: 0.5rem 0; }
.missing { color: #999; }
.warning, tr.mixed td { color: #a33; }
td.scorer { font-size: 0.8em; text-align: left; max-width: 28rem; }
</style>"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>writing-rl report</title>
{{ style }}</head><body>
<h1>writing-rl report</h1>
<p>Runs: {% for r in runs %}<code>{{ r }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</p>
{% if training %}
<h2>Training</h2>
{% for img in training_plots %}<img src="{{ img }}" alt="{{ img }}">{% endfor %}
<table><tr><th>run</th><th>steps</th><th>last reward</th><th>last win rate</th><th>mean level</th><th>step time (s)</th><th>rollouts</th><th>judge audit</th></tr>
{% for t in training %}<tr><td>{{ t.name }}</td><td>{{ t.steps }}</td><td>{{ fmt(t.reward) }}</td><td>{{ fmt(t.win_rate) }}</td><td>{{ fmt(t.level) }}</td><td>{{ fmt(t.step_time) }}</td>
<td>{% if t.rollouts %}<a href="{{ t.rollouts }}">rollouts.jsonl</a>{% else %}–{% endif %}</td>
<td{% if t.audit and t.audit.verdict != "usable" %} class="warning"{% endif %}>{% if t.audit %}<a href="{{ t.audit.page }}">{{ t.audit.verdict }}</a>{% else %}–{% endif %}</td></tr>{% endfor %}
</table>
{% for t in training if t.audit %}<p{% if t.audit.verdict != "usable" %} class="warning"{% endif %}>{{ t.name }}: {{ t.audit.headline }}.
{% for r in t.audit.recommendations %}{{ r.text }}. {% endfor %}</p>{% endfor %}
{% endif %}
{% if evals %}
<h2>Evaluation</h2>
{% if differ %}<p class="warning">Not comparable across these folders:
{% for bench, fields in differ.items() %}{{ bench }} was scored differently ({{ fields|join(", ") }}){% if not loop.last %}; {% endif %}{% endfor %}.
Re-score them with one critic and judge config (<code>writing-rl eval</code> reuses the saved generations).</p>{% endif %}
<table><tr><th>metric</th>{% for e in evals %}<th>{{ e.name }}</th>{% endfor %}</tr>
{% for bench, name, label in eval_rows %}<tr{% if label != name %} class="mixed"{% endif %}><td>{{ label }}</td>{% for e in evals %}<td>{{ fmt(e.metrics.get(bench, {}).get(name)) }}</td>{% endfor %}</tr>{% endfor %}
</table>
<table><tr><th>scored by</th>{% for e in evals %}<th>{{ e.name }}</th>{% endfor %}</tr>
{% for title, bench in scorer_rows %}<tr><td>{{ title }}</td>{% for e in evals %}<td class="scorer">{% if bench in e.metrics %}{{ scorer_label(e.scorers.get(bench)) }}{% else %}–{% endif %}</td>{% endfor %}</tr>{% endfor %}
</table>
{% for img in eval_plots %}<img src="{{ img }}" alt="{{ img }}">{% endfor %}
{% endif %}
</body></html>
"""


def fmt(value: Any) -> str:
    if value is None:
        return '<span class="missing">–</span>'
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return html.escape(str(value))


def pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# per-step curves and the range each is drawn on: rewards and rates are bounded, so their axis is the full 0–1
# (wider only where a reward config's win/loss values reach outside it); counts and levels start at 0
CURVE_RANGES: dict[str, tuple[float, float] | None] = {
    "reward": (0.0, 1.0),
    "judge/win_rate": (0.0, 1.0),
    "curriculum/mean_level": None,
    "curriculum/promotions": None,
}


def frame_step_axis(ax: Any, key: str, values: list[float | None]) -> None:
    """Whole-number steps on x; y on the quantity's full range (`CURVE_RANGES`), so noise is not blown up."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    seen = [v for v in values if v is not None]
    bounds = CURVE_RANGES.get(key)
    if bounds is None:
        ax.set_ylim(bottom=min([0.0, *seen]))
        return
    ax.set_ylim(min([bounds[0], *seen]), max([bounds[1], *seen]))


def level_shares(store: Path, last_step: int = 0) -> tuple[list[int], dict[int, list[float]]]:
    """Share of known prompts at each level after each step, replayed from the promotion log.

    `last_step` extends the picture to the end of training when the last steps promoted nobody.
    """
    conn = open_read_only(store)  # the run's store is read, never changed, and no -wal/-shm is left beside it
    try:
        keys = [k for (k,) in conn.execute("SELECT key FROM samples")]
        events = list(conn.execute("SELECT key, step, to_level FROM events ORDER BY id"))
    finally:
        conn.close()
    if not keys:
        return [], {}
    last_step = max([s + 1 for _, s, _ in events] + [last_step])
    level = dict.fromkeys(keys, 0)
    by_step = {}
    for key, step, to in events:
        by_step.setdefault(step, []).append((key, to))
    steps, shares = list(range(last_step + 1)), {}
    history = []
    for step in steps:
        for key, to in by_step.get(step - 1, []):  # promotions earned at step s apply from step s+1
            level[key] = to
        history.append(Counter(level.values()))
    top = max(max(c) for c in history)
    for lvl in range(top + 1):
        shares[lvl] = [c.get(lvl, 0) / len(keys) for c in history]
    return steps, shares


# A verl run (`writing-rl train-verl`): verl's file logger writes one of these per launch (it truncates on open),
# while metrics.jsonl holds the curriculum actor's per-step lines.
VERL_KEYS = {"critic/score/mean": "reward", "perf/time_per_step": "step_time"}


def with_verl_metrics(run: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fold verl's mean score and step time into the curriculum actor's lines, by step (a later launch wins)."""
    logs = sorted(run.glob(VERL_METRICS.format(started="*")))
    if not logs:
        return rows
    by_step = {r["step"]: dict(r) for r in rows if "step" in r}
    for log in logs:
        for line in read_jsonl(log):
            row = by_step.setdefault(line["step"], {"step": line["step"]})
            row.update({ours: line["data"][theirs] for theirs, ours in VERL_KEYS.items() if theirs in line["data"]})
    return [by_step[s] for s in sorted(by_step)]


def training_summary(run: Path, out: Path) -> dict[str, Any]:
    rows = with_verl_metrics(run, read_jsonl(run / layout.METRICS))
    rollouts = run / layout.ROLLOUTS
    steps = [r for r in rows if "reward" in r]
    last = steps[-1] if steps else {}
    return {
        "name": run.name,
        "rows": steps,
        "steps": len(steps),
        "reward": last.get("reward"),
        "win_rate": last.get("judge/win_rate"),
        "level": last.get("curriculum/mean_level"),
        "step_time": last.get("step_time"),
        "promotions": int(sum(r.get("curriculum/promotions") or 0 for r in steps)),
        "rollouts": Path(os.path.relpath(rollouts.resolve(), out.resolve())).as_posix() if rollouts.is_file() else None,
        "audit": _audit_summary(run, out),
    }


def _audit_summary(run: Path, out: Path) -> dict[str, Any] | None:
    """The run's own judge audit (run/audit/), for the training table: verdict, headline, link."""
    from ..audit.report import headline, read_audit

    audit = read_audit(run)
    if audit is None:
        return None
    page = Path(os.path.relpath((run / "audit" / "index.html").resolve(), out.resolve())).as_posix()
    return {
        "verdict": audit["verdict"],
        "headline": headline(audit),
        "recommendations": audit["recommendations"],
        "page": page,
    }


def _plot_training(training: list[dict[str, Any]], runs: list[Path], out: Path) -> list[str]:
    plt = pyplot()
    names = []
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    curves = (
        ("reward", "reward"),
        ("judge/win_rate", "win rate vs current reference"),
        ("curriculum/mean_level", "mean reference level"),
    )
    for ax, (key, title) in zip(axes, curves):
        values = [r.get(key) for t in training for r in t["rows"]]
        for t in training:
            ax.plot([r["step"] for r in t["rows"]], [r.get(key) for r in t["rows"]], marker="o", label=t["name"])
        ax.set_title(title)
        frame_step_axis(ax, key, values)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=110)
    plt.close(fig)
    names.append("training_curves.png")
    for run, t in zip(runs, training):
        store = run / layout.CURRICULUM_STORE
        if not store.is_file():
            continue
        steps, shares = level_shares(store, last_step=max((r["step"] for r in t["rows"]), default=0))
        if not steps:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.4))
        ax.stackplot(
            steps, *[shares[k] for k in sorted(shares)], labels=[f"level {k}" for k in sorted(shares)], step="post"
        )
        ax.set_title(f"share of prompts per reference level\n{run.name}", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        name = f"curriculum_{run.name}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names


BENCHMARKS = {
    "writingbench": "WritingBench",
    "creative_writing_v3": "EQ-Bench Creative Writing v3",
    "longbench_write": "LongBench-Write",
    "arena": "arena",
    "longbench_v2": "LongBench v2",
}


def _metrics(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """benchmark -> {row name: value}, read from one results.json."""
    m: dict[str, dict[str, Any]] = {}
    if wb := res.get("writingbench"):
        m["writingbench"] = {"WritingBench score": wb.get("score")}
        m["writingbench"].update({f"WritingBench: {d}": v for d, v in (wb.get("per_domain") or {}).items()})
    if cw := res.get("creative_writing_v3"):
        ci = cw.get("ci95")
        m["creative_writing_v3"] = {
            "EQ-Bench Creative Writing v3 rubric (0-100)": cw.get("score"),
            "EQ-Bench Creative Writing v3 95% CI": f"{ci[0]:.1f}–{ci[1]:.1f}" if ci else None,
            "EQ-Bench Creative Writing v3 pieces scored / missing": f"{cw.get('n')} / {cw.get('missing')}",
        }
    if lw := res.get("longbench_write"):
        m["longbench_write"] = {f"LongBench-Write {k}": lw.get(k) for k in ("S_l", "S_q", "S")}
    if ar := res.get("arena"):
        rows: dict[str, Any] = {}
        for opp, v in ar["opponents"].items():
            rows[f"arena win rate vs {opp}"] = v["win_rate"]
            rows[f"arena 95% CI vs {opp}"] = f"{v['ci95'][0]:.2f}–{v['ci95'][1]:.2f}"
            rows[f"arena position consistency vs {opp}"] = v["position_consistency"]
        m["arena"] = rows
    if lv := res.get("longbench_v2"):
        m["longbench_v2"] = {"LongBench v2 accuracy %": lv.get("score")}
        m["longbench_v2"].update(
            {f"LongBench v2 accuracy % ({g})": v["score"] for g, v in (lv.get("groups") or {}).items()}
        )
    return m


def _eval(run: Path) -> dict[str, Any]:
    res = json.loads((run / "results.json").read_text(encoding="utf-8"))
    return {
        "name": f"{res.get('model', run.name)} ({run.name})",
        "metrics": _metrics(res),
        "scorers": res.get("scorers") or {},
        "lengths": (res.get("longbench_write") or {}).get("lengths"),
    }


def scorer_label(scorer: dict[str, Any] | None) -> str:
    if not scorer:
        return "unknown (results.json has no scorer record)"
    return ", ".join(f"{k}={v}" for k, v in scorer.items() if v is not None)


# Scorer-record fields that are not the scorer: where the files lie (the same files elsewhere score the same,
# and their hash is compared, not the clone's commit). How the model generated (`generation`) is compared.
NOT_SCORING = {"repo", "repo_commit"}


def scorer_differences(evals: list[dict[str, Any]]) -> dict[str, list[str]]:
    """benchmark -> the scorer fields that differ between the evals holding it (or why they cannot be
    compared); benchmarks scored the same way everywhere are left out."""
    out: dict[str, list[str]] = {}
    for bench in BENCHMARKS:
        records = [e["scorers"].get(bench) for e in evals if bench in e["metrics"]]
        if len(records) < 2 or (records[0] and all(r == records[0] for r in records)):
            continue
        if not all(records):
            out[bench] = ["no scorer record"]
            continue
        keys = sorted({k for r in records for k in r} - NOT_SCORING)
        if fields := [k for k in keys if len({json.dumps(r.get(k), sort_keys=True) for r in records}) > 1]:
            out[bench] = fields
    return out


def _plot_lengths(evals: list[dict[str, Any]], out: Path) -> list[str]:
    with_points = [e for e in evals if e["lengths"]]
    if not with_points:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.2))
    values = [v for e in with_points for point in e["lengths"] for v in point]
    for e in with_points:
        xs, ys = zip(*e["lengths"])
        ax.scatter(xs, ys, s=14, alpha=0.7, label=e["name"])
    low, high = min(values) / 1.5, max(values) * 1.5
    ax.plot([low, high], [low, high], color="#999", linewidth=1, label="output = required")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("required length")
    ax.set_ylabel("output length")
    ax.set_title("LongBench-Write lengths")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "longbench_write_lengths.png", dpi=110)
    plt.close(fig)
    return ["longbench_write_lengths.png"]


class ReportError(ValueError):
    """What `report` cannot read, in one line; nothing has been written."""

    exit_code = 2  # a folder given that report cannot read


# What `report` reads; said whenever a given folder is none of these.
EXPECTED = (
    "a training run (metrics.jsonl), an eval folder (results.json of `writing-rl eval`) or an ablation folder "
    "(results.json and a run per schedule, as `writing-rl ablation` writes them)"
)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def folder_kinds(run: Path) -> tuple[set[str], str]:
    """What `run` is for `report`: some of {"training", "eval"}, or {"ablation"}; with none, why not."""
    if not run.is_dir():
        return set(), "no such folder" if not run.exists() else "not a folder"
    res = _read_json(run / "results.json") if (run / "results.json").is_file() else None
    if isinstance(res, dict) and isinstance(res.get("runs"), dict) and "models" in res:  # `writing-rl ablation`'s
        missing = [f"{s}/" for s in res["runs"] if not (run / s / layout.METRICS).is_file()]
        if not missing:
            return {"ablation"}, ""
        return set(), (
            f"an ablation's results.json without its schedules' runs {', '.join(missing)}: give the folder "
            "`writing-rl ablation` wrote"
        )
    if (run / "ablation.json").is_file():
        done = ", ".join(str(p) for p in sorted(run.iterdir()) if (p / layout.METRICS).is_file())
        return set(), (
            "an ablation folder without its results.json (the ablation has not finished: re-run `writing-rl "
            "ablation CONFIG`" + (f"; its schedules' runs can be reported: {done})" if done else ")")
        )
    kinds = {"training"} if (run / layout.METRICS).is_file() else set()
    if (run / "results.json").is_file():
        if isinstance(res, dict) and any(res.get(bench) for bench in BENCHMARKS):
            kinds.add("eval")
        elif not kinds:
            return set(), f"its results.json holds no eval results (none of {', '.join(BENCHMARKS)})"
    return kinds, "" if kinds else "neither metrics.jsonl nor results.json"


def write_report(runs: list[Path], out: Path) -> Path:
    """The page for these folders in `out`; raises ReportError naming every folder it cannot read (or, when
    they hold no step and no eval result, that there is nothing to show), before anything is written.

    One ablation folder (`writing-rl ablation`'s output) is rendered as the ablation's own page."""
    kinds = {r: folder_kinds(r) for r in runs}
    if unknown := [f"{r} ({why})" for r, (k, why) in kinds.items() if not k]:
        raise ReportError(f"cannot read {'; '.join(unknown)}: report reads {EXPECTED}")
    ablations = [r for r in runs if "ablation" in kinds[r][0]]
    if ablations:
        if len(runs) > 1:
            raise ReportError(
                f"{ablations[0]} is an ablation folder: report it on its own (`writing-rl report {ablations[0]} "
                "--out DIR`), or give its schedules' run folders (one per schedule inside it) with the others"
            )
        return _ablation_page(ablations[0], out)
    train_runs = [r for r in runs if "training" in kinds[r][0]]
    eval_runs = [r for r in runs if "eval" in kinds[r][0]]
    training = [training_summary(r, out) for r in train_runs]
    evals = [_eval(r) for r in eval_runs]
    if not any(t["steps"] for t in training) and not any(e["metrics"] for e in evals):
        raise ReportError(
            f"nothing to report: {', '.join(map(str, runs))} hold no training step yet (metrics.jsonl has no "
            "line with a reward) and no eval result"
        )
    out.mkdir(parents=True, exist_ok=True)
    differ = scorer_differences(evals)
    rows = [
        (bench, name, name + (" (scorers differ)" if bench in differ else ""))
        for bench in BENCHMARKS
        for name in dict.fromkeys(k for e in evals for k in e["metrics"].get(bench, {}))
    ]
    env = Environment(autoescape=select_autoescape(default=True))
    page = env.from_string(PAGE).render(
        style=Markup(STYLE),
        runs=[str(r) for r in runs],
        training=training,
        evals=evals,
        eval_rows=rows,
        differ={BENCHMARKS[b]: fields for b, fields in differ.items()},
        scorer_rows=[(BENCHMARKS[b], b) for b in BENCHMARKS if any(b in e["metrics"] for e in evals)],
        scorer_label=scorer_label,
        training_plots=_plot_training(training, train_runs, out) if training else [],
        eval_plots=_plot_lengths(evals, out),
        fmt=lambda v: Markup(fmt(v)),
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _ablation_page(folder: Path, out: Path) -> Path:
    """`writing-rl ablation`'s page for its folder, written into `out` (the folder itself is only read)."""
    from .ablation_report import write_ablation_report

    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    # the schedules' runs as they lie now (results.json keeps the paths of the machine and folder it ran in)
    runs = {schedule: folder / schedule for schedule in results["runs"]}  # each checked by folder_kinds
    return write_ablation_report(folder, {**results, "runs": {k: str(v) for k, v in runs.items()}}, out)
