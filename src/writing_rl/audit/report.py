"""The audit as a terminal table, as files (`audit.json`, `pairs.jsonl`) and as a page with two plots:
agreement by tier gap and net preference against the length ratio (what a person looks at first)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from ..eval.report import STYLE, pyplot
from ..eval.stats import Interval
from ..rollouts import capped
from .measure import PairResult
from .runner import AuditResult

AUDIT_FILE = "audit.json"
ROWS: list[tuple[str, str]] = [
    ("tier_agreement", "tier agreement (both orders averaged)"),
    ("adjacent_tier_agreement", "  adjacent tiers"),
    ("extreme_tier_agreement", "  weakest vs strongest"),
    ("net_preference", "net preference for the stronger (-1..1)"),
    ("reward_agreement", "run's reward ranks the stronger higher"),
    ("adjacent_reward_agreement", "  adjacent tiers"),
    ("stronger_win_rate", "stronger as the policy wins (promotes)"),
    ("weaker_win_rate", "weaker as the policy wins (false promotion)"),
    ("first_position_rate", "first-position rate (0.5: no bias)"),
    ("swap_consistency", "swap consistency (same winner both orders)"),
    ("length_bias", "length: rank corr. (length ratio, preference)"),
    ("longer_preferred_rate", "length: the longer answer preferred"),
    ("length_control_original", "length control: the pairs as written"),
    ("length_control_agreement", "  stronger cut to the weaker's length"),
]


def _cell(i: Interval | None) -> tuple[str, str]:
    if i is None:
        return "–", ""
    return f"{i.estimate:.2f}", f"[{i.low:.2f}, {i.high:.2f}]"


def _opt(value: float | None, spec: str) -> str:
    return "not reported" if value is None else format(value, spec)


def table(result: AuditResult) -> str:
    f, c, j = result.figures, result.cost, result.judge
    who = (
        f"rule judge {j['rule']['name']}"
        if j.get("backend") == "rule"
        else f"{j.get('model')} at {j.get('base_url')} ({j.get('mode')})"
    )
    lines = [
        f"judge audit: {who}, reward.position {f.position}",
        f"{f.pairs} reference pairs from {f.samples} prompts + {f.control_pairs} length controls, {c.calls} calls "
        f"({c.cached} cached) in {c.seconds:.1f} s",
        "",
        f"{'':48} {'value':>6}  95% interval",
    ]
    for name, label in ROWS:
        value, ci = _cell(getattr(f, name))
        lines.append(f"{label:48} {value:>6}  {ci}")
    reasons = ", ".join(f"{k}: {v}" for k, v in f.unknown_reasons.items())
    lines.append(f"{'unknown verdicts':48} {f.unknown_rate:>6.2f}  {reasons}")
    if f.verdict_mass is not None:
        lines.append(f"{'verdict mass (soft: P(A)+P(B)+P(tie))':48} {f.verdict_mass:>6.2f}")
    lines.append(f"{'latency per call (s)':48} {_opt(c.latency_s_per_call, '>6.2f')}")
    lines.append(
        f"{'tokens per call, in / out (server usage)':48} {_opt(c.prompt_tokens_per_call, '>6.0f')} / "
        f"{_opt(c.completion_tokens_per_call, '.0f')}"
    )
    lines += ["", f"verdict: {result.verdict.upper()}", *[f"  - {r}" for r in result.verdict_reasons]]
    if result.recommendations:
        lines += ["recommendations:", *[f"  - {r.text}" for r in result.recommendations]]
    return "\n".join(lines)


def pair_record(r: PairResult) -> dict[str, Any]:
    """One pair as `pairs.jsonl` keeps it: enough to see why the judge said what it said."""
    strong, weak = r.lengths
    return {
        "sample": r.pair.sample.key,
        "weaker": r.pair.weaker,
        "stronger": r.pair.stronger,
        "n_levels": r.pair.n_levels,
        "control": r.pair.control,
        "length_stronger": strong,
        "length_weaker": weak,
        "agreement": r.agreement,
        "net_preference": r.net,
        "reward_stronger": r.reward_stronger.reward,
        "reward_weaker": r.reward_weaker.reward,
        "calls": [
            {
                "order": "stronger_first" if x.stronger_in_a else "weaker_first",
                "verdict": x.judgement.verdict.value,
                "probs": None if x.judgement.probs is None else vars(x.judgement.probs),
                "reason": None if x.judgement.reason is None else x.judgement.reason.value,
                "error": x.judgement.error,
                "cached": x.judgement.cached,
                "text": capped(x.judgement.text, 2000),
            }
            for x in r.readings
        ],
        **({"stronger_cut": capped(r.pair.stronger_text, 2000)} if r.pair.control else {}),
    }


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>judge audit</title>{{ style }}</head><body>
<h1>Judge audit: <span class="{{ 'warning' if verdict != 'usable' else '' }}">{{ verdict }}</span></h1>
<p>{{ judge }} · reward.position <code>{{ position }}</code> · {{ pairs }} reference pairs from {{ samples }} prompts,
{{ controls }} length controls · {{ calls }} calls</p>
<ul>{% for r in reasons %}<li>{{ r }}</li>{% endfor %}</ul>
{% if recommendations %}<h2>Recommendations</h2><ul>{% for r in recommendations %}<li>{{ r.text }}</li>{% endfor %}</ul>{% endif %}
{% for img in plots %}<img src="{{ img }}" alt="{{ img }}">{% endfor %}
<table><tr><th>measure</th><th>value</th><th>95% interval</th></tr>
{% for label, value, ci in rows %}<tr><td>{{ label }}</td><td>{{ value }}</td><td>{{ ci }}</td></tr>{% endfor %}
</table>
<p>Every pair, both orders, the judge's text: <a href="pairs.jsonl">pairs.jsonl</a>; all figures: <a href="audit.json">audit.json</a>.
What each figure means and the thresholds: docs/judge-audit.md.</p>
</body></html>
"""


def _plots(result: AuditResult, out: Path) -> list[str]:
    plt = pyplot()
    f = result.figures
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    groups = list(f.by_gap.items())
    xs = list(range(len(groups)))
    for x, (name, row) in zip(xs, groups):
        if row["agreement"] is None:
            continue
        low, high = row["ci95"]
        colour = "#a33" if name == "control" else "#36c"
        left.errorbar(
            x,
            row["agreement"],
            yerr=[[row["agreement"] - low], [high - row["agreement"]]],
            fmt="o",
            color=colour,
            capsize=4,
        )
    left.axhline(0.5, color="#999", linewidth=1, linestyle="--", label="chance")
    left.set_xticks(
        xs,
        [
            f"gap {n}\n({r['pairs']} pairs)" if n != "control" else f"length control\n({r['pairs']} pairs)"
            for n, r in groups
        ],
    )
    left.set_ylim(0, 1)
    left.set_ylabel("prefers the stronger reference")
    left.set_title("agreement by tier gap (95% intervals)")
    left.legend(fontsize=8, loc="lower right")
    for control, colour, label in (
        (False, "#36c", "pairs as written"),
        (True, "#a33", "stronger cut to weaker's length"),
    ):
        pts = [p for p in f.points if p["control"] == control]
        if pts:
            right.scatter(
                [p["log2_length_ratio"] for p in pts],
                [p["net_preference"] for p in pts],
                s=18,
                alpha=0.7,
                color=colour,
                label=label,
            )
    right.axhline(0, color="#999", linewidth=1)
    right.axvline(0, color="#ccc", linewidth=1)
    right.set_ylim(-1.05, 1.05)
    right.set_xlabel("log2(length of stronger / length of weaker)")
    right.set_ylabel("net preference for the stronger")
    rho = f.length_bias
    right.set_title("preference vs length" + (f" (rank corr. {rho.estimate:.2f})" if rho is not None else ""))
    if f.points:
        right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "audit.png", dpi=110)
    plt.close(fig)
    return ["audit.png"]


def write_audit(result: AuditResult, out: Path) -> Path:
    """audit.json, pairs.jsonl, audit.png and index.html in `out`; returns the page."""
    out.mkdir(parents=True, exist_ok=True)
    (out / AUDIT_FILE).write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    with (out / "pairs.jsonl").open("w", encoding="utf-8") as fh:
        for r in result.results:
            fh.write(json.dumps(pair_record(r), ensure_ascii=False) + "\n")
    j = result.judge
    page = (
        Environment(autoescape=select_autoescape(default=True))
        .from_string(PAGE)
        .render(
            style=Markup(STYLE),
            verdict=result.verdict,
            judge=f"rule judge {j['rule']['name']}"
            if j.get("backend") == "rule"
            else f"{j.get('model')} ({j.get('mode')})",
            position=result.figures.position,
            pairs=result.figures.pairs,
            samples=result.figures.samples,
            controls=result.figures.control_pairs,
            calls=result.cost.calls,
            reasons=result.verdict_reasons,
            recommendations=result.recommendations,
            plots=_plots(result, out),
            rows=[(label.strip(), *_cell(getattr(result.figures, name))) for name, label in ROWS],
        )
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def headline(audit: dict[str, Any]) -> str:
    """One line from an audit.json: the verdict and the figures behind it, for summaries and reports."""
    parts = []
    for key, label in (("tier_agreement", "tier agreement"), ("adjacent_tier_agreement", "adjacent tiers")):
        if audit.get(key) is not None:
            low, high = audit["ci95"][key]
            parts.append(f"{label} {audit[key]:.2f} [{low:.2f}, {high:.2f}]")
    if audit.get("first_position_rate") is not None:
        parts.append(f"first-position rate {audit['first_position_rate']:.2f}")
    parts.append(f"{audit['pairs']['audited']} pairs, reward.position {audit['position']}")
    return f"judge audit: {audit['verdict']} ({'; '.join(parts)})"


def read_audit(folder: Path) -> dict[str, Any] | None:
    """A run's or an audit folder's audit.json (run folders keep it under audit/), or None."""
    for path in (folder / AUDIT_FILE, folder / "audit" / AUDIT_FILE):
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return None
